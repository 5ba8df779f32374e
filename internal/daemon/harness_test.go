package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// The tests run inside testing/synctest bubbles, whose clock starts at 2000-01-01 00:00:00 UTC and
// jumps whenever every goroutine is blocked: days of schedule take milliseconds. The daemon talks
// to the project's one in-memory Secrets Manager (fake.SecretsManager, under the real store) and
// to the Clear emulator through its in-process transport, because network I/O would stall the
// bubble's clock.

// faultySM wraps the fake Secrets Manager and fails the calls fail chooses.
type faultySM struct {
	*fake.SecretsManager
	mu   sync.Mutex
	fail func(op string, in any) error
}

func (f *faultySM) setFail(fn func(op string, in any) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

func (f *faultySM) hook(op string, in any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		return nil
	}
	return f.fail(op, in)
}

func (f *faultySM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if err := f.hook("GetSecretValue", in); err != nil {
		return nil, err
	}
	return f.SecretsManager.GetSecretValue(ctx, in, o...)
}

func (f *faultySM) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if err := f.hook("PutSecretValue", in); err != nil {
		return nil, err
	}
	return f.SecretsManager.PutSecretValue(ctx, in, o...)
}

func (f *faultySM) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if err := f.hook("CreateSecret", in); err != nil {
		return nil, err
	}
	return f.SecretsManager.CreateSecret(ctx, in, o...)
}

func (f *faultySM) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	if err := f.hook("DescribeSecret", in); err != nil {
		return nil, err
	}
	return f.SecretsManager.DescribeSecret(ctx, in, o...)
}

// recorder wraps the emulator's transport: it records when each request was sent, and how many were
// in flight at once across every client.
type recorder struct {
	rt        http.RoundTripper
	mu        sync.Mutex
	times     []time.Time
	now, peak *atomic.Int64
	// panicOnce, when set, makes the next request panic, as a buggy token source would.
	panicOnce atomic.Pointer[string]
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if p := r.panicOnce.Swap(nil); p != nil {
		panic(*p)
	}
	r.mu.Lock()
	r.times = append(r.times, time.Now())
	r.mu.Unlock()
	n := r.now.Add(1)
	defer r.now.Add(-1)
	for {
		p := r.peak.Load()
		if n <= p || r.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return r.rt.RoundTrip(req)
}

func (r *recorder) requestTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times...)
}

// harness is one daemon over the fake Secrets Manager and one emulator per client.
type harness struct {
	t      *testing.T
	sm     *fake.SecretsManager
	api    *faultySM
	emus   map[string]*emulator.Server
	recs   map[string]*recorder
	logs   *proctest.Buffer
	log    *slog.Logger
	cfg    *config.Config
	engine *rotation.Engine

	inFlight, peak atomic.Int64

	mu     sync.Mutex
	load   func(context.Context) (*app.App, error)
	d      *daemon
	reload chan os.Signal
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	stopErr  error
}

func newHarness(t *testing.T, schedule string) *harness {
	t.Helper()
	sm := fake.NewSecretsManager(time.Now)
	h := &harness{
		t: t, sm: sm, api: &faultySM{SecretsManager: sm}, emus: map[string]*emulator.Server{},
		recs: map[string]*recorder{}, logs: &proctest.Buffer{},
		cfg:    &config.Config{Schedule: schedule, ShutdownGrace: config.DefaultShutdownGrace},
		reload: make(chan os.Signal, 1),
	}
	h.log = logging.New(h.logs, slog.LevelDebug, logging.FormatJSON)
	// A fixed jitter makes backoff delays exact: 0.75 of the nominal delay.
	h.engine = &rotation.Engine{Store: store.New(h.api), Log: h.log, Rand: func() float64 { return 0.5 }, Owner: "daemon-test"}
	t.Cleanup(h.checkNoLeak)
	return h
}

func secretOf(name string) string { return "cs-" + name + "-0123456789abcdef" }

func tokenID(name string) string { return "tokens/" + name }

// client adds a client with its own emulator issuing tokens of the given lifetime (zero: tokens
// that never expire).
func (h *harness) client(name string, lifetime time.Duration, dailyLimit int) *rotation.Client {
	emu := emulator.New(emulator.Options{Now: time.Now, Lifetime: lifetime, Secrets: []string{secretOf(name)}})
	rec := &recorder{rt: emu.Transport(), now: &h.inFlight, peak: &h.peak}
	h.emus[name], h.recs[name] = emu, rec
	cc, err := clear.NewClient("http://127.0.0.1", &http.Client{Transport: rec, Timeout: clear.DefaultTimeout})
	if err != nil {
		h.t.Fatal(err)
	}
	return &rotation.Client{
		Name: name, BaseURL: "http://127.0.0.1", Clear: cc,
		ClientSecret: clear.NewClientSecret(secretOf(name)), TokenSecretID: tokenID(name), DailyLimit: dailyLimit,
	}
}

func (h *harness) app(clients ...*rotation.Client) *app.App {
	return &app.App{Config: h.cfg, Engine: h.engine, Clients: clients, Log: h.log}
}

