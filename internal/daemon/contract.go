// Package daemon runs the rotator unattended (`rotator run`): it looks at every configured client
// on a cron schedule, and in between wakes for the clients that need it sooner.
//
// The engine (package rotation) makes every decision that costs a Clear request, and persists what
// it decided in Secrets Manager; the daemon only decides when to ask it. At every activation of the
// schedule (a tick) it asks the engine about every client, through a per-client rotation.Cache: a
// client whose secret has not changed since the last look costs one DescribeSecret call and writes
// nothing, and a change made elsewhere (another rotator, an operator's forced rotation, a person
// editing the secret) is seen within one tick. Between ticks the daemon wakes for a client at the
// time the engine named (Result.NextCheck: a renewal point, the end of a backoff or a block) and at
// the expiry of the token it last saw, so a coarse schedule such as "@every 6h" still renews hourly
// tokens on time. Since all state that matters lives in Secrets Manager, a restarted daemon picks
// up exactly where the previous one stopped, and a crash loop cannot spend the daily budget.
//
// # One loop
//
// One goroutine owns the schedule: it holds one timer, set for the earliest of the schedule's next
// activation, the clients' NextCheck times and the stored tokens' expiry, and it receives the
// reload signal and the cancellation of Run's context as events of the same select. The cron
// library is used for the schedule's syntax only. A round of checks runs in a pool of at most
// Options.Concurrency workers while the loop waits for it; the timer is not armed meanwhile, so
// checks never overlap, and what fell due during a round is looked at as soon as it ends. A
// schedule whose next activation cannot be found (robfig/cron's Next returns the zero time) does
// not stop the daemon: it falls back to the default interval and says so.
//
// # Shutdown
//
// On cancellation of Run's context (SIGTERM, SIGINT) the daemon starts no further check and waits,
// at most the configured shutdown grace, for those in flight: the engine finishes a started Clear
// request and its token write even though the context is cancelled, because the token the ERP
// holds is already revoked by then.
//
// # Ops listener
//
// The ops listener serves /healthz, /readyz and /metrics (Prometheus text format); see handler. It
// has read, write and idle timeouts, a cap on header size and a cap on open connections, so that
// clients of the ops port can never take the descriptors rotation needs; a connection beyond the
// cap takes the place of an old one (see connLimit), so that no crowd of connections keeps the
// probes from being answered.
package daemon

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// readRetry spaces the extra looks at a client whose secrets could not be read, between ticks: the
// engine cannot persist such a failure or name a time for it. Those looks read Secrets Manager
// before anything else, so they cannot spend the budget. It is the project's one backoff type,
// used without jitter here: the looks only read.
var readRetry = timing.Backoff{Base: readRetryBase, Cap: time.Minute}

// Defaults for the Options fields that may be left zero.
const (
	// DefaultConcurrency is how many clients are checked at once. An idle check is one Secrets
	// Manager call and rarely more, so a handful in parallel covers a thousand clients well within
	// a tick without a burst that Secrets Manager would throttle.
	DefaultConcurrency = 8
)

// Options configures Run.
type Options struct {
	// Load builds the configured rotator; Run calls it at start and on each Reload signal.
	Load func(ctx context.Context) (*app.App, error)
	// Log is the process logger (Load's App carries its own for the engine). The daemon logs through
	// the App's logger when it has one, so that both follow LOG_LEVEL and LOG_FORMAT.
	Log *slog.Logger
	// Reload delivers SIGHUP.
	Reload <-chan os.Signal
	// Version is the rotator's version, reported in clear_rotator_build_info. The line that
	// `rotator version` prints ("clear-rotator v1.2.3 (go1.26.8)") is accepted too and reduced to
	// the version itself, since the Go version has a label of its own.
	Version string
	// Concurrency bounds the clients checked at once; zero means DefaultConcurrency.
	Concurrency int
}

// Run runs the daemon until ctx is cancelled. It returns Load's error if the configuration cannot be
// loaded at start, an error if the ops listener cannot listen, nil after a clean shutdown, and an
// error when the shutdown grace expires with a check still in flight.
func Run(ctx context.Context, opts Options) error {
	a, err := opts.Load(ctx)
	if err != nil {
		return err
	}
	d, err := newDaemon(opts, a)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

// The loop's own timing constants.
const (
	// minGap is the earliest the daemon looks at a client again after checking it. The engine does
	// not ask for a look sooner, but a NextCheck at or before the check itself (a clock step could
	// produce one) would otherwise make the timer spin.
	minGap = time.Second
	// readRetryBase is the first extra look at a client whose secrets could not be read, between
	// ticks (see readRetry).
	readRetryBase = 30 * time.Second
	// fallbackTick is the interval between ticks when the schedule has no next activation: the
	// default schedule's.
	fallbackTick = 5 * time.Minute
	// httpShutdown bounds the ops listener's shutdown; its requests are tiny.
	httpShutdown = 2 * time.Second
)
