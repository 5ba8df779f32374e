package notify

import (
	"context"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// target is one way of telling: the webhook or the hook command.
type target interface {
	kind() string
	attempt(ctx context.Context, ev Event) (Verdict, error)
}

// Recorder learns what became of deliveries, for metrics and status. Failed is called once per
// delivery, when its failure is first reported; Delivered on every success; Superseded when a
// delivery ends because a newer token of its client was stored (its own delivery tells the ERP).
type Recorder interface {
	Failed(ev Event, kind string, at time.Time)
	Delivered(ev Event, kind string, at time.Time)
	Superseded(ev Event, kind string, at time.Time)
}

// Finisher is a Recorder that is also told when a delivery whose failure it was told of while the
// delivery went on (Event.Retrying) ends undelivered after all: given up (a refusal), or cut short
// by the process stopping. Its record of the failure is final from then on: the token secret's
// record then no longer tells a replica to leave the delivery to the process retrying it.
type Finisher interface {
	GaveUp(ev Event, kind string, at time.Time)
}

// Refresher is a Recorder that is also told, every RetryRecordEvery, that a delivery whose failure
// it was told of while the delivery went on (Event.Retrying) is still being tried: the record of a
// live retrier stays fresh, and the other processes leave it to it.
type Refresher interface {
	StillRetrying(ev Event, kind string, at time.Time)
}

// RetryRecordEvery is how often a failing delivery that goes on renews its record (Refresher). A
// record older than a few of these is taken for one whose retrier is gone (app.RetryingTrust).
const RetryRecordEvery = 10 * time.Minute

// Notifier delivers events to the configured targets.
type Notifier struct {
	// URLs are the webhook URLs by client name; a client without one gets no webhook.
	URLs map[string]string
	// Secret returns the signing secret (see Webhook.Secret).
	Secret func(ctx context.Context) (Secret, error)
	// HTTP is the webhook's client; nil means NewHTTPClient().
	HTTP *http.Client
	// Hook is the hook command; nil means none.
	Hook *Hook
	// Policy is how failed attempts are retried and when a failure is reported.
	Policy Policy
	// Now is the clock; nil means time.Now. Rand is the jitter, in [0, 1); nil means math/rand.
	Now  func() time.Time
	Rand func() float64
	// Log receives an error line for every reported failure.
	Log *slog.Logger
	// Recorder, when not nil, is told of failures and deliveries.
	Recorder Recorder
	// Current, when not nil, reports whether ev's token is still its client's latest, and is asked
	// before every attempt: a newer token stored by another process (a replica, the CLI, the
	// Lambda) supersedes the delivery as one this process stored would, so that the older token
	// is never told after the newer one. An error does not stop the attempt.
	Current func(ctx context.Context, ev Event) (bool, error)

	// targets, when set, replaces the webhook and the hook (tests).
	targets func(ev Event) []target
}

// Enabled reports whether n has anything to deliver for client.
func (n *Notifier) Enabled(client string) bool {
	return n != nil && (n.URLs[client] != "" || n.Hook != nil || n.targets != nil)
}

// Tells reports whether n delivers kind ("webhook", "hook") for client.
func (n *Notifier) Tells(client, kind string) bool {
	if n == nil {
		return false
	}
	for _, t := range n.targetsFor(Event{Client: client}) {
		if t.kind() == kind {
			return true
		}
	}
	return false
}

// The kinds of delivery, as recorders are told them and the token secret's tags name them.
const (
	KindWebhook = "webhook"
	KindHook    = "hook"
)

// Kinds are the kinds of delivery.
var Kinds = []string{KindWebhook, KindHook}

// Telling returns the kinds of kinds that n delivers for client (Tells), in their order.
func (n *Notifier) Telling(client string, kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if n.Tells(client, k) {
			out = append(out, k)
		}
	}
	return out
}

