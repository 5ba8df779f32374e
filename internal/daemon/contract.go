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
