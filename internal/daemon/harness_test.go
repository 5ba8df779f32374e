package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// The tests run inside testing/synctest bubbles, whose clock starts at 2000-01-01 00:00:00 UTC and
// jumps whenever every goroutine is blocked: days of schedule take milliseconds. Everything the
// daemon talks to is an in-memory fake, because network I/O would stall the bubble's clock.

// harness is one daemon over a fake store and one fake Clear per client.
type harness struct {
	t      *testing.T
	store  *fake.Store
	clears map[string]*fake.Clear
	logs   *proctest.Buffer
	log    *slog.Logger
	cfg    *config.Config
	engine *rotation.Engine

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
		t: t, store: fake.NewStore(), clears: map[string]*fake.Clear{}, logs: &proctest.Buffer{},
		cfg:    &config.Config{Schedule: schedule, ShutdownGrace: 30 * time.Second},
		reload: make(chan os.Signal, 1),
	}
	h.log = logging.New(h.logs, slog.LevelDebug, logging.FormatJSON)
	// A fixed jitter makes backoff delays exact: 0.75 of the nominal delay.
	h.engine = &rotation.Engine{Store: h.store, Log: h.log, Rand: func() float64 { return 0.5 }, Owner: "daemon-test"}
	t.Cleanup(h.checkNoLeak)
	return h
}

func secretOf(name string) string { return "cs-" + name + "-0123456789abcdef" }

// client adds a client with its own fake Clear issuing tokens of the given lifetime.
func (h *harness) client(name string, lifetime time.Duration, dailyLimit int) *rotation.Client {
	c := fake.NewClear(secretOf(name), lifetime)
	h.clears[name] = c
	return &rotation.Client{
		Name: name, BaseURL: "https://clear.test", Clear: c,
		ClientSecret: clear.NewClientSecret(secretOf(name)), TokenSecretID: "tokens/" + name, DailyLimit: dailyLimit,
	}
}

func (h *harness) app(clients ...*rotation.Client) *app.App {
	return &app.App{Config: h.cfg, Engine: h.engine, Clients: clients, Log: h.log}
}

// start runs the daemon on a; Load returns a until setLoad changes it.
func (h *harness) start(a *app.App, opts Options) {
	h.t.Helper()
	h.load = func(context.Context) (*app.App, error) { return a, nil }
	opts.Load = func(ctx context.Context) (*app.App, error) {
		h.mu.Lock()
		f := h.load
		h.mu.Unlock()
		return f(ctx)
	}
	opts.Reload, opts.Version = h.reload, "test-1.0"
	d, err := newDaemon(opts, a)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.d, h.cancel, h.done = d, cancel, make(chan error, 1)
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
	v, ok := h.store.Value("tokens/"+name, rotation.CurrentStage)
	if !ok {
		return document.Token{}, false
	}
	tok, err := document.ParseToken([]byte(v))
	return tok, err == nil
}

// live reports whether the token in AWSCURRENT is the one Clear accepts.
func (h *harness) live(name string) bool {
	tok, ok := h.current(name)
	return ok && h.clears[name].Live(tok.AccessToken.Reveal())
}

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

func (h *harness) checkNoLeak() {
	logs := h.logs.String()
	for name, c := range h.clears {
		if strings.Contains(logs, secretOf(name)) {
			h.t.Errorf("the logs contain client %s's secret", name)
		}
		for _, is := range c.Issued() {
			if strings.Contains(logs, is.Token) {
				h.t.Errorf("the logs contain one of client %s's tokens", name)
			}
		}
	}
	if h.t.Failed() && testing.Verbose() {
		h.t.Logf("logs:\n%s", logs)
	}
}

// assertRenewals checks the issue history of one client: n tokens, each issued before its
// predecessor expired, and none earlier than two thirds of the predecessor's lifetime (the renewal
// point, give or take the second to which the stored issue time is truncated), so that no request
// was wasted.
func assertRenewals(t *testing.T, c *fake.Clear, n int, lifetime time.Duration) {
	t.Helper()
	issues := c.Issued()
	if len(issues) != n || c.Requests() != n {
		t.Fatalf("%d tokens issued after %d requests, want %d of each", len(issues), c.Requests(), n)
	}
	for i := 1; i < len(issues); i++ {
		prev, cur := issues[i-1], issues[i]
		if !cur.At.Before(*prev.ValidTill) {
			t.Errorf("token %d issued at %s, not before its predecessor expired at %s", i+1, cur.At, prev.ValidTill)
		}
		renewAt := prev.At.Add(lifetime * 2 / 3)
		if gap := cur.At.Sub(renewAt); gap < -minGap || gap > minGap {
			t.Errorf("token %d issued at %s, want at its renewal point %s (within %s)", i+1, cur.At, renewAt, minGap)
		}
	}
}
