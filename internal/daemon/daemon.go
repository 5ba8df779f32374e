package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

const (
	// minGap is the earliest the daemon looks at a client again after checking it. The engine does
	// not ask for a look sooner, but a NextCheck at or before the check itself (a clock step could
	// produce one) would otherwise make the wake timer spin.
	minGap = time.Second
	// retryBase and retryCap space the extra looks at a client whose check failed without a time
	// from the engine, mostly because its secrets could not be read. The engine cannot persist such
	// a failure, so the daemon backs off itself. Those checks read Secrets Manager again before they
	// could call Clear, so they cannot spend the budget faster than the engine allows.
	retryBase = 30 * time.Second
	retryCap  = 10 * time.Minute
	// httpShutdown bounds the ops listener's shutdown; its requests are tiny.
	httpShutdown = 2 * time.Second
)

// clientKey is everything that makes up a client's configuration except its Clear client (a fresh
// pointer on every load). A client whose key is unchanged by a reload keeps its cached schedule.
type clientKey struct {
	Name, BaseURL                 string
	ClientSecret                  clear.ClientSecret
	ClientSecretID, TokenSecretID string
	DailyLimit                    int
	RenewBefore, MaxAge           time.Duration
}

func keyOf(c *rotation.Client) clientKey {
	return clientKey{
		Name: c.Name, BaseURL: c.BaseURL, ClientSecret: c.ClientSecret, ClientSecretID: c.ClientSecretID,
		TokenSecretID: c.TokenSecretID, DailyLimit: c.DailyLimit, RenewBefore: c.RenewBefore, MaxAge: c.MaxAge,
	}
}

// entry is what the daemon knows about one client: when to look at it next, and what its metrics
// report.
type entry struct {
	key clientKey

	checked  time.Time // when the last check ended; zero: never checked
	next     time.Time // when the engine asked for the next look; zero: at the next tick
	retry    time.Time // when to look again after a failed check the engine gave no time for
	failures int       // consecutive such checks

	outcomes    map[rotation.Outcome]uint64
	hasToken    bool
	issuedAt    time.Time
	validTill   *time.Time
	requests    int
	requestsDay string // the UTC day requests counts; "" until known
	lastSuccess time.Time
	blocked     bool
	storeErr    string // why the last check could not use Secrets Manager; "" if it could
}

func newEntry(k clientKey) *entry {
	return &entry{key: k, outcomes: map[rotation.Outcome]uint64{}}
}

// due reports whether the client needs a check at now.
func (e *entry) due(now time.Time, recheck time.Duration) bool {
	return e.checked.IsZero() || e.next.IsZero() || !now.Before(e.next) || !now.Before(e.checked.Add(recheck))
}

// wakeAt is the latest time the client should be looked at: its NextCheck, its retry after a read
// failure, or the cache's maximum age, whichever comes first. A client never checked yields a time
// long past, so that it is checked at once.
func (e *entry) wakeAt(recheck time.Duration) time.Time {
	at := e.checked.Add(recheck)
	if !e.next.IsZero() && e.next.Before(at) {
		at = e.next
	}
	if !e.retry.IsZero() && e.retry.Before(at) {
		at = e.retry
	}
	return at
}

