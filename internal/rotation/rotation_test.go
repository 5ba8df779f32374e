package rotation_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// faultyAPI wraps the real Secrets Manager client and fails chosen calls.
type faultyAPI struct {
	store.API
	mu   sync.Mutex
	fail func(op string, in any) error
}

func (f *faultyAPI) hook(op string, in any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		return nil
	}
	return f.fail(op, in)
}

func (f *faultyAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if err := f.hook("GetSecretValue", in); err != nil {
		return nil, err
	}
	return f.API.GetSecretValue(ctx, in, o...)
}

func (f *faultyAPI) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if err := f.hook("PutSecretValue", in); err != nil {
		return nil, err
	}
	return f.API.PutSecretValue(ctx, in, o...)
}

type fixture struct {
	t        *testing.T
	clock    *fake.Clock
	emu      *emulator.Server
	srv      *httptest.Server
	sm       *secretsmanager.Client
	api      *faultyAPI
	logs     *proctest.Buffer
	secret   string
	client   *rotation.Client
	tokenSID string
}

func newFixture(t *testing.T, lifetime time.Duration) *fixture {
	t.Helper()
	moto := mototest.Shared(t)
	f := &fixture{t: t, clock: fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)), logs: &proctest.Buffer{}}
	f.secret = "cs-" + strings.Repeat("s3cr3t", 8) + mototest.Name(t, "x")[5:12]
	f.emu = emulator.New(emulator.Options{Now: f.clock.Now, Lifetime: lifetime, Secrets: []string{f.secret}})
	f.srv = httptest.NewServer(f.emu)
	t.Cleanup(f.srv.Close)
	f.sm = moto.Client()
	f.api = &faultyAPI{API: f.sm}
	cc, err := clear.NewClient(f.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.tokenSID = mototest.Name(t, "token")
	f.client = &rotation.Client{
		Name: "erp", BaseURL: f.srv.URL, Clear: cc,
		ClientSecret: clear.NewClientSecret(f.secret), TokenSecretID: f.tokenSID, DailyLimit: 48,
	}
	t.Cleanup(func() { f.scanLogs() })
	return f
}

func (f *fixture) engine(owner string) *rotation.Engine {
	return &rotation.Engine{
		Store: store.New(f.api), Now: f.clock.Now, Rand: func() float64 { return 0.5 },
		Log:   slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Owner: owner, WriteRetry: time.Millisecond,
	}
}

// scanLogs fails the test if a client secret or any issued token reached the logs.
func (f *fixture) scanLogs() {
	logs := f.logs.String()
	if strings.Contains(logs, f.secret) {
		f.t.Errorf("logs contain the client secret")
	}
	for _, tok := range f.tokensSeen() {
		if strings.Contains(logs, tok) {
			f.t.Errorf("logs contain an access token")
		}
	}
}

// tokensSeen returns every token stored in the token secret's versions.
func (f *fixture) tokensSeen() []string {
	out, err := f.sm.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(f.tokenSID), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		return nil
	}
	var toks []string
	for _, v := range out.Versions {
		gv, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(f.tokenSID), VersionId: v.VersionId})
		if err != nil {
			continue
		}
		if d, err := document.ParseToken([]byte(aws.ToString(gv.SecretString))); err == nil {
			toks = append(toks, d.AccessToken.Reveal())
		}
	}
	return toks
}

func (f *fixture) read(stage string) (document.Token, string, bool) {
	f.t.Helper()
	out, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(f.tokenSID), VersionStage: aws.String(stage)})
	if err != nil {
		f.t.Fatalf("reading %s: %v", stage, err)
	}
	d, err := document.ParseToken([]byte(aws.ToString(out.SecretString)))
	return d, aws.ToString(out.VersionId), err == nil
}

