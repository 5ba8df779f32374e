package emulator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/fake"
)

const secret = "3eboH/vsr2VpGNFqDSXzVs0yNj0fMDJToPjs71V3WATqLtmzf9kyNBZ24mCNRJsDj2tEe72PxFDOPccR579w=="

// start is 2023-04-11 19:21:24 UTC, an hour before the seed's sample valid_till.
var start = time.Date(2023, 4, 11, 19, 21, 24, 500e6, time.UTC)

// env is an emulator served over HTTP with a fake clock and a Clear client pointed at it.
type env struct {
	clock  *fake.Clock
	emu    *Server
	srv    *httptest.Server
	client *clear.Client
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{clock: fake.NewClock(start)}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Secrets == nil {
		opts.Secrets = []string{secret}
	}
	e.emu = New(opts)
	e.srv = httptest.NewServer(e.emu)
	t.Cleanup(func() { e.emu.Close(); e.srv.Close() })
	var err error
	if e.client, err = clear.NewClient(e.srv.URL, e.srv.Client()); err != nil {
		t.Fatal(err)
	}
	return e
}

// token asks for a token with secret through the clear client.
func (e *env) token(ctx context.Context, secret string) (clear.Grant, error) {
	return e.client.Token(ctx, clear.NewClientSecret(secret))
}

// mustToken asks for a token and fails the test unless one is granted.
func (e *env) mustToken(t *testing.T) string {
	t.Helper()
	g, err := e.token(context.Background(), secret)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return g.AccessToken.Reveal()
}

// get sends a raw request and returns the status and body.
func (e *env) get(t *testing.T, method, path string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func secretHeader(s string) http.Header { return http.Header{clear.HeaderClientSecret: {s}} }

// clearErr asserts that err is a *clear.Error of kind k.
func clearErr(t *testing.T, err error, k clear.Kind) *clear.Error {
	t.Helper()
	var ce *clear.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *clear.Error", err)
	}
	if ce.Kind != k {
		t.Fatalf("error %v: kind %v, want %v", err, ce.Kind, k)
	}
	return ce
}

var tokenRE = regexp.MustCompile(`^1\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}_[0-9a-f]+$`)

func TestSuccessFormat(t *testing.T) {
	e := newEnv(t, Options{Lifetime: time.Hour})
	status, body := e.get(t, http.MethodGet, clear.TokenPath, secretHeader(secret))
	want := regexp.MustCompile(`^\{"access_token":"(1\.[^"]{101})","valid_till":"2023-04-11T20:21:24\+00:00"\}$`)
	m := want.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("answer %d %s, want 200 and the seed's format", status, body)
	}
	if !tokenRE.MatchString(m[1]) {
		t.Errorf("token %q is not shaped like 1.<uuid>_<hex>", m[1])
	}
	g, err := clear.ParseResponse(status, []byte(body))
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	if g.ValidTill == nil || !g.ValidTill.Equal(time.Date(2023, 4, 11, 20, 21, 24, 0, time.UTC)) {
		t.Errorf("valid_till %v, want 2023-04-11T20:21:24Z", g.ValidTill)
	}
	if !e.emu.Live(g.AccessToken.Reveal()) {
		t.Error("the token just issued is not live")
	}
}

func TestTokenLength(t *testing.T) {
	for _, n := range []int{40, 103, 255, clear.MaxTokenLength} {
		e := newEnv(t, Options{TokenLength: n})
		if tok := e.mustToken(t); len(tok) != n || !tokenRE.MatchString(tok) {
			t.Errorf("TokenLength %d: got %d characters %q", n, len(tok), tok)
		}
	}
	for _, n := range []int{39, clear.MaxTokenLength + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("TokenLength %d: New did not panic", n)
				}
			}()
			New(Options{TokenLength: n})
		}()
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, Options{Lifetime: time.Hour})
	first := e.mustToken(t)
	second := e.mustToken(t)
	if first == second {
		t.Fatal("two tokens are equal")
	}
	if e.emu.Live(first) {
		t.Error("first token is still live after the second was issued")
	}
	if !e.emu.Live(second) {
		t.Error("second token is not live")
	}
	if got := e.emu.Issued(secret); got != 2 {
		t.Errorf("Issued = %d, want 2", got)
	}
}

