package daemon

import (
	"context"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Push is the daemon's push delivery (issue 18): after every check that stored a token, the ERP is
// told in the background, one delivery in flight per client, retried until delivered or superseded
// by a newer token (notify.Daemon); what became of each delivery is on /metrics. It is wired
// through the daemon's hooks (Wire), not inside the check path.
type Push struct {
	mu  sync.Mutex
	app *app.App // the configuration in force: the first, then each one a reload loaded
	// health is each client's health after its last check that reached the hooks, which is its
	// health before the next one: a token replacing a dead one (no token, expired, lost) is
	// reported as healed. Empty before a client's first check here, like the daemon's own state.
	health map[string]rotation.Health

	dispatch notify.Dispatcher
	stats    notify.Stats

	// resuming runs in the background, from Start on, resume, look and the records of what is not
	// told (off), until stop ends it; looking names the clients a look is under way for, one at a
	// time each.
	resuming sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc
	n        *notify.Notifier // app's from Start on, for look; nil without push delivery
	looking  map[string]bool
	warned   map[string]string // the last read error warned of, by client
}

// NewPush returns push delivery for a daemon starting with a.
func NewPush(a *app.App) *Push {
	return &Push{app: a, health: map[string]rotation.Health{}, looking: map[string]bool{}, warned: map[string]string{}}
}

// Wire adds p to opts: its OnResult hook, its metric families, itself as a Service (so that a
// stopping daemon reports what it did not deliver), and a Load that hands p each configuration a
// reload loads (a failed reload keeps the one in force, as the daemon does) and delivers again,
// with it, what is not delivered yet.
func (p *Push) Wire(opts *Options) {
	opts.OnResult = append(opts.OnResult, p.OnResult)
	opts.Metrics = append(opts.Metrics, p.WriteMetrics)
	opts.Services = append(opts.Services, p)
	if load := opts.Load; load != nil {
		opts.Load = func(ctx context.Context) (*app.App, error) {
			a, err := load(ctx)
			if err == nil && a != nil && a.Config != nil && a.Engine != nil {
				p.reloaded(context.WithoutCancel(ctx), a)
			}
			return a, err
		}
	}
}

// reloaded takes the configuration a reload loaded: later tokens are told as it says, what is not
// delivered yet is delivered again with it, and what it no longer tells stops counting as failing.
func (p *Push) reloaded(ctx context.Context, a *app.App) {
	n := a.Notifier(notify.Daemon, a.Log, a.Recorder(&p.stats, a.Log))
	p.mu.Lock()
	p.app, p.n = a, n
	p.mu.Unlock()
	p.dispatch.Redeliver(ctx, n)
	p.stats.Settle(func(client, kind string) bool {
		return slices.ContainsFunc(a.Clients, func(c *rotation.Client) bool { return c.Name == client }) && n.Tells(client, kind)
	})
	p.background(a, n)
}

// background runs resume in the background once Start has run: it costs a DescribeSecret per
// client, which neither the start nor a reload should wait for.
func (p *Push) background(a *app.App, n *notify.Notifier) {
	p.mu.Lock()
	ctx := p.ctx
	p.mu.Unlock()
	if ctx != nil && n != nil {
		p.resuming.Go(func() { p.resume(ctx, a, n) })
	}
}

// resume delivers again, with n, each client's token that a delivery recorded as failed on the
// token secret (app.App.Resumable) while it is still AWSCURRENT: one this daemon did not deliver
// before it stopped, or one a replica, a CLI run or the Lambda failed to. Only the kinds not
// delivered are told, and only for a client with no delivery of its own pending or in flight. So a
// restart, or a reload after the receiver is fixed, tells the ERP what was never told, whichever
// process failed. It costs a DescribeSecret per client told anything.
func (p *Push) resume(ctx context.Context, a *app.App, n *notify.Notifier) {
	for _, c := range a.Clients {
		if ctx.Err() != nil {
			return
		}
		p.resumeOne(ctx, a, n, c, time.Time{}) // the retrier of a delivery still retried may be this daemon, before it restarted
	}
}

// resumeOne is resume for one client. What it read is acted on only if n is still the notifier
// of the configuration in force and the daemon is not stopping, checked under p.mu, which a reload
// takes to replace n: a read that a reload overtook must not deliver with the configuration the
// reload replaced, nor take the client from the reload's own resume.
func (p *Push) resumeOne(ctx context.Context, a *app.App, n *notify.Notifier, c *rotation.Client, fresh time.Time) {
	if !n.Enabled(c.Name) {
		return
	}
	ev, kinds, ok, err := a.ResumableBy(ctx, c, n, fresh)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.n != n || p.ctx == nil || p.ctx.Err() != nil:
	case err != nil && p.warned[c.Name] != err.Error():
		p.warned[c.Name] = err.Error() // once until it changes or a read succeeds: every check looks
		a.Log.Warn("could not read whether a delivery recorded as failed is to be resumed", "client", c.Name, "error", err)
	case err != nil:
		a.Log.Debug("could not read whether a delivery recorded as failed is to be resumed", "client", c.Name, "error", err)
	case ok && len(kinds) > 0 && p.dispatch.Resume(context.WithoutCancel(ctx), n, ev, kinds):
		a.Log.Info("resuming a delivery recorded as failed", "client", c.Name, "kinds", kinds, "version_id", ev.VersionID, "webhook_id", ev.ID)
	}
	if err == nil {
		delete(p.warned, c.Name)
	}
}

// lookFresh is how recent the engine's read of a token secret must be for a look to trust the tags
// it found (app.App.NothingRecorded): the read of the check the look follows.
const lookFresh = time.Minute