func (f *fixture) state() document.State {
	f.t.Helper()
	out, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(f.tokenSID), VersionStage: aws.String(document.StateStage)})
	if err != nil {
		f.t.Fatalf("reading state: %v", err)
	}
	st, err := document.ParseState([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// apiClient returns the state's bookkeeping of the fixture's only API client.
func (f *fixture) apiClient() document.APIClient {
	f.t.Helper()
	st := f.state()
	if len(st.APIClients) != 1 {
		f.t.Fatalf("state has %d API clients, want 1: %+v", len(st.APIClients), st)
	}
	return st.APIClients[0]
}

func (f *fixture) versions() int {
	f.t.Helper()
	out, err := f.sm.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(f.tokenSID), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(out.Versions)
}

func (f *fixture) live() bool {
	d, _, ok := f.read("AWSCURRENT")
	return ok && f.emu.Live(d.AccessToken.Reveal())
}

func expect(t *testing.T, r rotation.Result, want rotation.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %q (%s), want %q", r.Outcome, r.Message, want)
	}
}

func TestFirstRotationCreatesSecretAndStoresToken(t *testing.T) {
	f := newFixture(t, time.Hour)
	r := f.engine("a").Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Rotated)
	if !r.Requested || f.emu.Requests(f.secret) != 1 {
		t.Fatalf("requests = %d, want 1", f.emu.Requests(f.secret))
	}
	tok, _, ok := f.read("AWSCURRENT")
	if !ok || !f.emu.Live(tok.AccessToken.Reveal()) {
		t.Fatal("AWSCURRENT does not hold a live token")
	}
	if tok.ValidTill == nil || !tok.ValidTill.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("valid_till = %v", tok.ValidTill)
	}
	if a := f.apiClient(); a.Requests != 1 || a.Day != "2026-11-21" {
		t.Fatalf("state = %+v", a)
	}
	// The renewal falls when a third of the lifetime is left.
	if want := f.clock.Now().Add(40 * time.Minute); r.RenewAt == nil || !r.RenewAt.Equal(want) {
		t.Fatalf("renew_at = %v, want %v", r.RenewAt, want)
	}
}

func TestNotDueWritesNothingAndDueRotatesOnce(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
	first, firstID, _ := f.read("AWSCURRENT")
	n := f.versions()
	f.clock.Advance(39 * time.Minute)
	for range 3 {
		expect(t, e.Rotate(context.Background(), f.client, false), rotation.NotDue)
	}
	if f.versions() != n || f.emu.Requests(f.secret) != 1 {
		t.Fatalf("an idle check wrote versions (%d -> %d) or called Clear (%d)", n, f.versions(), f.emu.Requests(f.secret))
	}
	f.clock.Advance(time.Minute)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.NotDue)
	if got := f.emu.Requests(f.secret); got != 2 {
		t.Fatalf("requests = %d, want 2", got)
	}
	prev, prevID, _ := f.read("AWSPREVIOUS")
	if prevID != firstID || prev.AccessToken.Reveal() != first.AccessToken.Reveal() {
		t.Fatal("the previous token is not AWSPREVIOUS")
	}
	if !f.live() {
		t.Fatal("AWSCURRENT is not live")
	}
}

func TestConcurrentRotatorsMakeOneRequest(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(map[bool]string{false: "due", true: "force"}[force], func(t *testing.T) {
			f := newFixture(t, time.Hour)
			if force {
				expect(t, f.engine("seed").Rotate(context.Background(), f.client, false), rotation.Rotated)
				f.clock.Advance(5 * time.Minute)
			}
			before := f.emu.Requests(f.secret)
			var wg sync.WaitGroup
			results := make([]rotation.Result, 8)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = f.engine(string(rune('a'+i))).Rotate(context.Background(), f.client, force)
				}()
			}
			wg.Wait()
			rotated := 0
			for _, r := range results {
				if r.Outcome == rotation.Rotated {
					rotated++
				} else if !r.Outcome.OK() {
					t.Errorf("outcome %s: %s", r.Outcome, r.Message)
				}
			}
			if got := f.emu.Requests(f.secret) - before; got != 1 || rotated != 1 {
				t.Fatalf("clear requests = %d, rotated = %d; want 1 and 1", got, rotated)
			}
			if !f.live() {
				t.Fatal("AWSCURRENT is not live")
			}
			// Issue 8: a forced rotation straight after any rotation still asks Clear (an operator
			// revoking a leaked token must not wait); only a live claim or a changed AWSCURRENT,
			// or the same event id, makes a force stop.
			expect(t, f.engine("late").Rotate(context.Background(), f.client, true), rotation.Rotated)
		})
	}
}