func TestAuthErrors(t *testing.T) {
	const (
		inactive = "inactive-secret"
		blocked  = "blocked-secret"
	)
	tests := []struct {
		name    string
		header  http.Header
		code    string
		counted string // the secret the request counts against, if any
	}{
		{"missing header", http.Header{}, CodeMissingSecret, ""},
		{"empty header", secretHeader(""), CodeMissingSecret, ""},
		{"unknown secret", secretHeader("nope"), CodeInvalidSecret, ""},
		{"deactivated secret", secretHeader(inactive), CodeInvalidSecret, inactive},
		{"IP blocked", secretHeader(blocked), CodeIPBlocked, blocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.emu.SetSecretActive(inactive, false)
			e.emu.SetIPBlocked(blocked, true)
			status, body := e.get(t, http.MethodGet, clear.TokenPath, tt.header)
			want := `{"errors":[{"error_code":"` + tt.code + `","error_message":"` + messages[tt.code] +
				`","error_source":"CLEAR","error_id":null}]}`
			if status != http.StatusUnauthorized || body != want {
				t.Fatalf("answer %d %s\nwant 401 %s", status, body, want)
			}
			_, err := clear.ParseResponse(status, []byte(body))
			if ce := clearErr(t, err, clear.KindAuth); ce.Code != tt.code {
				t.Errorf("code %q, want %q", ce.Code, tt.code)
			}
			if tt.counted != "" && e.emu.RequestsToday(tt.counted) != 1 {
				t.Errorf("the request did not count against its secret")
			}
			if st := e.emu.Stats(); st.Requests != 1 || st.Issued != 0 {
				t.Errorf("stats %+v, want 1 request and no token", st)
			}
		})
	}
}

func TestDeactivationRevokes(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.mustToken(t)
	e.emu.SetIPBlocked(secret, true)
	if !e.emu.Live(tok) {
		t.Error("IP blocking revoked the token")
	}
	e.emu.SetIPBlocked(secret, false)
	e.emu.SetSecretActive(secret, false)
	if e.emu.Live(tok) {
		t.Error("the token of a deactivated secret is live")
	}
	e.emu.SetSecretActive(secret, true)
	if e.emu.Live(tok) {
		t.Error("reactivation brought the token back")
	}
	e.mustToken(t)
}