// look resumes, in the background, what c's token secret records as not delivered (resumeOne),
// after a check of c that stored nothing. Another process records a token it stored and did not
// tell (a shell or the Lambda without this daemon's webhook or hook: app.App.Untold), or a delivery
// it gave up on, at any time; a daemon that tells it delivers it at its next check rather than
// at its next start or reload. A delivery another daemon records as failing and goes on retrying
// is left to it for app.RetryingTrust, so that replicas do not all retry it. It costs nothing
// when the check's own read found no record on the token secret; else a DescribeSecret (and a read
// of the token while a record of a kind it tells stands), one at a time per client, and nothing
// before Start or after Stop.
func (p *Push) look(c *rotation.Client) {
	// The check's own read of the token secret (a DescribeSecret) has its tags: with no record on
	// them, the look costs nothing.
	p.mu.Lock()
	defer p.mu.Unlock()
	a, n, ctx := p.app, p.n, p.ctx
	if ctx == nil || ctx.Err() != nil || !n.Enabled(c.Name) || p.looking[c.Name] || a.NothingRecorded(c, lookFresh) {
		return
	}
	p.looking[c.Name] = true
	p.resuming.Go(func() {
		defer func() {
			p.mu.Lock()
			delete(p.looking, c.Name)
			p.mu.Unlock()
		}()
		p.resumeOne(ctx, a, n, c, time.Now().Add(-app.RetryingTrust)) // left to a replica retrying it
	})
}

// OnResult starts telling the ERP of the token r stored, if it stored one (an Options.OnResult
// hook). The delivery outlives the check, and the daemon's context: a token stored during the
// shutdown grace gets its attempts until Stop. A kind of push delivery the token secret is marked
// as told by and this daemon does not tell is recorded as not delivered (app.App.Untold; not in the
// metrics, which count this daemon's deliveries) in the background (off), since it reads the token
// secret: the check, and the next client's, do not wait for Secrets Manager.
func (p *Push) OnResult(ctx context.Context, c *rotation.Client, r rotation.Result) {
	ctx = context.WithoutCancel(ctx)
	a, n, before, ok := p.stored(c, r)
	if !ok {
		p.look(c)
		return
	}
	untold := func(ev notify.Event) { _ = a.Untold(ctx, c, n, ev, a.Recorder(nil, a.Log), a.Log) }
	if !n.Enabled(c.Name) {
		// Nothing to post: the event too (the token secret's ARN, a DescribeSecret) is made off the path.
		p.off(func() {
			if ev, ok := a.Event(ctx, c, r, before, false); ok {
				untold(ev)
			}
		})
		return
	}
	// Posted here, in the order the checks stored the tokens: a newer token supersedes an older one.
	ev, _ := a.Event(ctx, c, r, before, false)
	p.dispatch.Post(ctx, n, ev)
	p.off(func() { untold(ev) })
}

// off runs f in the background from Start until Stop, which waits for it; else at once.
func (p *Push) off(f func()) {
	p.mu.Lock()
	if p.ctx == nil || p.ctx.Err() != nil {
		p.mu.Unlock()
		f()
		return
	}
	p.resuming.Go(f)
	p.mu.Unlock()
}

// event is what OnResult posts: the notifier of the configuration in force and the event of the
// token r stored; false when r stored none or c has nothing to be told.
func (p *Push) event(ctx context.Context, c *rotation.Client, r rotation.Result) (*notify.Notifier, notify.Event, bool) {
	a, n, before, ok := p.stored(c, r)
	if !ok || !n.Enabled(c.Name) {
		return n, notify.Event{}, false
	}
	ev, ok := a.Event(ctx, c, r, before, false)
	return n, ev, ok
}

// stored notes c's health after r, and returns the configuration in force, its notifier (nil
// without push delivery) and c's health before r; false when r stored no token.
func (p *Push) stored(c *rotation.Client, r rotation.Result) (*app.App, *notify.Notifier, rotation.Health, bool) {
	p.mu.Lock()
	a, before := p.app, p.health[c.Name]
	p.health[c.Name] = r.Status.State
	p.mu.Unlock()
	if r.Stored == nil {
		return a, nil, before, false
	}
	return a, a.Notifier(notify.Daemon, a.Log, a.Recorder(&p.stats, a.Log)), before, true
}

// Start implements Service: deliveries start with the checks that store tokens, and, in the
// background, with those recorded as failed that are to be resumed (resume).
func (p *Push) Start() error {
	p.mu.Lock()
	a := p.app
	p.ctx, p.stop = context.WithCancel(context.Background())
	p.n = a.Notifier(notify.Daemon, a.Log, a.Recorder(&p.stats, a.Log))
	n := p.n
	p.mu.Unlock()
	p.background(a, n)
	return nil
}

// Stop implements Service, once the daemon's checks have ended: the deliveries in flight get until
// ctx ends to succeed; each one still undelivered then is reported as failed (the error log, the
// token secret's undelivered tag that status shows), and the next start, or a replica's next check,
// resumes it.
//
// The work in the background (records of what is not told, resumes) gets the same time: Stop
// gives up on it too when ctx ends, rather than keep the deliveries waiting for it.
func (p *Push) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.stop != nil {
		p.stop()
	}
	p.mu.Unlock()
	background := make(chan struct{})
	go func() { p.resuming.Wait(); close(background) }()
	p.dispatch.Stop(ctx)
	select {
	case <-background:
	case <-ctx.Done():
	}
	return nil
}

// WriteMetrics writes the delivery metric families (an Options.Metrics func).
func (p *Push) WriteMetrics(w io.Writer) { p.stats.WriteMetrics(w) }
