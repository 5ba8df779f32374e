package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

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

func TestMain(m *testing.M) {
	code := m.Run()
	mototest.StopShared()
	proctest.Cleanup()
	os.Exit(code)
}

// rig is one client's world for the in-process tests: a token secret in moto reached through the
// real SDK client with faults on the wire, the Clear emulator on a fake clock reached through the
// real Clear client with a tap that records every token delivered, and a log buffer that the
// cleanup scans for secrets.
type rig struct {
	t       *testing.T
	clock   *fake.Clock
	emu     *emulator.Server
	handler *switchHandler
	srv     *httptest.Server
	moto    *mototest.Server
	sm      *secretsmanager.Client // unfaulted, for the test's own reads and writes
	faults  *awsFaults
	api     *secretsmanager.Client // faulted, for the engines
	logs    *proctest.Buffer
	tap     *tokenTap
	secret  string
	tokenID string
	client  *rotation.Client
	outputs []string
	mu      sync.Mutex
}

func newRig(t *testing.T, lifetime time.Duration) *rig {
	t.Helper()
	r := &rig{
		t: t, clock: fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)),
		moto: mototest.Shared(t), logs: &proctest.Buffer{}, tap: &tokenTap{base: http.DefaultTransport},
	}
	r.secret = "rel-client-secret-" + strings.ReplaceAll(mototest.Name(t, "s"), "/", "_")
	r.emu = emulator.New(emulator.Options{Now: r.clock.Now, Lifetime: lifetime, Secrets: []string{r.secret}})
	r.handler = &switchHandler{next: r.emu}
	r.srv = httptest.NewServer(r.handler)
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.emu.Close)
	r.sm = r.moto.Client()
	r.faults = newAWSFaults()
	r.api = r.moto.Client(func(o *secretsmanager.Options) {
		o.HTTPClient = &http.Client{Transport: r.faults}
		// The SDK's own retries stay on (three attempts); only their pauses are shortened, so that
		// a fault that outlasts them costs milliseconds instead of seconds.
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxBackoff = 20 * time.Millisecond })
	})
	cc, err := clear.NewClient(r.srv.URL, &http.Client{Transport: r.tap})
	if err != nil {
		t.Fatal(err)
	}
	r.tokenID = mototest.Name(t, "token")
	r.client = &rotation.Client{
		Name: "erp", BaseURL: r.srv.URL, Clear: cc, ClientSecret: clear.NewClientSecret(r.secret),
		TokenSecretID: r.tokenID, DailyLimit: 48,
	}
	t.Cleanup(r.scan)
	return r
}

// engine returns an engine on the faulted client, sharing the rig's clock and logs.
func (r *rig) engine(owner string) *rotation.Engine {
	return r.engineOn(owner, r.api)
}

// engineOn returns an engine on api: a store.API (wrapped in a store whose calls give up after a
// second, the production bound of 20 s scaled down) or a rotation.Store. Its Clear timeout is
// short, since the engine claims only when the caller's deadline leaves room for a Clear request
// and a token write (ClearTimeout plus 5 s).
func (r *rig) engineOn(owner string, api any) *rotation.Engine {
	var st rotation.Store
	switch a := api.(type) {
	case rotation.Store:
		st = a
	case store.API:
		sm := store.New(a)
		sm.Timeout = time.Second
		st = sm
	}
	return &rotation.Engine{
		Store: st, Now: r.clock.Now, Rand: func() float64 { return 0.5 },
		Log:   slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Owner: owner, WriteRetry: time.Millisecond, ClearTimeout: 500 * time.Millisecond,
	}
}

// faultedDeadline is the deadline of a faulted rotation: enough for the engine to claim (its
// ClearTimeout plus 5 s, and slack for slow reads), short enough that the write retries a
// persistent fault provokes end soon.
const faultedDeadline = 7 * time.Second

// runAll runs one subtest per case, all at once. The cases mostly wait (for holds, retries and
// deadlines), so running them side by side keeps the suite fast; t.Parallel would cap them at
// GOMAXPROCS.
func runAll[C any](t *testing.T, cases []C, name func(C) string, f func(*testing.T, C)) {
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { t.Run(name(c), func(t *testing.T) { f(t, c) }) })
	}
	wg.Wait()
}

// rotate runs one rotation with a deadline, as the daemon's tick or the Lambda gives one, and
// keeps its result for the leak scan.
func (r *rig) rotate(e *rotation.Engine, force bool, timeout time.Duration) rotation.Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r.faults.begin()
	res := e.Rotate(ctx, r.client, force)
	r.record(res)
	return res
}

func (r *rig) record(res rotation.Result) {
	b, _ := json.Marshal(res)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outputs = append(r.outputs, string(b), res.Message)
	if res.Err != nil {
		r.outputs = append(r.outputs, res.Err.Error(), fmt.Sprintf("%+v %#v", res.Err, res.Err))
	}
}