// Only returns a copy of n that delivers only the kinds listed ("webhook", "hook"): a resumed
// delivery tells again what was not delivered, and does not run a hook that succeeded once more.
func (n *Notifier) Only(kinds []string) *Notifier {
	if n == nil {
		return nil
	}
	o := *n
	if !slices.Contains(kinds, KindWebhook) {
		o.URLs = nil
	}
	if !slices.Contains(kinds, KindHook) {
		o.Hook = nil
	}
	if all := n.targets; all != nil && len(kinds) == 0 {
		o.targets = nil
	} else if all != nil {
		o.targets = func(ev Event) []target {
			return slices.DeleteFunc(all(ev), func(t target) bool { return !slices.Contains(kinds, t.kind()) })
		}
	}
	return &o
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Notifier) rand() float64 {
	if n.Rand != nil {
		return n.Rand()
	}
	return mrand.Float64()
}

func (n *Notifier) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (n *Notifier) targetsFor(ev Event) []target {
	if n.targets != nil {
		return n.targets(ev)
	}
	var ts []target
	if u := n.URLs[ev.Client]; u != "" {
		ts = append(ts, &Webhook{URL: u, Secret: n.Secret, HTTP: n.HTTP, Now: n.Now})
	}
	if n.Hook != nil {
		ts = append(ts, n.Hook)
	}
	return ts
}

// Deliver tells every target about ev, each retried on its own as n.Policy says, and returns when
// each is delivered or given up, or ctx ends. The error joins one *Error per target not delivered.
// An ended context is not reported as a failure by Deliver: the caller ended it (a newer token
// superseded this one, the run is over) and knows why; except when its cause is ErrStopped: the
// process is stopping and nothing will resume the delivery, so it is reported like one that
// finally failed (the error log, the Recorder). A delivery that Current finds superseded ends
// without an error: there is nothing left to tell.
func (n *Notifier) Deliver(ctx context.Context, ev Event) error {
	if n == nil {
		return nil
	}
	ts := n.targetsFor(ev)
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { errs[i] = n.deliverTo(ctx, t, ev) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deliverTo is one target's loop; every decision in it is Policy's.
func (n *Notifier) deliverTo(ctx context.Context, t target, ev Event) error {
	var rep report
	for failed := 0; ; {
		if ctx.Err() != nil {
			return n.ended(ctx, t, ev, failed, rep.done)
		}
		if n.superseded(ctx, ev) {
			n.log().Info("a newer token of the client was stored meanwhile, and its own delivery tells the ERP: this one ends",
				"client", ev.Client, "kind", t.kind(), "version_id", ev.VersionID, "webhook_id", ev.ID, "attempts", failed)
			if n.Recorder != nil {
				n.Recorder.Superseded(ev, t.kind(), n.now())
			}
			return nil
		}
		v, err := t.attempt(ctx, ev)
		if v == Delivered {
			if rep.done {
				n.log().Info("delivered after all", "client", ev.Client, "kind", t.kind(), "version_id", ev.VersionID, "webhook_id", ev.ID, "attempts", failed+1)
			}
			if n.Recorder != nil {
				n.Recorder.Delivered(ev, t.kind(), n.now())
			}
			return nil
		}
		if ctx.Err() != nil {
			// The attempt failed because the caller ended it; see Deliver.
			return n.ended(ctx, t, ev, failed, rep.done)
		}
		failed++
		var asked time.Duration
		if se, ok := errors.AsType[*StatusError](err); ok {
			asked = se.RetryAfter
		}
		wait, again := n.Policy.Next(failed, v, n.rand(), asked)
		n.failedAttempt(t, ev, &rep, failed, v, err, wait, again)
		if !again {
			return &Error{Kind: t.kind(), Client: ev.Client, Attempts: failed, Err: err}
		}
		if sleep(ctx, wait) != nil {
			return n.ended(ctx, t, ev, failed, rep.done)
		}
	}
}

// report is one target's account of its failure: whether it was reported, and when it was last
// recorded as going on.
type report struct {
	done     bool
	recorded time.Time
}

// failedAttempt reports, records and logs a failed attempt as Policy says. The first failure Policy
// calls failing is reported (the error line, and Recorder.Failed with Event.Retrying when the
// delivery goes on); later ones are logged as warnings, and the record of a delivery that goes on
// is renewed every RetryRecordEvery (Refresher). A delivery reported while it went on that now
// ends (a refusal) tells a Finisher.
func (n *Notifier) failedAttempt(t target, ev Event, r *report, failed int, v Verdict, err error, wait time.Duration, again bool) {
	retrying := r.done // reported at an earlier attempt, so while the delivery went on
	if !r.done && n.Policy.Failing(failed, v) {
		r.done = true
		msg := "the ERP was not told of the new token: delivery failed"
		if again {
			msg += "; still retrying"
		}
		n.log().Error(msg, "client", ev.Client, "kind", t.kind(), "version_id", ev.VersionID, "webhook_id", ev.ID,
			"attempts", failed, "verdict", v.String(), "error", err)
		if n.Recorder != nil {
			e := ev
			e.Retrying = again
			r.recorded = n.now()
			n.Recorder.Failed(e, t.kind(), r.recorded)
		}
		return
	}
	if rf, ok := n.Recorder.(Refresher); ok && retrying && again && n.now().Sub(r.recorded) >= RetryRecordEvery {
		e := ev
		e.Retrying = true
		r.recorded = n.now()
		rf.StillRetrying(e, t.kind(), r.recorded)
	}
	n.log().Warn("delivery attempt failed", "client", ev.Client, "kind", t.kind(), "webhook_id", ev.ID,
		"attempts", failed, "verdict", v.String(), "error", err, "retry_in", wait.String())
	if !again && retrying {
		n.gaveUp(ev, t.kind()) // this refusal ends it
	}
}

// superseded reports whether Current says that ev's token is no longer its client's latest.
func (n *Notifier) superseded(ctx context.Context, ev Event) bool {
	if n.Current == nil {
		return false
	}
	current, err := n.Current(ctx, ev)
	return err == nil && !current
}

// MsgStopped is the error line of a delivery cut short by the process stopping. The undelivered
// tag the Recorder writes is what a daemon resumes from (app.App.Resumable) at its next start, a
// reload, or a replica's next check, and rotate or the Lambda at their next run.
const MsgStopped = "the ERP was not told of the new token: the rotator stopped before delivering it; recorded on the token secret for status, and for a daemon's next start or check to deliver"

// ErrStopped is the cause with which a Dispatcher that stops ends the deliveries still in flight.
var ErrStopped = errors.New("the rotator stopped before the delivery succeeded")

// errSuperseded is the cause with which a Dispatcher ends the delivery of a token a newer one
// replaced, or that it starts again with a reloaded configuration (Redeliver).
var errSuperseded = errors.New("a newer token, or a reloaded configuration, superseded this delivery")

// ended is deliverTo's answer once ctx has ended, after failed attempts (reported says whether the
// failure was reported already). See Deliver for why only ErrStopped is reported here.
func (n *Notifier) ended(ctx context.Context, t target, ev Event, failed int, reported bool) error {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, ErrStopped) && !reported:
		n.log().Error(MsgStopped,
			"client", ev.Client, "kind", t.kind(), "version_id", ev.VersionID, "webhook_id", ev.ID, "attempts", failed)
		if n.Recorder != nil {
			n.Recorder.Failed(ev, t.kind(), n.now())
		}
	case errors.Is(cause, ErrStopped):
		n.gaveUp(ev, t.kind()) // reported while retrying, by the daemon's policy
	}
	return &Error{Kind: t.kind(), Client: ev.Client, Attempts: failed, Err: cause}
}