// other returns an engine of another rotator (an operator's CLI, another replica) sharing the
// daemon's Secrets Manager.
func (h *harness) other(owner string) *rotation.Engine {
	return &rotation.Engine{Store: store.New(h.api), Log: slog.New(slog.DiscardHandler), Rand: func() float64 { return 0.5 }, Owner: owner}
}

// start runs the daemon on a; Load returns a until setLoad changes it. It returns once the first
// tick has finished.
func (h *harness) start(a *app.App, opts Options) {
	h.t.Helper()
	d := h.prepare(a, opts)
	h.run(d)
}

// prepare builds the daemon without starting it, for tests that change it first.
func (h *harness) prepare(a *app.App, opts Options) *daemon {
	h.t.Helper()
	h.load = func(context.Context) (*app.App, error) { return a, nil }
	opts.Load = func(ctx context.Context) (*app.App, error) {
		h.mu.Lock()
		f := h.load
		h.mu.Unlock()
		return f(ctx)
	}
	opts.Reload, opts.Version = h.reload, "clear-rotator test-1.0 (go1.x)"
	d, err := newDaemon(opts, a)
	if err != nil {
		h.t.Fatal(err)
	}
	h.d = d
	return d
}

func (h *harness) run(d *daemon) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- d.run(ctx) }()
	// A failed assertion must still stop the daemon, or the bubble would never empty.
	h.t.Cleanup(func() { _ = h.stop() })
	synctest.Wait()
}

func (h *harness) setLoad(f func(context.Context) (*app.App, error)) {
	h.mu.Lock()
	h.load = f
	h.mu.Unlock()
}

// stop cancels the daemon (SIGTERM) and returns Run's result.
func (h *harness) stop() error {
	h.stopOnce.Do(func() {
		h.cancel()
		h.stopErr = <-h.done
	})
	return h.stopErr
}

// current returns the token document ERP systems read now.
func (h *harness) current(name string) (document.Token, bool) {
	v, ok := h.sm.Stage(tokenID(name), rotation.CurrentStage)
	if !ok {
		return document.Token{}, false
	}
	tok, err := document.ParseToken([]byte(v.Value))
	return tok, err == nil
}

// live reports whether the token in AWSCURRENT is one Clear accepts.
func (h *harness) live(name string) bool {
	tok, ok := h.current(name)
	return ok && h.emus[name].Live(tok.AccessToken.Reveal())
}

// calls returns the Secrets Manager calls answered so far, by operation.
func (h *harness) calls() map[string]int { return h.sm.Calls() }

func (h *harness) get(path string) (int, string) {
	rec := httptest.NewRecorder()
	h.d.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// metric returns the value of one sample line of /metrics, or "" if it is absent.
func (h *harness) metric(series string) string {
	_, body := h.get("/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// tokens returns every token ever stored for the harness's clients.
func (h *harness) tokens() []string {
	var out []string
	for name := range h.emus {
		for _, v := range h.sm.Versions(tokenID(name)) {
			if tok, err := document.ParseToken([]byte(v.Value)); err == nil {
				out = append(out, tok.AccessToken.Reveal())
			}
		}
	}
	return out
}

func (h *harness) checkNoLeak() {
	logs := h.logs.String()
	for name := range h.emus {
		if strings.Contains(logs, secretOf(name)) {
			h.t.Errorf("the logs contain client %s's secret", name)
		}
	}
	// One pass over the logs for all the tokens at once: a thousand clients store thousands.
	var pairs []string
	for _, tok := range h.tokens() {
		pairs = append(pairs, tok, "")
	}
	if len(pairs) > 0 && strings.NewReplacer(pairs...).Replace(logs) != logs {
		h.t.Error("the logs contain a token")
	}
	if h.t.Failed() && testing.Verbose() {
		h.t.Logf("logs:\n%s", logs)
	}
}

// assertRenewals checks the requests of one client: n of them, each at its predecessor's renewal
// point (two thirds of the lifetime, give or take the second to which the stored issue time is
// truncated), so that the token was replaced before it expired and no request was wasted.
func assertRenewals(t *testing.T, h *harness, name string, n int, lifetime time.Duration) {
	t.Helper()
	times := h.recs[name].requestTimes()
	if len(times) != n || h.emus[name].Issued(secretOf(name)) != n {
		t.Fatalf("client %s: %d requests and %d tokens issued, want %d of each", name, len(times), h.emus[name].Issued(secretOf(name)), n)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < lifetime*2/3-minGap || gap > lifetime*2/3+minGap {
			t.Errorf("client %s: request %d came %s after its predecessor, want the renewal point %s (within %s)", name, i+1, gap, lifetime*2/3, minGap)
		}
	}
}

func assertTimes(t *testing.T, got, want []time.Time) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Equal(want[i])
	}
	if !ok {
		t.Errorf("requests at\n  %v\nwant\n  %v", got, want)
	}
}

// day0 is the synctest bubble's start.
var day0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