func TestDailyLimitRefusesAndResetsAtMidnightUTC(t *testing.T) {
	f := newFixture(t, time.Hour)
	f.client.DailyLimit = 3
	f.clock.Set(time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC))
	e := f.engine("a")
	for range 3 {
		expect(t, e.Rotate(context.Background(), f.client, true), rotation.Rotated)
		f.clock.Advance(2 * time.Minute)
	}
	r := e.Rotate(context.Background(), f.client, true)
	expect(t, r, rotation.Limited)
	var le *rotation.LimitError
	if !errors.As(r.Err, &le) || !strings.Contains(r.Message, "daily limit") {
		t.Fatalf("err = %v", r.Err)
	}
	if f.emu.Requests(f.secret) != 3 {
		t.Fatalf("requests = %d", f.emu.Requests(f.secret))
	}
	if want := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC); !r.NextCheck.Equal(want) {
		t.Fatalf("next check %v, want %v", r.NextCheck, want)
	}
	f.clock.Set(time.Date(2026, 11, 22, 0, 0, 1, 0, time.UTC))
	expect(t, e.Rotate(context.Background(), f.client, true), rotation.Rotated)
	if st := f.apiClient(); st.Day != "2026-11-22" || st.Requests != 1 {
		t.Fatalf("state after midnight = %+v", st)
	}
}

func TestFailedRequestsCountAndBackOff(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	f.emu.Inject(emulator.Fault{Status: 500})
	r := e.Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Failed)
	var ce *clear.Error
	if !errors.As(r.Err, &ce) || ce.Kind != clear.KindTransient || ce.ErrorID == "" {
		t.Fatalf("err = %#v", r.Err)
	}
	if f.state().Claim != nil {
		t.Fatal("the failure left the claim in place")
	}
	st := f.apiClient()
	if st.Requests != 1 || st.Failures != 1 || st.RetryAt == nil {
		t.Fatalf("state = %+v", st)
	}
	// Backoff with jitter 0.5 after one failure: 0.75 of the 30s base.
	if want := f.clock.Now().Add(22500 * time.Millisecond); !st.RetryAt.Equal(want) {
		t.Fatalf("retry at %v, want %v", st.RetryAt, want)
	}
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Blocked)
	if f.emu.Requests(f.secret) != 1 {
		t.Fatal("called Clear while backing off")
	}
	f.emu.Inject(emulator.Fault{Status: 502})
	f.clock.Advance(23 * time.Second)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Failed)
	st = f.apiClient()
	if st.Failures != 2 || !st.RetryAt.Equal(f.clock.Now().Add(45*time.Second)) {
		t.Fatalf("second backoff: %+v", st)
	}
	f.clock.Advance(46 * time.Second)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
	if st := f.apiClient(); st.Requests != 3 {
		t.Fatalf("requests counted = %d, want 3", st.Requests)
	}
	s, err := e.Status(context.Background(), f.client)
	if err != nil || s.LastError != nil || s.BlockedUntil != nil || s.RequestsToday == nil || *s.RequestsToday != 3 || s.State != rotation.HealthOK {
		t.Fatalf("status after recovery = %+v, %v", s, err)
	}
}

func TestUnauthorizedBlocksUntilConfigChanges(t *testing.T) {
	for _, code := range []string{"CLI-SEC-002", "CLI-SEC-003"} {
		t.Run(code, func(t *testing.T) {
			f := newFixture(t, time.Hour)
			e := f.engine("a")
			if code == "CLI-SEC-002" {
				f.emu.SetSecretActive(f.secret, false)
			} else {
				f.emu.SetIPBlocked(f.secret, true)
			}
			r := e.Rotate(context.Background(), f.client, false)
			expect(t, r, rotation.Failed)
			if !strings.Contains(r.Message, code) {
				t.Fatalf("message %q lacks %s", r.Message, code)
			}
			f.clock.Advance(time.Hour)
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Blocked)
			s, _ := e.Status(context.Background(), f.client)
			if s.BlockedUntil != nil || s.BlockedReason == nil || s.State != rotation.HealthBlocked || s.LastError == nil {
				t.Fatalf("status = %+v", s)
			}
			if f.emu.Requests(f.secret) != 1 {
				t.Fatalf("blocked client called Clear: %d", f.emu.Requests(f.secret))
			}
			// A new client secret is a new configuration.
			f.emu.SetSecretActive(f.secret, true)
			f.emu.SetIPBlocked(f.secret, false)
			other := f.secret + "-new"
			f.emu.AddSecret(other)
			f.client.ClientSecret = clear.NewClientSecret(other)
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
		})
	}
}