func TestDailyLimit(t *testing.T) {
	e := newEnv(t, Options{}) // the default limit
	e.clock.Set(time.Date(2023, 4, 11, 23, 0, 0, 0, time.UTC))
	for i := range DefaultDailyLimit {
		if _, err := e.token(context.Background(), secret); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	e.clock.Set(time.Date(2023, 4, 11, 23, 59, 59, 999e6, time.UTC))
	_, err := e.token(context.Background(), secret)
	if ce := clearErr(t, err, clear.KindRateLimited); ce.Status != 429 || ce.Code != CodeRateLimited {
		t.Errorf("request 289: %v", err)
	}
	// Refused requests count too, but queued faults wait for an admitted request.
	e.emu.Inject(ServerError())
	_, err = e.token(context.Background(), secret)
	clearErr(t, err, clear.KindRateLimited)
	if got := e.emu.RequestsToday(secret); got != DefaultDailyLimit+2 {
		t.Errorf("RequestsToday = %d, want %d", got, DefaultDailyLimit+2)
	}

	e.clock.Set(time.Date(2023, 4, 12, 0, 0, 0, 0, time.UTC))
	if got := e.emu.RequestsToday(secret); got != 0 {
		t.Errorf("RequestsToday after midnight = %d, want 0", got)
	}
	_, err = e.token(context.Background(), secret)
	clearErr(t, err, clear.KindTransient) // the queued fault
	e.mustToken(t)
	if got, want := e.emu.Requests(secret), DefaultDailyLimit+4; got != want {
		t.Errorf("Requests = %d, want %d", got, want)
	}
	if got := e.emu.RequestsToday(secret); got != 2 {
		t.Errorf("RequestsToday = %d, want 2", got)
	}
	if got := e.emu.Issued(secret); got != DefaultDailyLimit+1 {
		t.Errorf("Issued = %d, want %d", got, DefaultDailyLimit+1)
	}
}

func TestFaultsCountAgainstLimit(t *testing.T) {
	e := newEnv(t, Options{DailyLimit: 2})
	e.emu.Inject(ServerError())
	_, err := e.token(context.Background(), secret)
	clearErr(t, err, clear.KindTransient)
	e.mustToken(t)
	_, err = e.token(context.Background(), secret)
	clearErr(t, err, clear.KindRateLimited)
}

func TestLifetime(t *testing.T) {
	t.Run("never expires", func(t *testing.T) {
		e := newEnv(t, Options{})
		status, body := e.get(t, http.MethodGet, clear.TokenPath, secretHeader(secret))
		if status != http.StatusOK || !strings.HasSuffix(body, `","valid_till":null}`) {
			t.Fatalf("answer %d %s, want valid_till null", status, body)
		}
		g, err := clear.ParseResponse(status, []byte(body))
		if err != nil || g.ValidTill != nil {
			t.Fatalf("ParseResponse: %v, %v", g.ValidTill, err)
		}
		e.clock.Advance(10 * 365 * 24 * time.Hour)
		if !e.emu.Live(g.AccessToken.Reveal()) {
			t.Error("a never-expiring token died")
		}
	})
	t.Run("expires", func(t *testing.T) {
		e := newEnv(t, Options{Lifetime: time.Hour})
		tok := e.mustToken(t)
		e.clock.Set(time.Date(2023, 4, 11, 20, 21, 23, 999e6, time.UTC))
		if !e.emu.Live(tok) {
			t.Error("token died before valid_till")
		}
		e.clock.Set(time.Date(2023, 4, 11, 20, 21, 24, 0, time.UTC))
		if e.emu.Live(tok) {
			t.Error("token is live at valid_till")
		}
		if st := e.emu.Stats().Secrets[SecretID(secret)]; st.Live {
			t.Error("Stats says the expired token is live")
		}
	})
	t.Run("SetLifetime", func(t *testing.T) {
		e := newEnv(t, Options{Lifetime: time.Hour})
		e.emu.SetLifetime(20 * time.Second)
		g, err := e.token(context.Background(), secret)
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(20 * time.Second).Truncate(time.Second); g.ValidTill == nil || !g.ValidTill.Equal(want) {
			t.Errorf("valid_till %v, want %v", g.ValidTill, want)
		}
		e.emu.SetLifetime(0)
		if g, err = e.token(context.Background(), secret); err != nil || g.ValidTill != nil {
			t.Errorf("after SetLifetime(0): valid_till %v, %v", g.ValidTill, err)
		}
	})
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		fault  Fault
		kind   clear.Kind // 0: success
		status int
		code   string
		issued bool // whether a token is issued, revoking the previous one
	}{
		{"500", ServerError(), clear.KindTransient, 500, CodeServerError, false},
		{"502", Fault{Status: 502}, clear.KindTransient, 502, "CLR-502", false},
		{"429", Fault{Status: 429}, clear.KindRateLimited, 429, CodeRateLimited, false},
		{"401 default", Fault{Status: 401}, clear.KindAuth, 401, CodeInvalidSecret, false},
		{"401 IP", Fault{Status: 401, Code: CodeIPBlocked}, clear.KindAuth, 401, CodeIPBlocked, false},
		{"400", Fault{Status: 400}, clear.KindRejected, 400, "CLR-400", false},
		{"malformed", Malformed(), clear.KindMalformed, 200, "", true},
		{"oversized", Oversized(), clear.KindMalformed, 200, "", true},
		{"non-printable", NonPrintable(), clear.KindMalformed, 200, "", true},
		{"HTML 502", Fault{Status: 502, Body: "<html>Bad Gateway</html>"}, clear.KindTransient, 502, "", false},
		{"issue then fail", Fault{IssueThenFail: true}, clear.KindTransient, 500, CodeServerError, true},
		{"short delay", Fault{Delay: time.Millisecond}, 0, 200, "", true},
		{"explicit 200", Fault{Status: 200}, 0, 200, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			prev := e.mustToken(t)
			e.emu.Inject(tt.fault)
			g, err := e.token(context.Background(), secret)
			if tt.kind == 0 {
				if err != nil {
					t.Fatalf("token: %v", err)
				}
			} else {
				ce := clearErr(t, err, tt.kind)
				if ce.Status != tt.status || ce.Code != tt.code {
					t.Errorf("error %v: want status %d code %q", err, tt.status, tt.code)
				}
				if wantID := tt.status >= 500 && tt.code != ""; (ce.ErrorID != "") != wantID {
					t.Errorf("error_id %q, want one: %v", ce.ErrorID, wantID)
				}
			}
			if got := e.emu.Live(prev); got == tt.issued {
				t.Errorf("previous token live = %v, want %v", got, !tt.issued)
			}
			if got, want := e.emu.Issued(secret), map[bool]int{false: 1, true: 2}[tt.issued]; got != want {
				t.Errorf("Issued = %d, want %d", got, want)
			}
			if tt.kind == 0 && !e.emu.Live(g.AccessToken.Reveal()) {
				t.Error("the token granted is not live")
			}
			if st := e.emu.Stats(); st.PendingFaults != 0 || !st.Secrets[SecretID(secret)].Live {
				t.Errorf("stats %+v, want the fault consumed and one token live", st)
			}
			// The fault was one-shot.
			e.mustToken(t)
		})
	}
}

