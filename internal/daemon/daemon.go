package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/ops"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// clientKey is a client's configuration (its spec, config.Client) as far as its checks depend on
// it. A client whose key a reload leaves unchanged keeps its cache and counters, and its check
// under way is filed and handed to the OnResult hooks; a changed one is looked at afresh (a token
// its check under way stored still reaches the hooks: see act). What
// only push delivery and the gateway (its probe too) read is left out, so that a new webhook URL or gateway header
// does not drop the delivery of a token stored in the round under way. Every other field, any
// added to the spec later included, is part of the key: the safe side.
type clientKey config.Client

func keyOf(c *rotation.Client) clientKey {
	k := c.Client
	k.WebhookURL, k.GatewayTokenHeader, k.ProbePath = "", "", ""
	return clientKey(k)
}

// entry is what the daemon knows about one client: what it last read, when to look again, and the
// counters its metrics report.
type entry struct {
	key   clientKey
	cache *rotation.Cache

	checked time.Time // when the last check ended; zero: never checked
	next    time.Time // the engine's NextCheck from that check; zero: none

	// readFails counts consecutive checks that could not read Secrets Manager; readErr is the last
	// such failure, for the log only.
	readFails int
	readErr   error

	// status is the client as last read (nil until a read succeeded), at readAt.
	status *rotation.Status
	readAt time.Time
	// healthy is when a check last found the client healthy (rotation.Health.OK).
	healthy time.Time

	outcomes map[rotation.Outcome]uint64
}

func newEntry(k clientKey) *entry {
	return &entry{key: k, cache: &rotation.Cache{}, outcomes: map[rotation.Outcome]uint64{}}
}

// state is the client's health as the metrics report it: unknown while its secrets cannot be read,
// "" before its first check.
func (e *entry) state() rotation.Health {
	switch {
	case e.checked.IsZero():
		return ""
	case e.readFails > 0 || e.status == nil:
		return rotation.HealthUnknown
	}
	return e.status.State
}

// look is what the schedule knows about the client.
func (e *entry) look(name string) look {
	l := look{name: name, checked: e.checked, next: e.next, readFails: e.readFails}
	if e.status != nil && e.status.ValidTill != nil {
		l.expires = *e.status.ValidTill
	}
	return l
}

// daemon is one Run. Its loop goroutine owns the schedule; the fields under mu are shared with the
// rounds' workers and the ops handlers.
type daemon struct {
	opts    Options
	workers int
	ops     ops.Limits
	// sched is the parsed schedule; only the loop uses it.
	sched cron.Schedule

	mu        sync.Mutex // guards the fields below
	app       *app.App
	log       *slog.Logger
	entries   map[string]*entry // by client name
	active    map[string]int    // clients being checked now, for the shutdown message
	ticks     uint64
	tickAt    time.Time // the schedule's next activation
	firstDone bool      // the first tick finished, so readiness means something
	closing   bool
	unready   int // clients whose last read failed, as last logged
}

func newDaemon(opts Options, a *app.App) (*daemon, error) {
	if a == nil || a.Config == nil || a.Engine == nil {
		return nil, errors.New("daemon: the loaded configuration has no Config or Engine")
	}
	sched, err := parseSchedule(a.Config)
	if err != nil {
		return nil, err
	}
	d := &daemon{
		opts:    opts,
		workers: opts.Concurrency,
		ops:     ops.DefaultLimits,
		sched:   sched,
		app:     a,
		log:     pickLogger(a, opts),
		entries: make(map[string]*entry, len(a.Clients)),
		active:  map[string]int{},
	}
	if d.workers <= 0 {
		d.workers = DefaultConcurrency
	}
	for _, c := range a.Clients {
		d.entries[c.Name] = newEntry(keyOf(c))
	}
	return d, nil
}

// parseSchedule parses the configured schedule with the parser the configuration is validated
// with; an App built by hand without one gets the default.
func parseSchedule(cfg *config.Config) (cron.Schedule, error) {
	spec := scheduleSpec(cfg)
	s, err := timing.ParseSchedule(spec, time.Now())
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return s, nil
}