func TestForceLiftsAPermanentBlock(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	f.emu.SetIPBlocked(f.secret, true)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Failed)
	f.emu.SetIPBlocked(f.secret, false) // ops fixed the allowlist in Clear
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Blocked)
	expect(t, e.Rotate(context.Background(), f.client, true), rotation.Rotated)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.NotDue)
}

func TestRateLimitedBlocksUntilMidnight(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	f.emu.Inject(emulator.Fault{Status: 429})
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Failed)
	f.clock.Advance(time.Hour)
	r := e.Rotate(context.Background(), f.client, true)
	expect(t, r, rotation.Blocked)
	if want := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC); !r.NextCheck.Equal(want) {
		t.Fatalf("blocked until %v, want %v", r.NextCheck, want)
	}
	f.clock.Set(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
}

func TestMalformedAnswersAreNeverStored(t *testing.T) {
	for name, fault := range map[string]emulator.Fault{
		"garbage":      {Body: "<html>oops</html>"},
		"oversized":    emulator.Oversized(),
		"nonprintable": emulator.NonPrintable(),
		"empty":        {Body: `{"access_token":"","valid_till":null}`},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, time.Hour)
			e := f.engine("a")
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
			good, goodID, _ := f.read("AWSCURRENT")
			f.clock.Advance(45 * time.Minute)
			f.emu.Inject(fault)
			r := e.Rotate(context.Background(), f.client, false)
			expect(t, r, rotation.Failed)
			var ce *clear.Error
			if !errors.As(r.Err, &ce) || ce.Kind != clear.KindMalformed {
				t.Fatalf("err = %v", r.Err)
			}
			now, nowID, _ := f.read("AWSCURRENT")
			if nowID != goodID || now.AccessToken.Reveal() != good.AccessToken.Reveal() {
				t.Fatal("a malformed answer replaced the stored token")
			}
		})
	}
}

func TestTokenWriteIsRetriedAndSurvivesCancellation(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	ctx, cancel := context.WithCancel(context.Background())
	failures := 0
	f.api.fail = func(op string, in any) error {
		p, ok := in.(*secretsmanager.PutSecretValueInput)
		if !ok || len(p.VersionStages) != 0 || strings.Contains(aws.ToString(p.SecretString), "{}") {
			return nil
		}
		// The caller gives up as soon as Clear has answered, and the first writes fail.
		cancel()
		if failures < 3 {
			failures++
			return errors.New("injected: connection reset")
		}
		return nil
	}
	r := e.Rotate(ctx, f.client, false)
	expect(t, r, rotation.Rotated)
	if failures != 3 || !f.live() {
		t.Fatalf("failures = %d, live = %v", failures, f.live())
	}
}

func TestAbandonedClaimIsReleasedAtOnce(t *testing.T) {
	// Issue 9 D7: an owner that knows it abandoned its claim (its re-read failed) releases it, so
	// the next rotator need not wait for the lease, and the request it counted is given back.
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	f.api.fail = failReReadAfterClaim(f)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Failed)
	f.api.fail = nil
	if f.emu.Requests(f.secret) != 0 {
		t.Fatal("called Clear")
	}
	if st := f.state(); st.Claim != nil {
		t.Fatalf("the claim was not released: %+v", st.Claim)
	}
	f.clock.Advance(time.Second)
	expect(t, f.engine("b").Rotate(context.Background(), f.client, false), rotation.Rotated)
	if a := f.apiClient(); a.Requests != 1 {
		t.Fatalf("requests counted = %d, want 1", a.Requests)
	}
}

