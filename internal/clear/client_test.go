package clear_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
)

const secretValue = "3eboH/vsr2VpGNFqDSXzVs0yNj0fMDJToPjs71V3WATqLtmzf9kyNBZ24mCNRJsDj2tEe72PxFDOPccR579w=="

func TestParseResponse(t *testing.T) {
	tok := "1.2f205010-b96c-84ar-9dcd-5524c42eb99e_4d05f5b02559a70d65c958d15e1747b5"
	tests := []struct {
		name   string
		status int
		body   string
		kind   clear.Kind
		code   string
		id     string
		till   string
		drift  string // a part of Grant.Drift
	}{
		{name: "seed success", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-11T20:21:24+00:00"}`, till: "2023-04-11T20:21:24Z"},
		{name: "zulu", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-11T20:21:24Z"}`, till: "2023-04-11T20:21:24Z"},
		{name: "offset converted to UTC", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-12T01:51:24+05:30"}`, till: "2023-04-11T20:21:24Z"},
		{name: "never expires", status: 200, body: `{"access_token":"` + tok + `","valid_till":null}`},
		{name: "001", status: 401, body: `{"errors":[{"error_code":"CLI-SEC-001","error_message":"Client secret header is missing or value is empty.","error_source":"CLEAR","error_id":null}]}`, kind: clear.KindAuth, code: "CLI-SEC-001"},
		{name: "002", status: 401, body: `{"errors":[{"error_code":"CLI-SEC-002","error_message":"Invalid or inactive client secret.","error_source":"CLEAR","error_id":null}]}`, kind: clear.KindAuth, code: "CLI-SEC-002"},
		{name: "003", status: 401, body: `{"errors":[{"error_code":"CLI-SEC-003","error_message":"API Client IP is not within the allowed IP range.","error_source":"CLEAR","error_id":null}]}`, kind: clear.KindAuth, code: "CLI-SEC-003"},
		{name: "401 without body", status: 401, body: ``, kind: clear.KindAuth},
		{name: "429", status: 429, body: `Too Many Requests`, kind: clear.KindRateLimited},
		{name: "500 with id", status: 500, body: `{"errors":[{"error_code":"X","error_message":"boom","error_source":"CLEAR","error_id":"abc-123"}]}`, kind: clear.KindTransient, id: "abc-123", code: "X"},
		{name: "503 html", status: 503, body: `<html>`, kind: clear.KindTransient},
		{name: "redirect", status: 302, body: ``, kind: clear.KindRejected},
		{name: "404", status: 404, body: `{}`, kind: clear.KindRejected},
		{name: "garbage", status: 200, body: `<html>`, kind: clear.KindMalformed},
		{name: "no token", status: 200, body: `{"valid_till":null}`, kind: clear.KindMalformed},
		{name: "empty token", status: 200, body: `{"access_token":""}`, kind: clear.KindMalformed},
		{name: "token not a string", status: 200, body: `{"access_token":42}`, kind: clear.KindMalformed},
		{name: "oversized", status: 200, body: `{"access_token":"` + strings.Repeat("a", 257) + `"}`, kind: clear.KindMalformed},
		{name: "max length ok", status: 200, body: `{"access_token":"` + strings.Repeat("a", 256) + `"}`},
		{name: "space", status: 200, body: `{"access_token":"ab cd"}`, kind: clear.KindMalformed},
		{name: "newline", status: 200, body: `{"access_token":"ab\ncd"}`, kind: clear.KindMalformed},
		{name: "unicode", status: 200, body: `{"access_token":"abcé"}`, kind: clear.KindMalformed},
		{name: "no colon in offset", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-11T20:21:24+0000"}`, till: "2023-04-11T20:21:24Z"},
		{name: "hour offset", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-12T01:21:24+05"}`, till: "2023-04-11T20:21:24Z"},
		{name: "fraction and no colon", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-12T01:51:24.123+0530"}`, till: "2023-04-11T20:21:24Z"},
		{name: "space separator", status: 200, body: `{"access_token":"` + tok + `","valid_till":"2023-04-11 20:21:24+00:00"}`, till: "2023-04-11T20:21:24Z"},
		{name: "basic format", status: 200, body: `{"access_token":"` + tok + `","valid_till":"20230411T202124Z"}`, till: "2023-04-11T20:21:24Z"},
		// A usable token whose valid_till is not understood is kept: Clear has already revoked
		// the previous one. The drift is reported, and the expiry is unknown (nil).
		{name: "bad time", status: 200, body: `{"access_token":"abc","valid_till":"soon"}`, drift: `valid_till "soon" is not an ISO 8601 time`},
		{name: "time as number", status: 200, body: `{"access_token":"abc","valid_till":1700000000}`, drift: "valid_till 1700000000 is a number, not an ISO 8601 time"},
		{name: "epoch string", status: 200, body: `{"access_token":"abc","valid_till":"1700000000"}`, drift: `valid_till "1700000000" is not an ISO 8601 time`},
		{name: "bare date", status: 200, body: `{"access_token":"abc","valid_till":"2023-04-11"}`, drift: `valid_till "2023-04-11" is not an ISO 8601 time`},
		{name: "empty string", status: 200, body: `{"access_token":"abc","valid_till":""}`, drift: `valid_till "" is not`},
		{name: "year 9999 in UTC", status: 200, body: `{"access_token":"abc","valid_till":"9999-12-31T23:59:59Z"}`, till: "9999-12-31T23:59:59Z"},
		{name: "past year 9999 in UTC", status: 200, body: `{"access_token":"abc","valid_till":"9999-12-31T23:59:59-05:00"}`, drift: `valid_till "9999-12-31T23:59:59-05:00" is not`},
		{name: "before year 0 in UTC", status: 200, body: `{"access_token":"abc","valid_till":"0000-01-01T00:00:00+05:00"}`, drift: `valid_till "0000-01-01T00:00:00+05:00" is not`},
		{name: "bool", status: 200, body: `{"access_token":"abc","valid_till":true}`, drift: "valid_till is a boolean"},
		{name: "object", status: 200, body: `{"access_token":"abc","valid_till":{"at":1}}`, drift: "valid_till is an object"},
		{name: "hostile text", status: 200, body: `{"access_token":"abc","valid_till":"\u202e\u009bx\n"}`, drift: `valid_till "  x " is not`},
		{name: "bad time, bad token", status: 200, body: `{"access_token":"a b","valid_till":1700000000}`, kind: clear.KindMalformed},
		{name: "408", status: 408, body: ``, kind: clear.KindTransient},
		{name: "200 with errors", status: 200, body: `{"errors":[{"error_code":"E"}]}`, kind: clear.KindMalformed},
		{name: "array", status: 200, body: `[]`, kind: clear.KindMalformed},
		// Clear leaves errors out of a success; an empty one of another shape carries no error,
		// and must not cost the token Clear issued (and revoked the previous one for).
		{name: "200 with errors an empty object", status: 200, body: `{"access_token":"abc","errors":{}}`},
		{name: "200 with errors an empty string", status: 200, body: `{"access_token":"abc","errors":""}`},
		{name: "200 with errors an empty array", status: 200, body: `{"access_token":"abc","errors":[ ]}`},
		{name: "200 with errors null", status: 200, body: `{"access_token":"abc","errors":null}`},
		{name: "200 with an error as an object", status: 200, body: `{"access_token":"abc","errors":{"error_code":"E"}}`, kind: clear.KindMalformed},
		{name: "200 with an error of odd fields", status: 200, body: `{"access_token":"abc","errors":[{"error_code":1}]}`, kind: clear.KindMalformed},
		// A field of another type than Clear documents costs that field, not the code beside it
		// that the runbook's remedy depends on.
		{name: "401 with an error of odd fields", status: 401, body: `{"errors":[{"error_code":"CLI-SEC-003","error_message":["x"],"error_id":7}]}`, kind: clear.KindAuth, code: "CLI-SEC-003"},
		{name: "500 with a numeric error_id", status: 500, body: `{"errors":[{"error_code":"X","error_id":12345}]}`, kind: clear.KindTransient, code: "X"},
		{name: "401 with an odd first error", status: 401, body: `{"errors":[7,{"error_code":"CLI-SEC-001"}]}`, kind: clear.KindAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := clear.ParseResponse(tt.status, []byte(tt.body))
			if tt.kind == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if !strings.Contains(g.Drift, tt.drift) || (tt.drift == "") != (g.Drift == "") {
					t.Fatalf("drift = %q, want it to hold %q", g.Drift, tt.drift)
				}
				if tt.till == "" && g.ValidTill != nil || tt.till != "" && (g.ValidTill == nil || g.ValidTill.Format(time.RFC3339) != tt.till) {
					t.Fatalf("valid_till = %v, want %q", g.ValidTill, tt.till)
				}
				return
			}
			var ce *clear.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *clear.Error", err)
			}
			if ce.Kind != tt.kind || ce.Code != tt.code || ce.ErrorID != tt.id {
				t.Fatalf("got kind %v code %q id %q, want %v %q %q", ce.Kind, ce.Code, ce.ErrorID, tt.kind, tt.code, tt.id)
			}
			if tt.id != "" && !strings.Contains(ce.Error(), "error_id "+tt.id) {
				t.Fatalf("message %q lacks the error_id", ce.Error())
			}
			if ce.Permanent() != (tt.kind == clear.KindAuth || tt.kind == clear.KindRejected) {
				t.Fatal("Permanent() disagrees with the kind")
			}
		})
	}
}

func TestSecretsRedactEverywhere(t *testing.T) {
	s := clear.NewClientSecret(secretValue)
	tok := clear.NewAccessToken("tok-" + secretValue)
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("x", "secret", s, "token", tok, "any", slog.AnyValue(struct{ S clear.ClientSecret }{s}))
		l.Info(fmt.Sprintf("%v %s %q %+v %#v %x", s, s, s, tok, tok, s))
	}
	out := buf.String() + fmt.Sprint(s, tok) + fmt.Sprintf("%#v", struct{ T clear.AccessToken }{tok})
	if strings.Contains(out, secretValue) {
		t.Fatalf("a secret leaked: %s", out)
	}
	if b, _ := s.MarshalJSON(); strings.Contains(string(b), secretValue) {
		t.Fatal("MarshalJSON leaked")
	}
}

func TestBaseURLRules(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://api.clear.in": true, "https://api-sandbox.clear.in/": true, "http://127.0.0.1:8080": true,
		"http://localhost:1": true, "http://[::1]:9": true, "http://api.clear.in": false, "ftp://x": false,
		"": false, "https://": false, "https://u:p@api.clear.in": false, "https://api.clear.in?x=1": false, "https://api.clear.in/?": false,
	} {
		if _, err := clear.ParseBaseURL(url); (err == nil) != ok {
			t.Errorf("ParseBaseURL(%q) error = %v, want ok=%v", url, err, ok)
		}
	}
}

func TestClientSendsSecretAndNeverFollowsRedirects(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(clear.HeaderClientSecret) != "" {
			leaked.Store(true)
		}
		fmt.Fprint(w, `{"access_token":"x","valid_till":null}`)
	}))
	defer elsewhere.Close()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get(clear.HeaderClientSecret)
		if r.URL.Path != clear.TokenPath || r.Method != http.MethodGet {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		http.Redirect(w, r, elsewhere.URL+clear.TokenPath, http.StatusFound)
	}))
	defer srv.Close()
	c, err := clear.NewClient(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Token(context.Background(), clear.NewClientSecret(secretValue))
	var ce *clear.Error
	if !errors.As(err, &ce) || ce.Kind != clear.KindRejected || ce.Status != http.StatusFound {
		t.Fatalf("err = %v", err)
	}
	if got != secretValue {
		t.Fatal("the secret header was not sent")
	}
	if leaked.Load() {
		t.Fatal("a redirect carried the client secret to another host")
	}
	if strings.Contains(err.Error(), secretValue) {
		t.Fatal("the error holds the secret")
	}
}

func TestClientCapsBodyAndTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(clear.HeaderClientSecret) {
		case "huge":
			fmt.Fprint(w, `{"access_token":"`+strings.Repeat("a", 1<<20)+`"}`)
		case "slow":
			// Never answer: only the client's timeout can end the request. If it did not, the
			// test would hang, so no clock is needed to prove it works.
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	// The huge answer gets the default timeout: a megabyte under -race on a busy machine can take
	// longer than the slow case's deliberately short one.
	c, _ := clear.NewClient(srv.URL, nil)
	_, err := c.Token(context.Background(), clear.NewClientSecret("huge"))
	var ce *clear.Error
	if !errors.As(err, &ce) || ce.Kind != clear.KindMalformed || !strings.Contains(ce.Message, "larger than") {
		t.Fatalf("huge: %v", err)
	}
	slow, _ := clear.NewClient(srv.URL, &http.Client{Timeout: 200 * time.Millisecond})
	_, err = slow.Token(context.Background(), clear.NewClientSecret("slow"))
	if !errors.As(err, &ce) || ce.Kind != clear.KindTransient || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow: %v", err)
	}
	if strings.Contains(err.Error(), clear.HeaderClientSecret) {
		t.Fatal("the error names the header")
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(200, []byte(`{"access_token":"abc","valid_till":"2023-04-11T20:21:24+00:00"}`))
	f.Add(200, []byte(`{"access_token":"abc","valid_till":null}`))
	f.Add(401, []byte(`{"errors":[{"error_code":"CLI-SEC-002","error_message":"Invalid","error_source":"CLEAR","error_id":null}]}`))
	f.Add(500, []byte(`{"errors":[{"error_id":"x"}]}`))
	f.Add(200, []byte(`{"access_token":"a b"}`))
	f.Add(200, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		g, err := clear.ParseResponse(status, body)
		if err == nil {
			if g.Drift != "" && g.ValidTill != nil {
				t.Fatalf("a drifted valid_till still has a time")
			}
			tok := g.AccessToken.Reveal()
			if status != 200 || tok == "" || len(tok) > clear.MaxTokenLength {
				t.Fatalf("accepted status %d token of %d chars", status, len(tok))
			}
			for i := 0; i < len(tok); i++ {
				if tok[i] < 0x21 || tok[i] > 0x7e {
					t.Fatalf("accepted a non-printable token")
				}
			}
			return
		}
		var ce *clear.Error
		if !errors.As(err, &ce) || ce.Error() == "" {
			t.Fatalf("error %v is not a described *clear.Error", err)
		}
	})
}