func scheduleSpec(cfg *config.Config) string {
	if cfg.Schedule == "" {
		return config.DefaultSchedule
	}
	return cfg.Schedule
}

// grace is the configured shutdown grace; an App built by hand without one gets the default, since
// zero would turn every rotation in flight at shutdown into an error.
func grace(cfg *config.Config) time.Duration {
	if cfg.ShutdownGrace > 0 {
		return cfg.ShutdownGrace
	}
	return config.DefaultShutdownGrace
}

func pickLogger(a *app.App, opts Options) *slog.Logger {
	switch {
	case a.Log != nil:
		return a.Log
	case opts.Log != nil:
		return opts.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *daemon) logger() *slog.Logger {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log
}

// round is one set of checks run by the loop: every client (a tick) or those that are due.
type round struct {
	trigger string
	full    bool
	app     *app.App
	clients []*rotation.Client
}

// run serves until ctx is cancelled; see Run.
func (d *daemon) run(ctx context.Context) error {
	cfg := d.app.Config
	var services []Service
	ops := &opsService{d: d, addr: cfg.HTTPAddr}
	if cfg.HTTPAddr != "" {
		services = append(services, ops)
	}
	services = append(services, d.opts.Services...)
	if err := startServices(services); err != nil {
		return err
	}
	log := d.logger()
	log.Info("daemon started", "version", d.opts.Version, "clients", len(d.app.Clients),
		"schedule", scheduleSpec(cfg), "http_addr", ops.bound, "shutdown_grace", grace(cfg).String())

	d.mu.Lock()
	d.tickAt = d.activationLocked(time.Now())
	d.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		done    <-chan struct{} // closed when the running round ends; nil while none runs
		pending = "start"       // a tick wanted as soon as no round runs; "" for none
	)
	for {
		var wake <-chan time.Time
		if done == nil {
			if pending != "" {
				done, pending = d.start(ctx, pending, nil), ""
				continue
			}
			switch p := d.plan(time.Now()); {
			case p.tick:
				done = d.start(ctx, "schedule", nil)
			case len(p.due) > 0:
				done = d.start(ctx, "wake", d.clients(p.due))
			default:
				timer.Reset(max(time.Until(p.wake), 0))
				wake = timer.C
			}
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return d.shutdown(done, services)
		case <-d.opts.Reload:
			timer.Stop()
			if d.reload(ctx) {
				pending = "reload"
			}
		case <-done:
			done = nil
		case <-wake:
		}
	}
}

// plan asks schedule what the loop does at now; a tick that has come moves the schedule on to
// its next activation.
func (d *daemon) plan(now time.Time) plan {
	d.mu.Lock()
	defer d.mu.Unlock()
	looks := make([]look, 0, len(d.app.Clients))
	for _, c := range d.app.Clients {
		if e := d.entries[c.Name]; e != nil {
			looks = append(looks, e.look(c.Name))
		}
	}
	p := schedule(now, d.tickAt, looks)
	if p.tick {
		d.tickAt = d.activationLocked(now)
	}
	return p
}