func TestFaultsFIFO(t *testing.T) {
	e := newEnv(t, Options{})
	e.emu.Inject(Fault{Status: 502}, Fault{Status: 503})
	e.emu.Inject(Fault{Status: 504})
	for _, want := range []int{502, 503, 504} {
		_, err := e.token(context.Background(), secret)
		if ce := clearErr(t, err, clear.KindTransient); ce.Status != want {
			t.Errorf("status %d, want %d", ce.Status, want)
		}
	}
	e.mustToken(t)
}

func TestDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	t.Run("honoured", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.emu.Inject(Fault{Delay: delay})
		begin := time.Now()
		tok := e.mustToken(t)
		if elapsed := time.Since(begin); elapsed < delay {
			t.Errorf("answer after %v, want at least %v", elapsed, delay)
		}
		if !e.emu.Live(tok) {
			t.Error("a slow answer's token is not live")
		}
	})
	t.Run("client gives up first", func(t *testing.T) {
		e := newEnv(t, Options{})
		prev := e.mustToken(t)
		e.emu.Inject(Fault{Delay: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := e.token(ctx, secret)
		clearErr(t, err, clear.KindTransient)
		if !e.emu.Live(prev) || e.emu.Issued(secret) != 1 {
			t.Error("an abandoned slow request issued a token")
		}
	})
	t.Run("issued then lost to a timeout", func(t *testing.T) {
		e := newEnv(t, Options{})
		prev := e.mustToken(t)
		e.emu.Inject(Fault{IssueThenFail: true, Delay: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := e.token(ctx, secret)
		clearErr(t, err, clear.KindTransient)
		if e.emu.Live(prev) || e.emu.Issued(secret) != 2 {
			t.Error("the lost request did not issue a token")
		}
	})
}

func TestHang(t *testing.T) {
	t.Run("ends when the client gives up", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.emu.Inject(Fault{Hang: true})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		begin := time.Now()
		_, err := e.token(ctx, secret)
		clearErr(t, err, clear.KindTransient)
		if elapsed := time.Since(begin); elapsed > 5*time.Second {
			t.Errorf("hung request returned after %v", elapsed)
		}
		if e.emu.Issued(secret) != 0 {
			t.Error("a hung request issued a token")
		}
		e.mustToken(t)
	})
	t.Run("ends when the emulator closes", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.emu.Inject(Fault{Hang: true})
		done := make(chan error, 1)
		go func() {
			_, err := e.token(context.Background(), secret)
			done <- err
		}()
		for e.emu.Stats().PendingFaults != 0 {
			time.Sleep(time.Millisecond)
		}
		e.emu.Close()
		select {
		case err := <-done:
			clearErr(t, err, clear.KindTransient)
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not release the hung request")
		}
	})
}

func TestPing(t *testing.T) {
	e := newEnv(t, Options{Lifetime: time.Hour})
	first := e.mustToken(t)
	second := e.mustToken(t)
	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"missing", "", 401, CodeMissingToken},
		{"unknown", "1.nope", 401, CodeInvalidToken},
		{"revoked", first, 401, CodeInvalidToken},
		{"live", second, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.get(t, http.MethodGet, "/_emulator/api/ping", http.Header{clear.HeaderAuthToken: {tt.token}})
			if status != tt.status {
				t.Fatalf("status %d %s, want %d", status, body, tt.status)
			}
			if tt.status == 200 && body != `{"ok":true}` {
				t.Errorf("body %s", body)
			}
			if tt.code != "" && !strings.Contains(body, `"error_code":"`+tt.code+`"`) {
				t.Errorf("body %s lacks %s", body, tt.code)
			}
		})
	}
	e.clock.Advance(time.Hour)
	if status, _ := e.get(t, http.MethodGet, "/_emulator/api/ping", http.Header{clear.HeaderAuthToken: {second}}); status != 401 {
		t.Errorf("expired token: status %d, want 401", status)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	e := newEnv(t, Options{})
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, clear.TokenPath, 405},
		{http.MethodHead, clear.TokenPath, 405},
		{http.MethodDelete, clear.TokenPath, 405},
		{http.MethodGet, clear.TokenPath + "/", 404},
		{http.MethodGet, "/integration/v1/authz", 404},
		{http.MethodGet, "/", 404},
	}
	for _, tt := range tests {
		if status, _ := e.get(t, tt.method, tt.path, secretHeader(secret)); status != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, status, tt.status)
		}
	}
	if st := e.emu.Stats(); st.Issued != 0 {
		t.Errorf("stats %+v, want no token issued", st)
	}
}

