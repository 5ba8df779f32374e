// Package fleet runs rotate, revoke and status over a set of configured clients, for every shell:
// the CLI's commands, the Lambda's events and the daemon's status page. It holds what would
// otherwise be written once per shell: how many clients are looked at side by side, the answers'
// types (the CLI's --json and the Lambda's responses are the same documents), the one rule for when
// a revoke is done, and a status row for every client, "unknown" when it could not be read.
//
// Every decision about one client is the engine's (rotation.Engine); the fleet only fans out,
// gathers and judges the gathered results.
package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Parallel bounds how many clients are looked at at once. Clients are independent, and rotating
// them side by side keeps a slow Clear answer for one from eating the others' share of a Lambda's
// deadline; the bound keeps a long client list from flooding Secrets Manager.
const Parallel = 4

// maxLooks bounds the engine's runs for one client in one Rotate. A client is run again at once
// while the engine asks for it (rotation.Engine.Again: after a first lost token, with room left
// before the deadline), so that a lost token is not left dead until the shell's next run (the
// Lambda's next invocation, minutes away); a second loss in a row backs off, so two runs are all
// the engine can use, and the bound holds whatever it says. Each result is observed; the last one
// is the answer's.
const maxLooks = 2

// Fleet runs commands over clients with one engine.
type Fleet struct {
	Engine *rotation.Engine
	// All is every configured client. A rotation or revoke of one of them is refused when its
	// client secret is also another's (Guard), so it must see them all, not only the ones asked
	// for. Nil means the clients asked for. Unused when Guard is set.
	All []*rotation.Client
	// Guard, when not nil, is a long-lived process's Guard; nil means one for each command.
	Guard *Guard
	// Observe, when not nil, is called with each result as it comes, from several goroutines at
	// once (the Lambda writes its metrics from it).
	Observe func(c *rotation.Client, r rotation.Result)
	// Deliver, when not nil, tells the ERP of the token a result stored (push delivery, issue 18),
	// retrying within the call; revoking is true for a revoke. It is called for each rotation that
	// stored a token and, for a revoke, for the last token stored of each client (the one in
	// AWSCURRENT), from several goroutines at once. An error means the token is stored but the ERP
	// was not told: the command's error is then a *DeliveryError, unless a rotation failed too.
	Deliver func(ctx context.Context, c *rotation.Client, r rotation.Result, revoking bool) error
	// Resume, when not nil, tells the ERP once more of a token a delivery recorded as failed
	// (app.App.Resume): Rotate calls it for each client it stored no token for, so that a shell
	// run on a schedule (the Lambda, `rotator rotate` from cron) retries at each run what a run
	// before it could not deliver. An error means it failed again, as Deliver's does.
	Resume func(ctx context.Context, c *rotation.Client) error
	// Undelivered, when not nil, reads what a client's token secret records as not delivered
	// (app.App.Undelivered), for status, whether or not this process delivers; nil reads nothing.
	Undelivered func(ctx context.Context, c *rotation.Client) ([]Undelivered, error)
}

// deliver runs f.Deliver for r when it stored a token; it returns nil otherwise.
func (f *Fleet) deliver(ctx context.Context, c *rotation.Client, r rotation.Result, revoking bool) error {
	if f.Deliver == nil || r.Stored == nil {
		return nil
	}
	if err := f.Deliver(ctx, c, r, revoking); err != nil {
		return &ClientDeliveryError{Client: c.Name, Err: err}
	}
	return nil
}

// RotateAnswer is the answer to rotate: `rotator rotate --json` and the Lambda's answer to a
// scheduled or rotate event.
type RotateAnswer struct {
	Results []rotation.Result `json:"results"`
}

// StatusAnswer is the answer to status: `rotator status --json` and the Lambda's answer to a status
// event. It has a row for every client asked about, in configuration order.
type StatusAnswer struct {
	Clients []rotation.Status `json:"clients"`
	// Undelivered holds, by client name, each delivery of push delivery that finally failed, as
	// the token secret records it; absent when none did.
	Undelivered map[string][]Undelivered `json:"undelivered,omitempty"`
}