// daemon is one Run.
type daemon struct {
	opts    Options
	recheck time.Duration
	workers int
	ctx     context.Context // Run's context; checks started by timers use it
	// logger is read without d.mu, so that cron's goroutine, which logs, never waits for d.mu while
	// a holder of d.mu waits for cron (Entry).
	logger atomic.Pointer[slog.Logger]

	checking sync.Mutex     // held by the running check, so that checks never overlap
	inflight sync.WaitGroup // checks started and not yet finished, for the shutdown grace

	mu        sync.Mutex // guards the fields below
	app       *app.App
	sched     cron.Schedule
	cron      *cron.Cron // nil until run starts it
	cronID    cron.EntryID
	job       cron.Job
	entries   map[string]*entry // by client name
	active    map[string]int    // clients being checked now, for the shutdown message
	ticks     uint64
	firstDone bool // a check has finished, so readiness means something
	closing   bool
	wake      *time.Timer
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
		recheck: opts.Recheck,
		workers: opts.Concurrency,
		app:     a,
		sched:   sched,
		entries: make(map[string]*entry, len(a.Clients)),
		active:  map[string]int{},
	}
	d.logger.Store(pickLogger(a, opts))
	if d.recheck <= 0 {
		d.recheck = DefaultRecheck
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
	spec := cfg.Schedule
	if spec == "" {
		spec = config.DefaultSchedule
	}
	s, err := config.ParseSchedule(spec)
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

func (d *daemon) log() *slog.Logger { return d.logger.Load() }

// nextTick returns when cron next runs the schedule. d.mu must be held. Cron's own record is used
// because an "@every" schedule counts from the last run, not from now.
func (d *daemon) nextTick(now time.Time) time.Time {
	if d.cron != nil {
		if e := d.cron.Entry(d.cronID); !e.Next.IsZero() {
			return e.Next
		}
	}
	return d.sched.Next(now.UTC())
}

// run serves until ctx is cancelled; see Run.
func (d *daemon) run(ctx context.Context) error {
	d.ctx = ctx
	cfg := d.app.Config
	logger := cronLogger{d}
	cr := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(logger), cron.WithChain(cron.Recover(logger)))
	d.mu.Lock()
	d.cron, d.job = cr, cron.FuncJob(func() { d.runCheck("schedule") })
	d.cronID = cr.Schedule(d.sched, d.job)
	d.mu.Unlock()

	var srv *http.Server
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("ops listener: %w", err)
		}
		srv = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log().Error("the ops listener stopped", "error", err)
			}
		}()
	}

	cr.Start()
	d.log().Info("daemon started", "version", d.opts.Version, "clients", len(d.app.Clients),
		"schedule", scheduleSpec(cfg), "http_addr", cfg.HTTPAddr, "shutdown_grace", grace(cfg).String())
	d.spawn("start")

	for {
		select {
		case <-ctx.Done():
			return d.shutdown(cr, srv)
		case <-d.opts.Reload:
			d.reload(ctx)
		}
	}
}

// begin registers a check about to start, unless the daemon is shutting down. The registration
// happens under d.mu, so that no check starts after shutdown has begun waiting.
func (d *daemon) begin() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return false
	}
	d.inflight.Add(1)
	return true
}

// runCheck runs a check in the calling goroutine (a cron job or a timer's).
func (d *daemon) runCheck(trigger string) {
	if !d.begin() {
		return
	}
	defer d.inflight.Done()
	d.check(trigger)
}

// spawn runs a check in a new goroutine.
func (d *daemon) spawn(trigger string) {
	if !d.begin() {
		return
	}
	go func() {
		defer d.inflight.Done()
		d.check(trigger)
	}()
}

// check looks at every client that is due, then re-arms the wake timer.
func (d *daemon) check(trigger string) {
	if !d.checking.TryLock() {
		// The running check re-arms the wake timer when it ends, so nothing due is lost.
		d.log().Debug("a check is still running; skipping this one", "trigger", trigger)
		return
	}
	defer d.checking.Unlock()
	defer d.rearm()
	defer func() {
		// Per-client panics are recovered in checkOne; this guards the daemon's own bookkeeping.
		if p := recover(); p != nil {
			d.log().Error("a check panicked", "trigger", trigger, "panic", clear.Sanitize(fmt.Sprint(p)), "stack", string(debug.Stack()))
		}
	}()

	start := time.Now()
	a, due := d.dueClients(start)
	counts := d.checkClients(a, due)
	d.mu.Lock()
	if d.ctx.Err() == nil {
		d.firstDone = true
	}
	d.mu.Unlock()
	attrs := []any{"trigger", trigger, "clients", len(a.Clients), "due", len(due), "took", time.Since(start).String()}
	for _, o := range rotation.Outcomes {
		if n := counts[o]; n > 0 {
			attrs = append(attrs, string(o), n)
		}
	}
	d.log().Debug("check finished", attrs...)
}

// dueClients counts a tick and returns the current App with the clients due at now.
func (d *daemon) dueClients(now time.Time) (*app.App, []*rotation.Client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ticks++
	var due []*rotation.Client
	for _, c := range d.app.Clients {
		if e := d.entries[c.Name]; e == nil || e.due(now, d.recheck) {
			due = append(due, c)
		}
	}
	return d.app, due
}