// gaveUp tells a Finisher that a delivery reported as failing while it went on ends undelivered.
func (n *Notifier) gaveUp(ev Event, kind string) {
	if f, ok := n.Recorder.(Finisher); ok {
		f.GaveUp(ev, kind, n.now())
	}
}

// Dispatcher is the daemon's side of delivery: one delivery in flight per client, in the
// background, retried until delivered; a newer token of the same client supersedes (cancels) the
// delivery of an older one, and is delivered in its place. Redeliver starts again, with a reloaded
// configuration, what is not delivered yet; Stop ends it with the process. Its zero value is ready.
type Dispatcher struct {
	mu      sync.Mutex
	running map[string]*run
	// pending is each client's latest event until it is delivered to every target: what
	// Redeliver delivers again, to the kinds in only (those a resumed delivery was for; none: to
	// every kind). delivered is the id of each client's event delivered last, so that Resume does
	// not tell it again from a record read before the delivery removed it.
	pending   map[string]Event
	only      map[string][]string
	delivered map[string]string
	stopped   bool
	wg        sync.WaitGroup
}

type run struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// Post starts delivering ev with n, superseding any delivery of ev.Client in flight. The delivery
// ends when ctx does. When n has nothing to deliver for ev.Client, the delivery in flight ends
// and nothing starts (a reload removed the client's webhook and hook).
func (d *Dispatcher) Post(ctx context.Context, n *Notifier, ev Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.post(ctx, n, ev, nil)
}