// scan fails the test if the client secret or a token delivered by Clear reached the logs or a
// result.
func (r *rig) scan() {
	r.mu.Lock()
	outs := append(slices.Clone(r.outputs), r.logs.String())
	r.mu.Unlock()
	proctest.AssertNoLeak(r.t, outs, append(r.tap.tokens(), r.secret)...)
}

// current reads AWSCURRENT and fails the test unless it is a token document: never garbage.
func (r *rig) current() (document.Token, string) {
	r.t.Helper()
	out, err := r.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(r.tokenID), VersionStage: aws.String(rotation.CurrentStage)})
	if err != nil {
		r.t.Fatalf("reading AWSCURRENT: %v", err)
	}
	d, err := document.ParseToken([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		r.t.Fatalf("AWSCURRENT does not hold a token document: %v", err)
	}
	return d, aws.ToString(out.VersionId)
}

// state reads the ROTATOR_STATE document.
func (r *rig) state() (document.State, string) {
	r.t.Helper()
	out, err := r.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(r.tokenID), VersionStage: aws.String(document.StateStage)})
	if err != nil {
		r.t.Fatalf("reading the state: %v", err)
	}
	st, err := document.ParseState([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		r.t.Fatalf("the state document does not parse: %v", err)
	}
	return st, aws.ToString(out.VersionId)
}

// checkCount asserts the count invariant: the state's count for today equals the requests Clear
// received today plus the claims that never reached Clear.
func (r *rig) checkCount(lostClaims int) {
	r.t.Helper()
	st, _ := r.state()
	got := 0
	for _, a := range st.APIClients {
		got += a.RequestsOn(timing.Day(r.clock.Now()))
	}
	if want := r.emu.RequestsToday(r.secret) + lostClaims; got != want {
		r.t.Fatalf("the state counts %d requests today; Clear received %d and %d claims never reached it (want %d)",
			got, r.emu.RequestsToday(r.secret), lostClaims, want)
	}
}

// checkHealthy asserts that the status shows a client with nothing pending: no rotation in
// progress, no block, no backoff, no error. (A successful rotation leaves its claim in the state
// document; the claim is complete because AWSCURRENT moved on, which Status takes into account.)
func (r *rig) checkHealthy(e *rotation.Engine) {
	r.t.Helper()
	s, err := e.Status(context.Background(), r.client)
	if err != nil {
		r.t.Fatal(err)
	}
	if s.InFlight != nil || s.BlockedUntil != nil || s.BlockedReason != nil || s.LastError != nil || !s.HasToken || !s.State.OK() || s.TokenLost != nil {
		r.t.Fatalf("status after recovery: state %s, in flight %v, blocked %v, last error %v, has token %v",
			s.State, s.InFlight != nil, deref(s.BlockedReason), deref(s.LastError), s.HasToken)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// seed makes the first rotation, then moves the clock to when the token is due (45 minutes into
// a one-hour token; due at 40).
func (r *rig) seed() (document.Token, string) {
	r.t.Helper()
	res := r.rotate(r.engine("seed"), false, 10*time.Second)
	expect(r.t, res, rotation.Rotated)
	tok, id := r.current()
	r.clock.Advance(45 * time.Minute)
	return tok, id
}

func expect(t *testing.T, r rotation.Result, want rotation.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %q (%s), want %q", r.Outcome, r.Message, want)
	}
}

// tokenTap records every access token in Clear's answers, delivered to the rotator or not, so
// that the leak scans know what to look for.
type tokenTap struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (t *tokenTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	resp.Body = &tapBody{ReadCloser: resp.Body, tap: t}
	return resp, nil
}

func (t *tokenTap) tokens() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.seen)
}

type tapBody struct {
	io.ReadCloser
	tap *tokenTap
	buf bytes.Buffer
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.buf.Write(p[:n])
	return n, err
}

func (b *tapBody) Close() error {
	var g struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(b.buf.Bytes(), &g) == nil && g.AccessToken != "" {
		b.tap.mu.Lock()
		b.tap.seen = append(b.tap.seen, g.AccessToken)
		b.tap.mu.Unlock()
	}
	return b.ReadCloser.Close()
}

// switchHandler serves Clear through the emulator, or once through a wrapper of it (a slow body).
type switchHandler struct {
	next http.Handler
	mu   sync.Mutex
	once func(http.ResponseWriter, *http.Request, http.Handler)
}

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	f := s.once
	s.once = nil
	s.mu.Unlock()
	if f != nil {
		f(w, req, s.next)
		return
	}
	s.next.ServeHTTP(w, req)
}

func (s *switchHandler) Once(f func(http.ResponseWriter, *http.Request, http.Handler)) {
	s.mu.Lock()
	s.once = f
	s.mu.Unlock()
}

// slowBody answers with the emulator's answer, but sends the body a byte at a time with a pause
// between bytes: headers arrive at once, the body takes len(body)*pause.
func slowBody(pause time.Duration) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		fl, _ := w.(http.Flusher)
		for _, b := range rec.Body.Bytes() {
			if _, err := w.Write([]byte{b}); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-req.Context().Done():
				return
			case <-time.After(pause):
			}
		}
	}
}
