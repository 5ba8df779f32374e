// Package daemon runs the rotator unattended: it checks every configured client on a cron schedule
// and wakes early when a token would otherwise be renewed too late.
package daemon

import (
	"context"
	"log/slog"
	"os"

	"github.com/clear-rotator/clear-rotator/internal/app"
)

// Options configures Run.
type Options struct {
	// Load builds the configured rotator; Run calls it at start and on each Reload signal.
	Load func(ctx context.Context) (*app.App, error)
	// Log is the process logger (Load's App carries its own for the engine).
	Log *slog.Logger
	// Reload delivers SIGHUP.
	Reload <-chan os.Signal
	// Version is reported in metrics.
	Version string
}

// Run is implemented by the daemon work; this stub keeps the CLI building until then.
func Run(ctx context.Context, opts Options) error {
	_, err := opts.Load(ctx)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