func TestVanishedOwnersClaimIsTakenOverWhenItsLeaseEnds(t *testing.T) {
	// Issue 9 D1: the lease is sized to the work (Clear's timeout, the write window, a margin),
	// not five minutes, and the loss is visible while it lasts.
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
	f.clock.Advance(41 * time.Minute)
	// The owner "crashes" after claiming: its re-read and every write after the claim fail.
	claimed := false
	f.api.fail = func(op string, in any) error {
		if p, ok := in.(*secretsmanager.PutSecretValueInput); ok && !claimed {
			claimed = strings.Contains(aws.ToString(p.SecretString), `"claim"`)
			return nil
		}
		if claimed {
			return errors.New("injected: the owner is gone")
		}
		return nil
	}
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Failed)
	f.api.fail = nil
	other := f.engine("b")
	r := other.Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Busy)
	lease := timing.Lease(clear.DefaultTimeout)
	if want := f.clock.Now().Add(lease); !r.NextCheck.Equal(want) {
		t.Fatalf("next check %v, want the lease's end %v", r.NextCheck, want)
	}
	f.clock.Advance(lease)
	s, err := other.Status(context.Background(), f.client)
	if err != nil || s.State != rotation.HealthTokenLost || s.TokenLost == nil || s.TokenLost.Certain {
		t.Fatalf("status after the lease = %+v, %v", s, err)
	}
	expect(t, other.Rotate(context.Background(), f.client, false), rotation.Rotated)
	if a := f.apiClient(); a.Requests != 3 {
		t.Fatalf("requests counted = %d, want 3 (the abandoned claim counts)", a.Requests)
	}
	if s, _ := other.Status(context.Background(), f.client); s.State != rotation.HealthOK || s.TokenLost != nil {
		t.Fatalf("status after recovery = %+v", s)
	}
}

// failReReadAfterClaim fails the read of AWSCURRENT that follows a claim.
func failReReadAfterClaim(f *fixture) func(op string, in any) error {
	return func(op string, in any) error {
		if g, ok := in.(*secretsmanager.GetSecretValueInput); ok && aws.ToString(g.VersionStage) == "AWSCURRENT" {
			if st, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(f.tokenSID), VersionStage: aws.String(document.StateStage)}); err == nil && strings.Contains(aws.ToString(st.SecretString), `"claim"`) {
				return errors.New("injected: crash after claim")
			}
		}
		return nil
	}
}

func TestNeverExpiringTokens(t *testing.T) {
	f := newFixture(t, 0)
	e := f.engine("a")
	r := e.Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Rotated)
	if r.ValidTill != nil || r.RenewAt != nil {
		t.Fatalf("valid_till %v renew_at %v", r.ValidTill, r.RenewAt)
	}
	f.clock.Advance(1000 * time.Hour)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.NotDue)
	f.client.MaxAge = 24 * time.Hour
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.NotDue)
}

func TestClientSecretFromSecretsManager(t *testing.T) {
	f := newFixture(t, time.Hour)
	for i, value := range []string{f.secret, `{"client_secret": "` + f.secret + `"}`} {
		id := mototest.Name(t, "client")
		if _, err := f.sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(value)}); err != nil {
			t.Fatal(err)
		}
		f.client.ClientSecret, f.client.ClientSecretID = clear.ClientSecret{}, id
		expect(t, f.engine("a").Rotate(context.Background(), f.client, i > 0), rotation.Rotated)
		f.clock.Advance(2 * time.Minute)
	}
	for _, bad := range []string{"", "{}", `{"client_secret": ""}`, "{nope"} {
		if _, err := rotation.ParseClientSecret(bad); err == nil {
			t.Errorf("ParseClientSecret(%q) accepted", bad)
		}
	}
}

func TestTemplatePlaceholderMeansNoToken(t *testing.T) {
	f := newFixture(t, time.Hour)
	if _, err := f.sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(f.tokenSID), SecretString: aws.String("{}")}); err != nil {
		t.Fatal(err)
	}
	s, err := f.engine("a").Status(context.Background(), f.client)
	if err != nil || s.ValidTill != nil || s.RequestsToday == nil || *s.RequestsToday != 0 || s.State != rotation.HealthNoToken {
		t.Fatalf("status = %+v, %v", s, err)
	}
	expect(t, f.engine("a").Rotate(context.Background(), f.client, false), rotation.Rotated)
}