func TestConcurrency(t *testing.T) {
	const n = 50
	e := newEnv(t, Options{Lifetime: time.Hour})
	e.emu.Inject(ServerError(), ServerError())
	var wg sync.WaitGroup
	tokens := make(chan string, n)
	failures := make(chan error, n)
	for range n {
		wg.Go(func() {
			g, err := e.token(context.Background(), secret)
			if err != nil {
				failures <- err
				return
			}
			tokens <- g.AccessToken.Reveal()
		})
	}
	// Controls and inspection race with the requests.
	wg.Go(func() { e.emu.SetLifetime(2 * time.Hour); _ = e.emu.Stats() })
	wg.Wait()
	close(tokens)
	close(failures)
	live := 0
	for tok := range tokens {
		if e.emu.Live(tok) {
			live++
		}
	}
	if live != 1 {
		t.Errorf("%d live tokens, want 1", live)
	}
	if len(failures) != 2 {
		t.Errorf("%d failures, want the 2 injected", len(failures))
	}
	st := e.emu.Stats()
	if got := st.Secrets[SecretID(secret)]; st.Requests != n || st.Issued != n-2 ||
		got.Requests != n || got.RequestsToday != n || got.Issued != n-2 || !got.Live {
		t.Errorf("stats %+v", st)
	}
}

func TestNothingConfidentialLeaks(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tok := e.mustToken(t)
	e.emu.Inject(ServerError())
	_, _ = e.token(context.Background(), secret)
	_, _ = e.token(context.Background(), "wrong")
	_, stats := e.get(t, http.MethodGet, "/_emulator/stats", nil)
	for name, text := range map[string]string{"logs": logs.String(), "stats": stats} {
		if strings.Contains(text, secret) || strings.Contains(text, tok) || strings.Contains(text, "wrong") {
			t.Errorf("%s reveal a secret or token:\n%s", name, text)
		}
	}
	if !strings.Contains(logs.String(), "status=500") || !strings.Contains(stats, SecretID(secret)) {
		t.Errorf("logs or stats lack what they should hold:\n%s\n%s", logs.String(), stats)
	}
}