// Undelivered is one delivery of push delivery that finally failed, as the token secret records it
// (a tag, app.UndeliveredTagPrefix).
type Undelivered struct {
	// Kind is what was not told of the token: "webhook" or "hook".
	Kind string `json:"kind"`
	// VersionID is the token's version; "" when the record cannot be read.
	VersionID string `json:"version_id"`
	// At is when the delivery finally failed; null when the record does not say.
	At *time.Time `json:"at"`
	// Reason is why the token was stored (scheduled, forced, healed, revoke); "" when the record
	// cannot be read.
	Reason string `json:"reason,omitempty"`
	// Superseded: the version is no longer AWSCURRENT. A delivery of the newer token of the same
	// kind would have cleared the record, so the ERPs were told of neither.
	Superseded bool `json:"superseded"`
	// Record is the record as written ("version V at T reason R").
	Record string `json:"record"`
}

// String is status's line for u: "webhook: version V at T reason R", ending with SupersededNote
// when u is superseded.
func (u Undelivered) String() string {
	line := u.Kind + ": " + u.Record
	if u.Superseded {
		line += SupersededNote
	}
	return line
}

// RevokeAnswer is the answer to revoke: `rotator revoke --json` and the Lambda's answer to a revoke
// event.
type RevokeAnswer struct {
	// Results holds one result per API client of each client, in the order they were asked.
	Results []rotation.Result `json:"results"`
	// MayBeLive names every API client whose tokens, stored before the revoke, may still be live;
	// empty when the revoke is done.
	MayBeLive []Live `json:"may_be_live"`
}

// Live is an API client whose tokens may still be live after a revoke, and why.
type Live struct {
	Client    string `json:"client"`
	APIClient int    `json:"api_client"`
	Reason    string `json:"reason"`
}

// each runs fn for every client, Parallel at a time, and returns the answers in the clients' order.
func each[T any](clients []*rotation.Client, fn func(*rotation.Client) T) []T {
	out := make([]T, len(clients))
	sem := make(chan struct{}, Parallel)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = fn(c)
		})
	}
	wg.Wait()
	return out
}

func (f *Fleet) observe(c *rotation.Client, r rotation.Result) {
	if f.Observe != nil {
		f.Observe(c, r)
	}
}

// guard returns the fleet's Guard, or a new one that reads the secrets once for this call.
func (f *Fleet) guard(clients []*rotation.Client) *Guard {
	if f.Guard != nil {
		return f.Guard
	}
	all := f.All
	if all == nil {
		all = clients
	}
	return &Guard{Engine: f.Engine, All: all}
}

// Rotate runs req for every client. The error is a *RotationError when any client was not rotated
// as asked (failed, limited, blocked); the answer holds every result either way.
func (f *Fleet) Rotate(ctx context.Context, clients []*rotation.Client, req rotation.Request) (RotateAnswer, error) {
	g := f.guard(clients)
	type told struct {
		r   rotation.Result
		err error
	}
	per := each(clients, func(c *rotation.Client) told {
		// The fleet's engine, not the guard's: a Lambda's carries the invocation's logger.
		var r rotation.Result
		if err := g.Refusal(ctx, c); err != nil {
			r = Refused(ctx, f.Engine, c, err)
		} else {
			r = f.Engine.Run(ctx, c, req, nil)
			for looks := 1; looks < maxLooks && f.Engine.Again(ctx, r) && ctx.Err() == nil; looks++ {
				f.observe(c, r)
				f.Engine.Log.Warn("the token was lost; rotating again at once, within this run", "client", c.Name)
				// Not forced: the force was spent by the first, and the engine rotates a lost token
				// without it. The event goes with it, so that the token it stores is the event's,
				// and the event sent again is a duplicate that asks Clear nothing.
				r = f.Engine.Run(ctx, c, rotation.Request{Owner: req.Owner, Event: req.Event}, nil)
			}
		}
		f.observe(c, r)
		if r.Stored == nil && f.Resume != nil {
			if err := f.Resume(ctx, c); err != nil {
				return told{r, &ClientDeliveryError{Client: c.Name, Err: err, Earlier: true}}
			}
		}
		return told{r, f.deliver(ctx, c, r, false)}
	})
	results := make([]rotation.Result, len(per))
	var failed []rotation.Result
	var undelivered []error
	for i, t := range per {
		results[i] = t.r
		if !t.r.Outcome.OK() {
			failed = append(failed, t.r)
		}
		if t.err != nil {
			undelivered = append(undelivered, t.err)
		}
	}
	ans := RotateAnswer{Results: results}
	if len(failed) > 0 {
		return ans, &RotationError{Failed: failed, Total: len(results)}
	}
	return ans, notDelivered(undelivered)
}