func TestNoClaimWhenTheDeadlineIsTooClose(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	e.ClearTimeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := e.Rotate(ctx, f.client, false)
	expect(t, r, rotation.Failed)
	if r.Requested || f.emu.Requests(f.secret) != 0 || !strings.Contains(r.Message, "before the deadline") {
		t.Fatalf("claimed with too little time left: %s", r.Message)
	}
	expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
}

func TestLeaseSpentBeforeClearIsNotUsed(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	// The re-read after the claim is slow: by the time it answers, the lease is nearly over.
	f.api.fail = func(op string, in any) error {
		if st, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(f.tokenSID), VersionStage: aws.String(document.StateStage)}); err == nil &&
			strings.Contains(aws.ToString(st.SecretString), `"claim"`) && op == "GetSecretValue" {
			f.clock.Advance(timing.Lease(clear.DefaultTimeout) - 30*time.Second)
		}
		return nil
	}
	r := e.Rotate(context.Background(), f.client, false)
	f.api.fail = nil
	expect(t, r, rotation.Failed)
	if r.Requested || f.emu.Requests(f.secret) != 0 || !strings.Contains(r.Message, "before the claim's lease") {
		t.Fatalf("called Clear late in the lease: %s", r.Message)
	}
	f.clock.Advance(time.Minute)
	expect(t, f.engine("b").Rotate(context.Background(), f.client, false), rotation.Rotated)
}

func TestTokenWriteThatLandedUnansweredCountsAsStored(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	f.api.fail = func(op string, in any) error {
		if p, ok := in.(*secretsmanager.PutSecretValueInput); ok && len(p.VersionStages) == 0 && !strings.Contains(aws.ToString(p.SecretString), "{}") {
			// The write lands, but its answer never arrives.
			_, _ = f.sm.PutSecretValue(context.Background(), p)
			return errors.New("injected: answer lost")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
	defer cancel()
	e.ClearTimeout = time.Second
	r := e.Rotate(ctx, f.client, false)
	f.api.fail = nil
	expect(t, r, rotation.Rotated)
	if !f.live() {
		t.Fatal("not live")
	}
}

func TestPermanentWriteErrorsAreNotRetriedForTheWholeLease(t *testing.T) {
	f := newFixture(t, time.Hour)
	e := f.engine("a")
	puts := 0
	f.api.fail = func(op string, in any) error {
		if p, ok := in.(*secretsmanager.PutSecretValueInput); ok && len(p.VersionStages) == 0 && !strings.Contains(aws.ToString(p.SecretString), "{}") {
			puts++
			return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed"}
		}
		return nil
	}
	start := time.Now()
	r := e.Rotate(context.Background(), f.client, false)
	f.api.fail = nil
	expect(t, r, rotation.Failed)
	if puts != 1 || time.Since(start) > 10*time.Second || !strings.Contains(r.Message, "AccessDeniedException") {
		t.Fatalf("%d token writes in %v: %s", puts, time.Since(start), r.Message)
	}
}

func TestValidTillDriftIsStoredAndRenewedWithinTheHour(t *testing.T) {
	// Issue 9 D9: once Clear has issued a usable token, storing it beats discarding it, since the
	// request already revoked the ERP's token.
	for name, fault := range map[string]emulator.Fault{
		"number": emulator.DriftNumber(), "epoch string": emulator.DriftEpochString(), "bare date": emulator.DriftBareDate(),
		"words": {ValidTill: []byte(`"tomorrow"`)},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, time.Hour)
			e := f.engine("a")
			f.emu.Inject(fault)
			r := e.Rotate(context.Background(), f.client, false)
			expect(t, r, rotation.Rotated)
			if !f.live() {
				t.Fatal("the token with a drifted valid_till was not stored")
			}
			tok, _, _ := f.read("AWSCURRENT")
			if tok.ValidTill != nil || !tok.ValidTillUnknown {
				t.Fatalf("stored valid_till %v, unknown %v", tok.ValidTill, tok.ValidTillUnknown)
			}
			if !strings.Contains(r.Message, "valid_till could not be understood") {
				t.Fatalf("message %q does not report the drift", r.Message)
			}
			if want := tok.IssuedAt.Add(time.Hour); r.RenewAt == nil || !r.RenewAt.Equal(want) {
				t.Fatalf("renew at %v, want %v", r.RenewAt, want)
			}
			s, _ := e.Status(context.Background(), f.client)
			if s.LastError == nil || !strings.Contains(*s.LastError, "valid_till") {
				t.Fatalf("status does not carry the drift: %+v", s)
			}
			f.clock.Advance(61 * time.Minute)
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
		})
	}
}

