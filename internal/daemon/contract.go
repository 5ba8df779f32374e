package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
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
	// App is the rotator as already loaded, when the caller loaded it (rotator run does, once, to
	// refuse a broken configuration before anything starts); when nil, Run calls Load for it.
	App *app.App
	// Load builds the configured rotator; Run calls it on each Reload signal, and at start when App
	// is nil.
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

	// OnResult hooks act on each check's result, after the daemon has filed it (see daemon.act):
	// r.Stored is the token the check stored in AWSCURRENT, if any, for a gateway to serve or push
	// delivery to announce. They run in order, in the check's goroutine, outside the daemon's lock,
	// and only for results of the engine about a client still configured as it was checked (not
	// for a check cut short by shutdown, nor after a panic). The round waits for them: a hook that
	// may be slow hands its work off. A panic in a hook is recovered as a failed check.
	OnResult []func(ctx context.Context, c *rotation.Client, r rotation.Result)
	// Metrics write more metric families to /metrics, after the daemon's own: each whole (HELP,
	// TYPE, samples) and under names of its own. They are called once per scrape, outside the
	// daemon's lock.
	Metrics []func(w io.Writer)
	// OnReload hooks act on a configuration a SIGHUP loaded, once the daemon has swapped it in (a
	// gateway serving the daemon's clients follows them, say). They run in order, in the daemon's
	// loop, outside its lock; a panic in one is recovered and logged.
	OnReload []func(ctx context.Context, a *app.App)
	// Services run as long as the daemon (a gateway's listener, say): started in order after the
	// ops listener and before the first check, where an error stops Run; stopped in reverse order
	// after the last check in flight has ended, each within serviceStop.
	Services []Service
}

// Service is something that runs as long as the daemon does; see Options.Services. The ops
// listener is one.
type Service interface {
	// Start starts the service and returns once it serves (a listener is bound).
	Start() error
	// Stop stops it, giving up when ctx ends.
	Stop(ctx context.Context) error
}

// Run runs the daemon until ctx is cancelled. It returns Load's error if the configuration cannot be
// loaded at start, an error if the ops listener cannot listen, nil after a clean shutdown, and an
// error when the shutdown grace expires with a check still in flight.
func Run(ctx context.Context, opts Options) error {
	a := opts.App
	if a == nil {
		var err error
		if a, err = opts.Load(ctx); err != nil {
			return err
		}
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
	// serviceStop bounds each service's Stop at shutdown: the ops listener's requests are tiny, and
	// a service's clients are told to go by then.
	serviceStop = 2 * time.Second
)
