// Package daemon runs the rotator unattended (`rotator run`): it checks every configured client on
// a cron schedule and wakes early when a token would otherwise be renewed too late.
//
// The engine (package rotation) makes every decision that costs a Clear request, and persists what
// it decided in Secrets Manager; the daemon only decides when to ask it. It keeps, per client, the
// time the engine said the client next needs a look (Result.NextCheck), so that a tick where nothing
// is due calls neither Clear nor Secrets Manager, and it re-reads every client at least every
// Options.Recheck so that changes made elsewhere (another rotator, an operator's forced rotation)
// are noticed. Since all state that matters lives in Secrets Manager, a restarted daemon picks up
// exactly where the previous one stopped, and a crash loop cannot spend the daily request budget.
//
// Checks come from four sources: one at start-up, the cron ticks, a wake timer set for the
// earliest NextCheck when that falls before the next tick (so a coarse schedule such as "@every 6h"
// still renews hourly tokens on time), and one after each reload. Checks never overlap: one that
// finds another still running is skipped, and the running one re-arms the wake timer when it ends.
//
// On cancellation of Run's context (SIGTERM, SIGINT) the daemon stops scheduling and waits, at most
// the configured shutdown grace, for checks in flight: the engine finishes a started Clear request
// and its token write even though the context is cancelled, because the token the ERP holds is
// already revoked by then.
//
// The ops listener serves /healthz, /readyz and /metrics (Prometheus text format); see handler.
package daemon

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
)

// Defaults for the Options fields that may be left zero.
const (
	// DefaultConcurrency is how many clients are checked at once. Each check is a few Secrets
	// Manager calls and rarely a Clear request, so a handful in parallel keeps a thousand clients
	// well within a tick without a burst that Secrets Manager would throttle.
	DefaultConcurrency = 8
	// DefaultRecheck is the longest a client goes unread, however far off its next renewal.
	DefaultRecheck = time.Hour
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
	// Version is reported in metrics.
	Version string
	// Concurrency bounds the clients checked at once; zero means DefaultConcurrency.
	Concurrency int
	// Recheck is the cache's maximum age: every client is read again at least this often, even when
	// its token is not due. Zero means DefaultRecheck.
	Recheck time.Duration
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