// newFixture2 is newFixture with a second API client (client secret) configured.
func newFixture2(t *testing.T, lifetime time.Duration) (*fixture, string) {
	t.Helper()
	f := newFixture(t, lifetime)
	second := f.secret + "-two"
	f.emu.AddSecret(second)
	f.client.ClientSecret2 = clear.NewClientSecret(second)
	return f, second
}

func (f *fixture) tokenOf(stage string) string {
	f.t.Helper()
	tok, _, ok := f.read(stage)
	if !ok {
		f.t.Fatalf("%s holds no token", stage)
	}
	return tok.AccessToken.Reveal()
}

func TestTwoAPIClientsAlternateAndLeaveThePreviousTokenLive(t *testing.T) {
	f, second := newFixture2(t, time.Hour)
	e := f.engine("a")
	r := e.Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Rotated)
	first := f.tokenOf("AWSCURRENT")
	f.clock.Advance(41 * time.Minute)
	r = e.Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Rotated)
	if r.APIClient != 2 || r.Degraded {
		t.Fatalf("second rotation asked API client %d (degraded %v), want 2", r.APIClient, r.Degraded)
	}
	if !f.emu.Live(first) || f.tokenOf("AWSPREVIOUS") != first || !f.live() {
		t.Fatal("the token replaced by the other API client was revoked")
	}
	// A forced rotation with two API clients disrupts nothing either.
	f.clock.Advance(time.Minute)
	secondTok := f.tokenOf("AWSCURRENT")
	r = e.Rotate(context.Background(), f.client, true)
	expect(t, r, rotation.Rotated)
	if r.APIClient != 1 || !f.emu.Live(secondTok) || !f.live() {
		t.Fatalf("forced rotation asked %d; the replaced token live: %v", r.APIClient, f.emu.Live(secondTok))
	}
	// Counts are per API client and exact.
	st := f.state()
	if len(st.APIClients) != 2 {
		t.Fatalf("state %+v", st)
	}
	n1, n2 := f.emu.RequestsToday(f.secret), f.emu.RequestsToday(second)
	if n1 != 2 || n2 != 1 {
		t.Fatalf("emulator requests %d and %d, want 2 and 1", n1, n2)
	}
	s, err := e.Status(context.Background(), f.client)
	if err != nil || len(s.APIClients) != 2 || *s.APIClients[0].RequestsToday != n1 || *s.APIClients[1].RequestsToday != n2 || *s.RequestsToday != 3 {
		t.Fatalf("status %+v, %v", s, err)
	}
	if s.ConsumerReread == nil || *s.ConsumerReread != "20m0s" {
		t.Fatalf("consumer re-read interval %v, want 20m0s", s.ConsumerReread)
	}
}

func TestTwoAPIClientsDegradedModeUsesTheOther(t *testing.T) {
	for _, fault := range []string{"401", "429"} {
		t.Run(fault, func(t *testing.T) {
			f, second := newFixture2(t, time.Hour)
			e := f.engine("a")
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated) // API client 1
			f.clock.Advance(41 * time.Minute)
			if fault == "401" {
				f.emu.SetSecretActive(second, false)
			} else {
				f.emu.Inject(emulator.Fault{Status: 429})
			}
			r := e.Rotate(context.Background(), f.client, false)
			expect(t, r, rotation.Failed)
			if r.APIClient != 2 || !r.Degraded {
				t.Fatalf("failure: API client %d, degraded %v", r.APIClient, r.Degraded)
			}
			if !f.live() {
				t.Fatal("the failed request of API client 2 cost the stored token")
			}
			s, _ := e.Status(context.Background(), f.client)
			if !s.Degraded || s.State != rotation.HealthDegraded && s.State != rotation.HealthExpiring || s.APIClients[1].BlockedReason == nil {
				t.Fatalf("status %+v", s)
			}
			f.clock.Advance(time.Minute)
			r = e.Rotate(context.Background(), f.client, false)
			expect(t, r, rotation.Rotated)
			if r.APIClient != 1 || !r.Degraded || !f.live() {
				t.Fatalf("degraded rotation: API client %d, degraded %v, live %v", r.APIClient, r.Degraded, f.live())
			}
		})
	}
}