// post is Post, with d.mu held, to the kinds listed (none: every kind n tells).
func (d *Dispatcher) post(ctx context.Context, n *Notifier, ev Event, kinds []string) {
	if d.running == nil {
		d.running, d.pending, d.only, d.delivered = map[string]*run{}, map[string]Event{}, map[string][]string{}, map[string]string{}
	}
	prev := d.running[ev.Client]
	if prev != nil {
		prev.cancel(errSuperseded)
	}
	if kinds != nil {
		n = n.Only(kinds)
	}
	if !n.Enabled(ev.Client) {
		delete(d.pending, ev.Client)
		delete(d.only, ev.Client)
		return
	}
	d.pending[ev.Client], d.only[ev.Client] = ev, kinds
	ctx, cancel := context.WithCancelCause(ctx)
	if d.stopped {
		cancel(ErrStopped) // a token stored after Stop is reported at once, not left to the exit
	}
	r := &run{cancel: cancel, done: make(chan struct{})}
	d.running[ev.Client] = r
	d.wg.Go(func() {
		defer close(r.done)
		defer cancel(nil)
		if prev != nil {
			<-prev.done // one delivery per client at a time, so the newer is the last word
		}
		err := n.Deliver(ctx, ev)
		d.mu.Lock()
		if d.running[ev.Client] == r {
			delete(d.running, ev.Client)
			if err == nil {
				delete(d.pending, ev.Client)
				delete(d.only, ev.Client)
				d.delivered[ev.Client] = ev.ID
			}
		}
		d.mu.Unlock()
	})
}

// Redeliver delivers again, with n (a reloaded configuration's notifier), each client's latest
// event that is not delivered yet: one still retrying, and one given up (a 4xx, a command that
// does not exist), which nothing else would deliver before the client's next token. It is the
// remedy the runbook gives: fix the receiver or the configuration, then reload. The event is the
// same, id included, so a receiver that has it already acts once.
func (d *Dispatcher) Redeliver(ctx context.Context, n *Notifier) {
	// Under one lock, so that a newer token posted meanwhile is not superseded by an older one.
	d.mu.Lock()
	defer d.mu.Unlock()
	evs := make([]Event, 0, len(d.pending))
	for _, ev := range d.pending {
		evs = append(evs, ev)
	}
	for _, ev := range evs {
		d.post(ctx, n, ev, d.only[ev.Client])
	}
}

// Resume delivers ev with n to the kinds listed (none: every kind), as Post does, unless a
// delivery of ev.Client is in flight (this process stored a token of the client since, or is
// delivering it already), or ev is pending here already (a delivery of it this process retries, or
// was refused: a reload delivers it again) or was delivered: it reports whether it started one. It
// is for a delivery that another process, or this one before it restarted, recorded as failed. A
// different event pending here, given up, is an older token's (ev is the one in AWSCURRENT), and
// does not keep ev waiting.
func (d *Dispatcher) Resume(ctx context.Context, n *Notifier, ev Event, kinds []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pending[ev.Client]; ok && p.ID == ev.ID || d.running[ev.Client] != nil || d.delivered[ev.Client] == ev.ID || !n.Enabled(ev.Client) {
		return false
	}
	d.post(ctx, n, ev, kinds)
	return true
}

// Wait returns when every delivery has ended (cancel their context first to make them end).
func (d *Dispatcher) Wait() { d.wg.Wait() }

// Stop is for a process that is stopping, and will not resume what it did not deliver: it lets the
// deliveries in flight go on until they end or ctx does, then ends those still running with
// ErrStopped, which reports each one as failed (Deliver), and returns once they have returned. A
// delivery posted after Stop is reported at once.
func (d *Dispatcher) Stop(ctx context.Context) {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	d.mu.Lock()
	for _, r := range d.running {
		r.cancel(ErrStopped)
	}
	d.mu.Unlock()
	<-done
}