// checkClients checks the due clients, at most d.workers at once, and counts their outcomes. After
// cancellation it starts no further clients; those already started finish.
func (d *daemon) checkClients(a *app.App, due []*rotation.Client) map[rotation.Outcome]int {
	counts := map[rotation.Outcome]int{}
	if len(due) == 0 {
		return counts
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan *rotation.Client)
	for range min(d.workers, len(due)) {
		wg.Go(func() {
			for c := range jobs {
				if o := d.checkOne(a, c); o != "" {
					mu.Lock()
					counts[o]++
					mu.Unlock()
				}
			}
		})
	}
feed:
	for _, c := range due {
		if d.ctx.Err() != nil {
			break
		}
		select {
		case jobs <- c:
		case <-d.ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return counts
}

// checkOne asks the engine about one client and records the answer. A panic (in a token source, a
// store, or the engine) is recovered and recorded as a failure of this client alone.
func (d *daemon) checkOne(a *app.App, c *rotation.Client) (outcome rotation.Outcome) {
	d.enter(c.Name)
	defer d.leave(c.Name)
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("panic while checking the client: %s", clear.Sanitize(fmt.Sprint(p)))
			d.log().Error("a client's check panicked; the other clients carry on", "client", c.Name, "error", err, "stack", string(debug.Stack()))
			r := rotation.Result{Client: c.Name, Outcome: rotation.Failed, Message: err.Error(), Err: err, DailyLimit: c.DailyLimit}
			d.record(c, r, nil, nil, true, time.Now())
			outcome = rotation.Failed
		}
	}()

	r := a.Engine.Rotate(d.ctx, c, false)
	if d.ctx.Err() != nil && r.Outcome == rotation.Failed && !r.Requested && errors.Is(r.Err, context.Canceled) {
		// Shutdown cut the check short before it claimed anything: nothing happened, nothing to
		// record, and the client must not look broken in the last scrape.
		d.log().Debug("check interrupted by shutdown before it began", "client", c.Name)
		return ""
	}
	var st *rotation.Status
	var stErr error
	if r.Outcome == rotation.NotDue && d.needsCount(c.Name) {
		// A check that finds the token not due does not read the state, so the day's request count
		// is unknown until something else reports it. One status read per client and run fills it.
		s, err := a.Engine.Status(d.ctx, c)
		if err == nil {
			st = &s
		} else if d.ctx.Err() == nil {
			stErr = err
		}
	}
	d.record(c, r, st, stErr, false, time.Now())
	return r.Outcome
}

func (d *daemon) enter(name string) {
	d.mu.Lock()
	d.active[name]++
	d.mu.Unlock()
}

func (d *daemon) leave(name string) {
	d.mu.Lock()
	if d.active[name]--; d.active[name] <= 0 {
		delete(d.active, name)
	}
	d.mu.Unlock()
}

func (d *daemon) needsCount(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[name]
	return e != nil && e.requestsDay == ""
}

// record files one result: when to look at the client next, and what its metrics report.
func (d *daemon) record(c *rotation.Client, r rotation.Result, st *rotation.Status, stErr error, panicked bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[c.Name]
	if e == nil || e.key != keyOf(c) {
		return // a reload removed or changed the client while it was being checked
	}
	e.checked = now
	e.next = r.NextCheck
	if !e.next.IsZero() && e.next.Before(now.Add(minGap)) {
		e.next = now.Add(minGap)
	}
	if r.Outcome == rotation.Failed && r.NextCheck.IsZero() {
		e.failures++
		e.retry = now.Add(min(retryBase<<min(e.failures-1, 10), retryCap))
	} else {
		e.failures, e.retry = 0, time.Time{}
	}

	e.outcomes[r.Outcome]++
	if r.IssuedAt != nil {
		e.hasToken, e.issuedAt, e.validTill = true, *r.IssuedAt, r.ValidTill
	}
	day := timing.Day(now)
	switch {
	case st != nil && st.RequestsToday != nil:
		e.requests, e.requestsDay = *st.RequestsToday, day
	case r.RequestsToday != nil:
		e.requests, e.requestsDay = *r.RequestsToday, day
	}
	if r.Outcome.OK() {
		e.lastSuccess = now
	}
	e.blocked = r.Outcome == rotation.Blocked || r.Outcome == rotation.Limited
	e.storeErr = ""
	var ce *clear.Error
	switch {
	case stErr != nil:
		e.storeErr = stErr.Error()
	case r.Outcome == rotation.Failed && !panicked && !errors.As(r.Err, &ce):
		// Clear's refusals are the client's problem, not the rotator's: only failures to read or
		// write the secrets make the daemon unready.
		e.storeErr = r.Message
	}
}