// TestTokenSpellingTheSecretIsMalformed is issue 19 item 13: an answer whose access_token is the
// client secret sent, or carries a piece of it in any case, is malformed (retried, never stored),
// and its message does not quote it.
func TestTokenSpellingTheSecretIsMalformed(t *testing.T) {
	for _, tok := range []string{secretValue, "1." + secretValue[10:40], strings.ToLower(secretValue[50:80])} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "valid_till": nil})
		}))
		c, err := clear.NewClient(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Token(context.Background(), clear.NewClientSecret(secretValue))
		srv.Close()
		var ce *clear.Error
		if !errors.As(err, &ce) || ce.Kind != clear.KindMalformed || !strings.Contains(ce.Message, "carries the client secret") {
			t.Fatalf("Token = %v, want a malformed answer", err)
		}
		if strings.Contains(err.Error(), tok) {
			t.Fatalf("the error quotes the token: %v", err)
		}
	}
}

// TestTokenIsNeverResentAfterADroppedConnection: net/http resends an idempotent request, and any
// GET counts as one, on a new connection when a reused connection closes before the answer. Clear's
// token GET is not idempotent: a resend asks for a second token, which revokes the first and spends
// the daily budget behind the engine's back. Here Clear drops the connection once it has the
// request; the call must fail, and Clear must have seen exactly that one request.
func TestTokenIsNeverResentAfterADroppedConnection(t *testing.T) {
	emu := emulator.New(emulator.Options{Secrets: []string{secretValue}})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	c, err := clear.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := clear.NewClientSecret(secretValue)
	// The first request leaves a connection that the second could reuse.
	if _, err := c.Token(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	emu.Inject(emulator.Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := c.Token(context.Background(), cs)
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); emu.Requests(secretValue) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second request never reached Clear")
		}
	}
	emu.Close() // Clear drops the held connection; later requests are answered as usual
	if err := <-done; err == nil {
		t.Error("a request whose connection dropped got a token: it was sent again")
	}
	if n := emu.Requests(secretValue); n != 2 {
		t.Errorf("Clear saw %d token requests, want 2: the dropped one was resent", n)
	}
}

