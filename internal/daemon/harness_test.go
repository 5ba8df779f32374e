package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// The tests run inside testing/synctest bubbles, whose clock starts at 2000-01-01 00:00:00 UTC and
// jumps whenever every goroutine is blocked: days of schedule take milliseconds. Each client of the
// daemon is a rig world in memory (its own Clear emulator, client secret and token secret); the
// worlds share the first client's Secrets Manager (the SDK-level fake behind the rig's fault hook),
// log buffer and leak scan, because network I/O would stall the bubble's clock.

// harness is one daemon over the worlds of its clients.
type harness struct {
	t *testing.T
	// base is the first client's world: every client's Secrets Manager, fault hook (base.API.Fail),
	// call counts, logs and leak scan are its.
	base     *rig.World
	worlds   map[string]*rig.World
	inFlight rig.InFlight // Clear requests in flight across every client
	logs     *proctest.Buffer
	log      *slog.Logger
	cfg      *config.Config
	engine   *rotation.Engine

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
	h := &harness{
		t: t, worlds: map[string]*rig.World{},
		cfg:    &config.Config{Schedule: schedule, ShutdownGrace: config.DefaultShutdownGrace},
		reload: make(chan os.Signal, 1),
	}
	t.Cleanup(func() {
		if h.logs != nil && t.Failed() && testing.Verbose() {
			t.Logf("logs:\n%s", h.logs)
		}
	})
	return h
}

// client adds a client: a world with its own emulator issuing tokens of the given lifetime (zero:
// tokens that never expire), on the first client's Secrets Manager.
func (h *harness) client(name string, lifetime time.Duration, dailyLimit int) *rotation.Client {
	h.t.Helper()
	o := rig.Options{Memory: true, Share: h.base, Name: name, Lifetime: lifetime, DailyLimit: dailyLimit}
	w := rig.New(h.t, o)
	if h.base == nil {
		h.base, h.logs = w, w.Logs
		h.log = logging.New(w.Logs, slog.LevelDebug, logging.FormatJSON)
		h.engine = w.Engine("daemon-test")
		// The daemon's own logger and the engine's production pause between write attempts.
		h.engine.Log, h.engine.WriteRetry = h.log, rotation.DefaultWriteRetry
	}
	w.CountInFlight(&h.inFlight)
	h.worlds[name] = w
	return w.Client()
}

func (h *harness) app(clients ...*rotation.Client) *app.App {
	return &app.App{Config: h.cfg, Engine: h.engine, Clients: clients, Log: h.log}
}

// other returns an engine of another rotator (an operator's CLI, another replica) sharing the
// daemon's Secrets Manager. Its logs go to a buffer of their own, which the leak scan reads but the
// tests' log assertions do not: what the daemon logs must come from the daemon.
func (h *harness) other(owner string) *rotation.Engine {
	e := h.base.Engine(owner)
	logs := &proctest.Buffer{}
	h.base.RecordFrom(logs)
	e.Log, e.WriteRetry = logging.New(logs, slog.LevelDebug, logging.FormatJSON), rotation.DefaultWriteRetry
	return e
}

// panicOnce makes the next Clear request of client name panic, as a buggy token source would.
func (h *harness) panicOnce(name, msg string) {
	var done atomic.Bool
	h.worlds[name].BeforeClear(func(*http.Request) {
		if done.CompareAndSwap(false, true) {
			panic(msg)
		}
	})
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
	tok, _, ok := h.worlds[name].Current()
	return tok, ok
}

// live reports whether the token in AWSCURRENT is one Clear accepts.
func (h *harness) live(name string) bool { return h.worlds[name].Live() }

// calls returns the Secrets Manager calls answered so far, by operation: the daemon's, the other
// rotators' and the test's own through the engine (not its reads through the rig).
func (h *harness) calls() map[string]int { return h.base.API.Calls() }

// requestTimes returns when client name's Clear requests were sent.
func (h *harness) requestTimes(name string) []time.Time {
	var out []time.Time
	for _, r := range h.worlds[name].Requests() {
		out = append(out, r.At)
	}
	return out
}

func (h *harness) get(path string) (int, string) {
	rec := httptest.NewRecorder()
	h.d.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// metric returns the value of one sample line of /metrics, or "" if it is absent.
func (h *harness) metric(series string) string {
	_, body := h.get("/metrics")
	return rig.Sample(body, series)
}

// assertRenewals checks the requests of one client: n of them, each at its predecessor's renewal
// point (two thirds of the lifetime, give or take the second to which the stored issue time is
// truncated), so that the token was replaced before it expired and no request was wasted.
func assertRenewals(t *testing.T, h *harness, name string, n int, lifetime time.Duration) {
	t.Helper()
	times := h.requestTimes(name)
	if issued := h.worlds[name].Issued(); len(times) != n || issued != n {
		t.Fatalf("client %s: %d requests and %d tokens issued, want %d of each", name, len(times), issued, n)
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