func TestRevokeKillsEveryStoredToken(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(map[bool]string{false: "one API client", true: "two API clients"}[two], func(t *testing.T) {
			f := newFixture(t, time.Hour)
			var second string
			if two {
				second = f.secret + "-two"
				f.emu.AddSecret(second)
				f.client.ClientSecret2 = clear.NewClientSecret(second)
			}
			e := f.engine("a")
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
			f.clock.Advance(41 * time.Minute)
			expect(t, e.Rotate(context.Background(), f.client, false), rotation.Rotated)
			before := f.tokensSeen()
			requests := f.emu.Requests(f.secret) + f.emu.Requests(second)
			f.clock.Advance(time.Minute)
			rs := e.Revoke(context.Background(), f.client, "")
			want := map[bool]int{false: 1, true: 2}[two]
			if len(rs) != want {
				t.Fatalf("%d results, want %d", len(rs), want)
			}
			for _, r := range rs {
				expect(t, r, rotation.Rotated)
			}
			if got := f.emu.Requests(f.secret) + f.emu.Requests(second) - requests; got != want {
				t.Fatalf("%d requests, want %d", got, want)
			}
			for _, tok := range before {
				if f.emu.Live(tok) {
					t.Fatal("a token stored before the revoke is still live")
				}
			}
			if !f.live() {
				t.Fatal("AWSCURRENT is not live after the revoke")
			}
		})
	}
}

func TestTwoAPIClientsHoldingOneSecretAreRefused(t *testing.T) {
	f := newFixture(t, time.Hour)
	ids := []string{mototest.Name(t, "cs1"), mototest.Name(t, "cs2")}
	for _, id := range ids {
		if _, err := f.sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(f.secret)}); err != nil {
			t.Fatal(err)
		}
	}
	f.client.ClientSecret, f.client.ClientSecretID, f.client.ClientSecretID2 = clear.ClientSecret{}, ids[0], ids[1]
	e := f.engine("a")
	if _, err := e.Check(context.Background(), f.client); err == nil || !strings.Contains(err.Error(), "same client secret") {
		t.Fatalf("check: %v", err)
	}
	r := e.Rotate(context.Background(), f.client, false)
	expect(t, r, rotation.Failed)
	if f.emu.Requests(f.secret) != 0 {
		t.Fatal("called Clear with two API clients that are one")
	}
}

func TestTextFromClearIsRedactedAndSanitizedBeforeItIsStored(t *testing.T) {
	// Issue 9 D5: the state (ROTATOR_STATE), which every reader of the token secret can read, and
	// status never carry a secret Clear echoed, nor terminal or bidi control characters.
	for name, fault := range map[string]emulator.Fault{"echo": emulator.EchoSecret(), "hostile": emulator.HostileText()} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, time.Hour)
			e := f.engine("a")
			f.emu.Inject(fault)
			r := e.Rotate(context.Background(), f.client, false)
			expect(t, r, rotation.Failed)
			raw, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(f.tokenSID), VersionStage: aws.String(document.StateStage)})
			if err != nil {
				t.Fatal(err)
			}
			s, _ := e.Status(context.Background(), f.client)
			for where, text := range map[string]string{"state": aws.ToString(raw.SecretString), "message": r.Message, "last_error": deref(s.LastError)} {
				if strings.Contains(text, f.secret) {
					t.Errorf("%s holds the client secret", where)
				}
				if strings.ContainsAny(text, "\u009b\u202e\u2066\u2028\n") {
					t.Errorf("%s holds control characters: %q", where, text)
				}
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