// rearm sets the wake timer for the earliest time a client needs a look, when that comes before the
// next cron tick; the tick is soon enough otherwise.
func (d *daemon) rearm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wake != nil {
		d.wake.Stop()
		d.wake = nil
	}
	if d.closing || len(d.entries) == 0 {
		return
	}
	now := time.Now()
	var at time.Time
	for _, e := range d.entries {
		if w := e.wakeAt(d.recheck); at.IsZero() || w.Before(at) {
			at = w
		}
	}
	tick := d.nextTick(now)
	if !at.Before(tick) {
		return
	}
	d.log().Debug("a client is due before the next tick; waking for it", "wake_at", at.UTC().Format(time.RFC3339), "next_tick", tick.Format(time.RFC3339))
	d.wake = time.AfterFunc(max(at.Sub(now), 0), func() { d.runCheck("wake") })
}

// reload loads the configuration again and swaps it in, keeping what it knows about clients whose
// configuration is unchanged. On failure it keeps the running configuration.
func (d *daemon) reload(ctx context.Context) {
	d.log().Info("reloading the configuration")
	a, err := d.opts.Load(ctx)
	var sched cron.Schedule
	if err == nil && (a == nil || a.Config == nil || a.Engine == nil) {
		err = errors.New("the loaded configuration has no Config or Engine")
	}
	if err == nil {
		sched, err = parseSchedule(a.Config)
	}
	if err != nil {
		d.log().Error("reload failed; keeping the previous configuration", "error", err)
		return
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
			fresh.outcomes, fresh.lastSuccess = e.outcomes, e.lastSuccess
			e = fresh
			changed++
		}
		entries[c.Name] = e
	}
	removed := len(d.entries) - kept - changed
	d.entries, d.app = entries, a
	d.logger.Store(pickLogger(a, d.opts))
	if scheduleSpec(a.Config) != scheduleSpec(old) && d.cron != nil {
		d.cron.Remove(d.cronID)
		d.cronID = d.cron.Schedule(sched, d.job)
	}
	d.sched = sched
	log := d.log()
	d.mu.Unlock()

	if a.Config.HTTPAddr != old.HTTPAddr {
		log.Warn("the ops listener address changed; it takes effect at the next restart", "http_addr", old.HTTPAddr, "configured", a.Config.HTTPAddr)
	}
	log.Info("reloaded the configuration", "clients", len(a.Clients), "unchanged", kept, "added", added,
		"changed", changed, "removed", removed, "schedule", scheduleSpec(a.Config))
	d.spawn("reload")
}

// shutdown stops scheduling and waits, at most the shutdown grace, for the checks in flight.
func (d *daemon) shutdown(cr *cron.Cron, srv *http.Server) error {
	d.mu.Lock()
	d.closing = true
	if d.wake != nil {
		d.wake.Stop()
		d.wake = nil
	}
	g := grace(d.app.Config)
	log := d.log()
	d.mu.Unlock()
	cr.Stop()
	log.Info("shutting down: no new checks; waiting for those in flight", "grace", g.String())

	done := make(chan struct{})
	go func() {
		d.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	default:
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
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdown)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if err != nil {
		log.Error("shutdown incomplete", "error", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// cronLogger routes robfig/cron's logging to the daemon's logger: its chatter (wake, run, next) at
// debug, its errors (a recovered panic) as errors.
type cronLogger struct{ d *daemon }

func (l cronLogger) Info(msg string, keysAndValues ...any) {
	l.d.log().Debug("cron: "+msg, keysAndValues...)
}

func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.d.log().Error("cron: "+msg, append(keysAndValues, "error", err)...)
}