// Revoke asks every API client of every client for a new token (rotation.Engine.Revoke), event
// being the event id (empty for a command, which is its own event). The error is a *RevokeError
// naming each API client whose tokens may still be live; the answer holds every result either way.
func (f *Fleet) Revoke(ctx context.Context, clients []*rotation.Client, event string) (RevokeAnswer, error) {
	g := f.guard(clients)
	type told struct {
		revs []rotation.Revocation
		err  error
	}
	per := each(clients, func(c *rotation.Client) told {
		if err := g.Refusal(ctx, c); err != nil {
			r := Refused(ctx, f.Engine, c, err)
			f.observe(c, r)
			var out []rotation.Revocation
			for slot := 1; slot <= c.Slots(); slot++ {
				r.APIClient = slot
				out = append(out, rotation.Revocation{APIClient: slot, Result: r})
			}
			return told{revs: out}
		}
		revs := f.Engine.Revoke(ctx, c, event)
		for _, rv := range revs {
			f.observe(c, rv.Result)
		}
		// Only the last token stored is in AWSCURRENT: the ERP is told of that one.
		for i := len(revs) - 1; i >= 0; i-- {
			if revs[i].Result.Stored != nil {
				return told{revs, f.deliver(ctx, c, revs[i].Result, true)}
			}
		}
		return told{revs: revs}
	})
	ans := RevokeAnswer{Results: []rotation.Result{}, MayBeLive: []Live{}}
	var failed []rotation.Result
	var undelivered []error
	notRevoked := 0
	for _, t := range per {
		revs := t.revs
		if t.err != nil {
			undelivered = append(undelivered, t.err)
		}
		done := true
		for _, rv := range revs {
			ans.Results = append(ans.Results, rv.Result)
			if !rv.Revoked {
				done = false
				ans.MayBeLive = append(ans.MayBeLive, Live{Client: rv.Result.Client, APIClient: rv.APIClient, Reason: rv.Result.Message})
				failed = append(failed, rv.Result)
			}
		}
		if !done {
			notRevoked++
		}
	}
	if notRevoked > 0 {
		return ans, &RevokeError{MayBeLive: ans.MayBeLive, Failed: failed, Clients: notRevoked, Total: len(clients)}
	}
	return ans, notDelivered(undelivered)
}

// Status reads every client's status. A client whose status could not be read keeps its row, in
// state unknown with the failure as its last error; the error then names each such client.
func (f *Fleet) Status(ctx context.Context, clients []*rotation.Client) (StatusAnswer, error) {
	type read struct {
		st  rotation.Status
		err error
	}
	g := f.guard(clients)
	reads := each(clients, func(c *rotation.Client) read {
		st, err := f.Engine.Status(ctx, c)
		if refusal := g.Refusal(ctx, c); refusal != nil {
			st = refusedStatus(st, refusal)
		}
		return read{st, err}
	})
	ans := StatusAnswer{Clients: make([]rotation.Status, len(reads))}
	var errs []error
	for i, rd := range reads {
		st := rd.st
		if rd.err != nil {
			errs = append(errs, fmt.Errorf("client %q: %w", clients[i].Name, rd.err))
			if st.State == rotation.HealthUnknown && st.LastError == nil {
				msg := rd.err.Error()
				st.LastError = &msg
			}
		}
		ans.Clients[i] = st
	}
	ans.Undelivered = f.undelivered(ctx, clients)
	if len(errs) > 0 {
		return ans, &StatusError{Errs: errs}
	}
	return ans, nil
}

// SupersededNote ends the line of an Undelivered whose token is no longer AWSCURRENT. A delivery of
// the newer token of the same kind would have cleared the record, so none of it is recorded either:
// the ERPs were told of neither (the newer stored where push delivery is not configured, say).
const SupersededNote = " (superseded by a newer token, of which no delivery is recorded either)"

// undelivered reads f.Undelivered for every client; a record that cannot be read is left out,
// since the status row reports the read failure already.
func (f *Fleet) undelivered(ctx context.Context, clients []*rotation.Client) map[string][]Undelivered {
	if f.Undelivered == nil {
		return nil
	}
	lines := each(clients, func(c *rotation.Client) []Undelivered {
		l, err := f.Undelivered(ctx, c)
		if err != nil {
			return nil
		}
		return l
	})
	var out map[string][]Undelivered
	for i, l := range lines {
		if len(l) > 0 {
			if out == nil {
				out = map[string][]Undelivered{}
			}
			out[clients[i].Name] = l
		}
	}
	return out
}

// causes returns the errors behind results, in order.
func causes(results []rotation.Result) []error {
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errs
}
