package daemon

import (
	"context"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// push is the daemon's push delivery (issue 18): one delivery in flight per client, retried until
// delivered or superseded by a newer token (notify.Daemon), and what became of each, for /metrics.
type push struct {
	dispatch notify.Dispatcher
	stats    notify.Stats
}

// tell starts telling the ERP of the token r stored, if it stored one. before is the client's
// health before the check, so that a token replacing a dead one is reported as healed. The
// delivery outlives the check, and the daemon's context: a token stored during the shutdown grace
// gets its attempts while the process lasts.
func (d *daemon) tell(ctx context.Context, a *app.App, c *rotation.Client, r rotation.Result, before rotation.Health) {
	if r.Stored == nil {
		return
	}
	log := d.logger()
	n := a.Notifier(notify.Daemon, log, a.Recorder(&d.push.stats, log))
	if !n.Enabled(c.Name) {
		return
	}
	ev, ok := a.Event(context.WithoutCancel(ctx), c, r, before, false)
	if ok {
		d.push.dispatch.Post(context.WithoutCancel(ctx), n, ev)
	}
}

// healthOf is c's health as the daemon last recorded it; "" before its first check.
func (d *daemon) healthOf(name string) rotation.Health {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[name]; e != nil {
		return e.state()
	}
	return ""
}