// clients returns the configured clients of the given names.
func (d *daemon) clients(names []string) []*rotation.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var out []*rotation.Client
	for _, c := range d.app.Clients {
		if want[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// activationLocked returns the schedule's first activation after t; d.mu must be held. A schedule
// without one (robfig/cron gives the zero time when it finds none within five years; configuration
// refuses such schedules, but a daemon must not stop looking because of one) falls back to
// fallbackTick.
func (d *daemon) activationLocked(t time.Time) time.Time {
	if next := d.sched.Next(t.UTC()); next.After(t) {
		return next
	}
	d.log.Error("the schedule has no next activation; looking at every client at the default interval instead",
		"interval", fallbackTick.String())
	return t.Add(fallbackTick)
}

// start runs a round in a new goroutine and returns a channel closed when it ends. clients nil
// means every client: a tick.
func (d *daemon) start(ctx context.Context, trigger string, clients []*rotation.Client) <-chan struct{} {
	d.mu.Lock()
	r := round{trigger: trigger, full: clients == nil, app: d.app, clients: clients}
	if r.full {
		r.clients = d.app.Clients
		d.ticks++
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.round(ctx, r)
	}()
	return done
}

// round checks r's clients, at most d.workers at once. After cancellation it starts no further
// client; those already started finish.
func (d *daemon) round(ctx context.Context, r round) {
	begin := time.Now()
	defer func() {
		// Per-client panics are recovered in checkOne; this guards the daemon's own bookkeeping.
		if p := recover(); p != nil {
			d.logger().Error("a round of checks panicked", "trigger", r.trigger, "panic", clear.Sanitize(fmt.Sprint(p)), "stack", string(debug.Stack()))
		}
	}()
	var (
		mu     sync.Mutex
		counts = map[rotation.Outcome]int{}
		wg     sync.WaitGroup
		jobs   = make(chan *rotation.Client)
	)
	for range min(d.workers, len(r.clients)) {
		wg.Go(func() {
			for c := range jobs {
				if o := d.checkOne(ctx, r.app, c); o != "" {
					mu.Lock()
					counts[o]++
					mu.Unlock()
				}
			}
		})
	}
feed:
	for _, c := range r.clients {
		if ctx.Err() != nil {
			break
		}
		select {
		case jobs <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()

	d.afterRound(ctx, r)
	attrs := []any{"trigger", r.trigger, "clients", len(r.clients), "took", time.Since(begin).String()}
	for _, o := range rotation.Outcomes {
		if n := counts[o]; n > 0 {
			attrs = append(attrs, string(o), n)
		}
	}
	d.logger().Debug("round finished", attrs...)
}

// afterRound marks the first tick done and logs a change of readiness, with the details /readyz
// does not give.
func (d *daemon) afterRound(ctx context.Context, r round) {
	d.mu.Lock()
	if r.full && ctx.Err() == nil {
		d.firstDone = true
	}
	var names []string
	var first error
	for _, n := range d.names() {
		if e := d.entries[n]; e.readFails > 0 {
			names = append(names, n)
			if first == nil {
				first = e.readErr
			}
		}
	}
	was, count := d.unready, len(names)
	d.unready = count
	log := d.log
	d.mu.Unlock()
	switch {
	case count > 0 && count != was:
		const show = 5
		if len(names) > show {
			names = append(names[:show:show], fmt.Sprintf("and %d more", len(names)-show))
		}
		log.Warn("not ready: Secrets Manager could not be read for some clients", "clients", strings.Join(names, ", "),
			"count", count, "error", first)
	case count == 0 && was > 0:
		log.Info("ready again: every client's secrets could be read")
	}
}

// checkOne asks the engine about one client and records the answer. A panic (in a token source, a
// store, or the engine) is recovered and recorded as a failure of this client alone.
func (d *daemon) checkOne(ctx context.Context, a *app.App, c *rotation.Client) (outcome rotation.Outcome) {
	cache := d.enter(c)
	defer d.leave(c.Name)
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("panic while checking the client: %s", clear.Sanitize(fmt.Sprint(p)))
			d.logger().Error("a client's check panicked; the other clients carry on", "client", c.Name, "error", err, "stack", string(debug.Stack()))
			// What the panic left behind (a claim, perhaps) is unknown: read everything again soon,
			// and the engine will say how long any claim still holds.
			cache.Invalidate()
			now := time.Now()
			r := rotation.Result{Client: c.Name, Outcome: rotation.Failed, Message: err.Error(), Err: err, NextCheck: now.Add(readRetryBase)}
			d.record(c, r, false, now)
			outcome = rotation.Failed
		}
	}()

	r := a.Run(ctx, c, rotation.Request{}, cache)
	if ctx.Err() != nil && r.Outcome == rotation.Failed && !r.Requested && errors.Is(r.Err, context.Canceled) {
		// Shutdown cut the check short before it claimed anything: nothing happened, nothing to
		// record, and the client must not look broken in the last scrape.
		return ""
	}
	d.act(ctx, c, r)
	return r.Outcome
}

// act is where the daemon acts on the engine's result of a check: it files it (record), then hands
// it to the OnResult hooks (a gateway, push delivery). Every check of every round ends here.
//
// A result that a reload made stale (record files nothing) still reaches the hooks when it stored a
// token the configuration in force reads: that token revoked the one ERP systems held, and they
// must still be told of it and served it, as the client that now reads it (renamed, perhaps). One
// stored in a secret no client reads any more is of no use to them.
func (d *daemon) act(ctx context.Context, c *rotation.Client, r rotation.Result) {
	to := c
	if !d.record(c, r, true, time.Now()) {
		if to = d.reader(c.TokenSecretID); r.Stored == nil || to == nil {
			return
		}
	}
	for _, hook := range d.opts.OnResult {
		hook(ctx, to, r)
	}
}

// reader returns the client of the configuration in force that reads the token secret, or nil.
func (d *daemon) reader(tokenSecretID string) *rotation.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.app.Clients {
		if c.TokenSecretID == tokenSecretID {
			return c
		}
	}
	return nil
}

// enter registers a check of c and returns c's cache.
func (d *daemon) enter(c *rotation.Client) *rotation.Cache {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active[c.Name]++
	if e := d.entries[c.Name]; e != nil && e.key == keyOf(c) {
		return e.cache
	}
	// A reload removed or changed the client while this round was under way: check it without a
	// cache, and record nothing (see record).
	return nil
}

func (d *daemon) leave(name string) {
	d.mu.Lock()
	if d.active[name]--; d.active[name] <= 0 {
		delete(d.active, name)
	}
	d.mu.Unlock()
}

// record files one result: when to look at the client next, what it looks like, and its counters.
// engine is false for a result the daemon made up after a panic, which says nothing about the
// client's secrets. It returns false, filing nothing, when a reload removed or changed the client
// while it was being checked.
func (d *daemon) record(c *rotation.Client, r rotation.Result, engine bool, now time.Time) bool {
	d.mu.Lock()
	e := d.entries[c.Name]
	if e == nil || e.key != keyOf(c) {
		d.mu.Unlock()
		return false
	}
	before := e.state()
	e.checked, e.next = now, r.NextCheck
	e.outcomes[r.Outcome]++
	switch {
	case !engine:
	case r.ReadErr != nil:
		e.readFails++
		e.readErr = r.ReadErr
	default:
		e.readFails, e.readErr = 0, nil
		st := r.Status
		e.status, e.readAt = &st, now
		if st.State.OK() {
			e.healthy = now
		}
	}
	after := e.state()
	var st *rotation.Status
	if e.status != nil {
		cp := *e.status
		st = &cp
	}
	log := d.log
	d.mu.Unlock()
	logChange(log, c.Name, before, after, st)
	return true
}

// logChange logs a client's change of state, as last read: st is its status (nil: none).
func logChange(log *slog.Logger, name string, before, after rotation.Health, st *rotation.Status) {
	if after == before || after == rotation.HealthUnknown {
		// An unreadable client is logged by the engine at every check, and summarised once by
		// afterRound.
		return
	}
	attrs := []any{"client", name, "state", string(after)}
	if before != "" {
		attrs = append(attrs, "was", string(before))
	}
	switch {
	case after == rotation.HealthTokenLost:
		reason := "a token was issued but not stored"
		if st != nil && st.TokenLost != nil {
			reason = st.TokenLost.Reason
		}
		log.Error("the token in AWSCURRENT is lost: Clear issued a token that was not stored, or a rotation was abandoned; ERP systems hold a revoked token until it is replaced",
			append(attrs, "reason", reason)...)
	case !after.OK():
		if st != nil && st.BlockedReason != nil {
			attrs = append(attrs, "reason", *st.BlockedReason)
		} else if st != nil && st.LastError != nil {
			attrs = append(attrs, "reason", *st.LastError)
		}
		log.Warn("the client needs attention", attrs...)
	case before != "" && !before.OK():
		log.Info("the client is healthy again", attrs...)
	}
}

// reload loads the configuration again and swaps it in, keeping what it knows about clients whose
// configuration is unchanged. On failure it keeps the running configuration and returns false.
func (d *daemon) reload(ctx context.Context) bool {
	log := d.logger()
	log.Info("reloading the configuration")
	a, err := d.load(ctx)
	var sched cron.Schedule
	if err == nil && (a == nil || a.Config == nil || a.Engine == nil) {
		err = errors.New("the loaded configuration has no Config or Engine")
	}
	if err == nil {
		sched, err = parseSchedule(a.Config)
	}
	if err != nil {
		log.Error("reload failed; keeping the previous configuration", "error", err)
		return false
	}

	d.mu.Lock()
	old := d.app.Config
	entries := make(map[string]*entry, len(a.Clients))
	var kept, added, changed int
	for _, c := range a.Clients {
		k := keyOf(c)
		e := d.entries[c.Name]
		switch {
		case e == nil:
			e = newEntry(k)
			added++
		case e.key == k:
			kept++
		default:
			// A changed client is looked at afresh; its counters carry on, as counters must.
			fresh := newEntry(k)
			fresh.outcomes = e.outcomes
			e = fresh
			changed++
		}
		entries[c.Name] = e
	}
	removed := len(d.entries) - kept - changed
	d.entries, d.app = entries, a
	d.log = pickLogger(a, d.opts)
	if scheduleSpec(a.Config) != scheduleSpec(old) {
		d.sched = sched
		d.tickAt = d.activationLocked(time.Now())
	}
	log = d.log
	d.mu.Unlock()

	if a.Config.HTTPAddr != old.HTTPAddr {
		log.Warn("the ops listener address changed; it takes effect at the next restart", "http_addr", old.HTTPAddr, "configured", a.Config.HTTPAddr)
	}
	log.Info("reloaded the configuration", "clients", len(a.Clients), "unchanged", kept, "added", added,
		"changed", changed, "removed", removed, "schedule", scheduleSpec(a.Config))
	for _, hook := range d.opts.OnReload {
		d.onReload(ctx, hook, a, log)
	}
	return true
}

// onReload runs one OnReload hook; its panic is logged, and the daemon goes on.
func (d *daemon) onReload(ctx context.Context, hook func(context.Context, *app.App), a *app.App, log *slog.Logger) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("a reload hook panicked", "panic", fmt.Sprint(r))
		}
	}()
	hook(ctx, a)
}