// Whether Clear may have issued a token after a failed request: not when the request never left
// (no connection), but when it did and no answer came (a timeout), and whenever the transport does
// not say (a RoundTripper other than net/http's, which reports no write): then the safe answer is
// that it may have (a review of the session found such a transport's failures taken for unsent).
func TestMayHaveIssued(t *testing.T) {
	ask := func(base string, hc *http.Client) *clear.Error {
		t.Helper()
		c, err := clear.NewClient(base, hc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Token(context.Background(), clear.NewClientSecret("sec-0123456789abcdef"))
		var ce *clear.Error
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v", err)
		}
		return ce
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	if e := ask(closed, nil); e.MayHaveIssued() {
		t.Errorf("no connection: %v may have issued", e)
	}
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	if e := ask(hang.URL, &http.Client{Timeout: 200 * time.Millisecond}); !e.MayHaveIssued() {
		t.Errorf("sent, and no answer: %v may not have issued", e)
	}
	other := &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) { return nil, errors.New("broken") })}
	if e := ask(closed, other); !e.MayHaveIssued() {
		t.Errorf("a transport that does not say: %v may not have issued", e)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A malformed proxy address is never told with its password: Go's refusal quotes it whole, and
// the Clear client passed it to its error, and from there to logs and status (a review of the
// session; the gateway's upstream had this rule already, now the one both use).
func TestAProxysPasswordIsNeverTold(t *testing.T) {
	hc := &http.Client{Transport: &http.Transport{Proxy: func(*http.Request) (*url.URL, error) {
		return nil, fmt.Errorf("invalid proxy address %q: %v", "http://erp:hunter2@proxy.example:80:80", `invalid port ":hunter2"`)
	}}}
	c, err := clear.NewClient("https://api.clear.in", hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Token(context.Background(), clear.NewClientSecret("sec-0123456789abcdef"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v", err)
	}
}