// load calls Options.Load for a reload. A panic while loading (a configuration no test foresaw) is
// a failed reload like any other: a running daemon keeps its configuration rather than stop.
func (d *daemon) load(ctx context.Context) (a *app.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("loading the configuration panicked: %v", r)
		}
	}()
	return d.opts.Load(ctx)
}

// shutdown starts no further check and waits, at most the shutdown grace, for the round in flight.
func (d *daemon) shutdown(done <-chan struct{}, services []Service) error {
	d.mu.Lock()
	d.closing = true
	g := grace(d.app.Config)
	log := d.log
	d.mu.Unlock()
	log.Info("shutting down: no new checks; waiting for those in flight", "grace", g.String())

	var err error
	if done != nil {
		t := time.NewTimer(g)
		select {
		case <-done:
			t.Stop()
		case <-t.C:
			d.mu.Lock()
			names := make([]string, 0, len(d.active))
			for n := range d.active {
				names = append(names, n)
			}
			d.mu.Unlock()
			slices.Sort(names)
			err = fmt.Errorf("shutdown grace of %s expired with %d client check(s) still in flight (%s); a rotation may have been cut short",
				g, len(names), strings.Join(names, ", "))
		}
	}
	stopServices(services, log)
	if err != nil {
		log.Error("shutdown incomplete", "error", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// startServices starts each service in order; when one fails, those started are stopped and its
// error returned.
func startServices(services []Service) error {
	for i, s := range services {
		if err := s.Start(); err != nil {
			stopServices(services[:i], nil)
			return err
		}
	}
	return nil
}

// stopServices stops the services in reverse order, each within serviceStop, and logs a failure
// (log may be nil).
func stopServices(services []Service, log *slog.Logger) {
	for _, s := range slices.Backward(services) {
		ctx, cancel := context.WithTimeout(context.Background(), serviceStop)
		err := s.Stop(ctx)
		cancel()
		if err != nil && log != nil {
			log.Warn("a service did not stop cleanly", "error", err)
		}
	}
}
