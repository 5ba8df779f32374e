package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Status is what `rotator status` reports for one client. The JSON keys are part of the operator
// contract. A value the rotator could not read is null, never a made-up zero.
type Status struct {
	Name string `json:"name"`
	// State is the client's health in one word (see Health).
	State     Health     `json:"state"`
	ValidTill *time.Time `json:"valid_till"`
	IssuedAt  *time.Time `json:"issued_at"`
	RenewAt   *time.Time `json:"renew_at"`
	// APIClient is the API client that issued the token in AWSCURRENT, when known.
	APIClient *int `json:"api_client"`
	// RequestsToday counts today's requests across the API clients; DailyLimit applies to each.
	RequestsToday *int `json:"requests_today"`
	DailyLimit    int  `json:"daily_limit"`
	// BlockedUntil is when the client may call Clear again, nil when it may now or when only a
	// configuration change lifts the block; BlockedReason says why it may not.
	BlockedUntil  *time.Time `json:"blocked_until"`
	BlockedReason *string    `json:"blocked_reason"`
	LastError     *string    `json:"last_error"`
	// Degraded is true when two API clients are configured and only one may be asked; nil when
	// the token secret could not be read.
	Degraded   *bool      `json:"degraded"`
	APIClients []SlotView `json:"api_clients"`
	// ConsumerReread is the consumers' rule: with two API clients, a consumer that re-reads the
	// secret at least this often never holds a dead token. Nil with one API client or while
	// degraded (consumers must re-read on a 401), or when it cannot be known.
	ConsumerReread *string `json:"consumer_reread_interval"`
	// RenewalsPerDay is how many requests a day tokens like the one in AWSCURRENT need
	// (timing.RenewalsPerDay; with two API clients each asks half). Nil without a token, or for
	// tokens that are not renewed. See OverBudget.
	RenewalsPerDay *int `json:"renewals_per_day"`
	// InFlight describes a rotation in progress; TokenLost a token issued and not stored.
	InFlight  *ClaimView `json:"in_flight"`
	TokenLost *LostView  `json:"token_lost"`
	// RevokedOutside is the last token a gateway found revoked outside the rotator.
	RevokedOutside *RevokedView `json:"revoked_outside"`

	// HasToken reports whether AWSCURRENT holds a token; it feeds metrics.
	HasToken bool `json:"-"`
}

// ClaimView is a rotation in progress.
type ClaimView struct {
	Owner      string    `json:"owner"`
	Since      time.Time `json:"since"`
	LeaseUntil time.Time `json:"lease_until"`
	APIClient  int       `json:"api_client,omitempty"`
}

// LostView is a token issued and not stored.
type LostView struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Certain is true when Clear is known to have issued the token; false when a claim's owner
	// vanished and nobody knows whether it called Clear.
	Certain bool `json:"certain"`
}

// IsDegraded reports whether the client is known to be degraded.
func (s Status) IsDegraded() bool { return s.Degraded != nil && *s.Degraded }

// OverBudget reports whether the tokens need more requests a day from an API client than the daily
// limit allows: the day's budget runs out, and the token then expires until midnight UTC.
func (s Status) OverBudget() bool {
	if s.RenewalsPerDay == nil || s.DailyLimit <= 0 {
		return false
	}
	each := max(len(s.APIClients), 1)
	if s.IsDegraded() {
		each = 1 // one API client asks for every renewal
	}
	return (*s.RenewalsPerDay+each-1)/each > s.DailyLimit
}

// Lost reports whether the client's token is known lost: its state says so, or a loss is recorded
// against the token in AWSCURRENT. Metrics reads it for the daemon's metric and the Lambda's.
func (s Status) Lost() bool { return s.State == HealthTokenLost || s.TokenLost != nil }

// statusOf describes a decision for status.
func statusOf(c *Client, s Snapshot, d Decision) Status {
	st := Status{Name: c.Name, State: d.Health, DailyLimit: c.DailyLimit, APIClients: d.Slots,
		RequestsToday: d.RequestsToday}
	if !s.CurrentKnown {
		return unknownOf(c)
	}
	degraded := d.Degraded
	st.Degraded = &degraded
	if st.APIClients == nil {
		st.APIClients = []SlotView{}
	}
	if s.HasToken {
		st.HasToken = true
		t := s.Token
		st.ValidTill = t.ValidTill
		at := t.IssuedAt
		st.IssuedAt = &at
		if t.APIClient != 0 {
			n := t.APIClient
			st.APIClient = &n
		}
		if n := timing.RenewalsPerDay(t.IssuedAt, t.ValidTill, c.RenewBefore, c.MaxAge); n > 0 {
			st.RenewalsPerDay = &n
		}
	}
	if !d.RenewAt.IsZero() {
		ra := d.RenewAt
		st.RenewAt = &ra
	}
	if !s.StateKnown {
		return st
	}
	if cl := d.Settled.Claim; cl != nil && d.Health == HealthInFlight {
		st.InFlight = &ClaimView{Owner: cl.Owner, Since: cl.At, LeaseUntil: cl.LeaseUntil, APIClient: cl.Slot}
	}
	if l := d.Settled.Lost; l != nil && lostCurrent(s, d.Settled) {
		st.TokenLost = &LostView{At: l.At, Reason: l.Reason, Certain: l.Certain}
	}
	// A lost or suspect token is due at once (dueGate), whatever its own renewal time; a backoff
	// still spaces the request.
	if lostCurrent(s, d.Settled) || suspect(s, d.Settled) {
		if now := s.Now.UTC(); st.RenewAt == nil || st.RenewAt.After(now) {
			st.RenewAt = &now
		}
	}
	st.BlockedUntil, st.BlockedReason = blockOf(s, d)
	st.LastError = lastError(d)
	st.RevokedOutside = lastRevokedOutside(d.Settled)
	st.ConsumerReread = consumerReread(c, s, d)
	return st
}

// blockOf says why the client may not rotate automatically, if it may not: the refusal of the API
// client it would ask, or of the other when that one is usable too.
func blockOf(s Snapshot, d Decision) (until *time.Time, reason *string) {
	_, err := choose(s, d.Slots, Request{})
	if err == nil {
		return nil, nil
	}
	// Consumers that may still hold a token keep its API client from being asked only until the
	// re-read interval has passed: a block only when the renewal falls before that, and it ends then.
	var held *RereadError
	if errors.As(err, &held) {
		if d.RenewAt.IsZero() || !d.RenewAt.Before(held.Until) {
			return nil, nil
		}
		u, r := held.Until, held.Error()
		return &u, &r
	}
	for _, v := range d.Slots {
		if v.refusal == err {
			until, reason = v.BlockedUntil, v.BlockedReason
		}
	}
	if reason == nil {
		r := err.Error()
		reason = &r
	}
	return until, reason
}

// lastError is the most recent error of any API client, else the reason of a recorded loss.
func lastError(d Decision) *string {
	var last *string
	for _, v := range d.Slots {
		if v.LastError != nil {
			last = v.LastError
		}
	}
	if l := d.Settled.Lost; l != nil && last == nil {
		reason := l.Reason
		last = &reason
	}
	return last
}

// consumerReread is the consumers' rule with two API clients: how often re-reading the secret is
// enough never to hold a dead token. Nil with one API client, or when it cannot be known.
func consumerReread(c *Client, s Snapshot, d Decision) *string {
	if len(d.Slots) != 2 || !s.HasToken || d.Degraded {
		return nil // degraded, each rotation revokes the token in use, as with one API client
	}
	every := rereadInterval(s.Token, Policy{MaxAge: c.MaxAge}, d.RenewAt)
	if every <= 0 {
		return nil
	}
	r := every.Round(time.Second).String()
	return &r
}

// Status reads c's token and state without writing anything or calling Clear, and reports the
// decision a rotation would make (listing the token secret's versions, as a rotation does, when
// the token is due). When the token secret cannot be read it returns a status whose
// state is unknown, with the error.
func (e *Engine) Status(ctx context.Context, c *Client) (Status, error) {
	rd, err := e.read(ctx, c, nil, false)
	if err != nil {
		st := e.unknownStatus(c, rd)
		e.healedAt(ctx, c, st.RevokedOutside)
		return st, err
	}
	d := Decide(rd.snap, e.policy(c), Request{})
	if d.Action == Ask {
		// As a rotation would, so that status says limited while the version quota holds.
		d = e.withVersions(ctx, c, &rd, Request{}, d)
	}
	st := statusOf(c, rd.snap, d)
	unreadable(&st, rd)
	e.healedAt(ctx, c, st.RevokedOutside)
	return st, errors.Join(rd.errs...)
}

// unknownStatus is c's status when read failed: unknown. What read got before it failed
// stands: once AWSCURRENT was read, the token's times, and the day's counts when the state was
// read too (a state from a newer release, or unreadable client secrets, leave the token's times
// as they are), with each unreadable client secret's error in its API client's row; before that,
// nothing is known.
func (e *Engine) unknownStatus(c *Client, rd read) Status {
	if !rd.snap.CurrentKnown {
		return unknownOf(c)
	}
	st := statusOf(c, rd.snap, Decide(rd.snap, e.policy(c), Request{}))
	st.State = HealthUnknown
	unreadable(&st, rd)
	return st
}

// unknownOf is the status of c when nothing could be read: its configuration, one row of unknowns
// per API client, and null for every value.
func unknownOf(c *Client) Status {
	st := Status{Name: c.Name, State: HealthUnknown, DailyLimit: c.DailyLimit, APIClients: []SlotView{}}
	if c.Slots() == 2 {
		st.APIClients = []SlotView{{Slot: 1}, {Slot: 2}}
	}
	return st
}

// unreadable puts the error of each client secret that could not be read in its API client's row
// (and, when no other is known, the client's last error): that is why the client is degraded, and
// a status answer without stderr (--json, the Lambda's) must say it. read returns one error per
// unreadable secret, in slot order, and leaves that slot's fingerprint empty.
func unreadable(st *Status, rd read) {
	errs := rd.errs
	for i := range st.APIClients {
		if len(errs) == 0 || i >= len(rd.snap.Secrets) {
			return
		}
		if rd.snap.Secrets[i] != "" {
			continue
		}
		msg := errs[0].Error()
		errs = errs[1:]
		st.APIClients[i].LastError = &msg
		if st.LastError == nil {
			st.LastError = &msg
		}
	}
}

// Check verifies that c's secrets can be read, without writing anything or calling Clear. It
// returns a note on what it found. A client without a client secret (loaded for a read-only
// gateway) has its token secret read alone.
func (e *Engine) Check(ctx context.Context, c *Client) (string, error) {
	var fps []string
	for slot := 1; slot <= c.Slots() && c.HasClientSecret(); slot++ {
		s, err := e.clientSecret(ctx, c, slot)
		if err != nil {
			return "", err
		}
		fps = append(fps, fingerprint(c.BaseURL, s))
	}
	if len(fps) == 2 && fps[0] == fps[1] {
		return "", errors.New("both API clients hold the same client secret; configure two different API clients, or each rotation revokes the other's token")
	}
	cur, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "token secret " + c.TokenSecretID + " does not exist yet; the first rotation creates it", nil
	case err != nil:
		return "", fmt.Errorf("reading the token secret: %w", err)
	}
	if _, ok := parseToken(cur.Value); !ok {
		return "token secret " + c.TokenSecretID + " holds no token yet; the first rotation stores one", nil
	}
	switch len(fps) {
	case 0:
		return "token secret is readable; no client secret: a token revoked outside the rotator is reported, not replaced", nil
	case 2:
		return "both client secrets and the token secret are readable", nil
	}
	return "client secret and token secret are readable", nil
}

// SharedSecretError is two API clients, of one client or of two, whose client secrets have different
// names but the same value: each rotation of one revokes the other's token. It never holds the value.
type SharedSecretError struct {
	Client, Other        string
	APIClient, OtherSlot int
}

func (e *SharedSecretError) Error() string {
	return fmt.Sprintf("client %q API client %d and client %q API client %d hold the same client secret: each rotation of one revokes the other's token; give each its own API client in Clear",
		e.Other, e.OtherSlot, e.Client, e.APIClient)
}

// Names reports whether the error concerns the client named name.
func (e *SharedSecretError) Names(name string) bool { return e.Client == name || e.Other == name }

// SharedSecrets reads every configured client secret of clients and reports, as one error per
// pair, the API clients that hold the same value under different names: each would revoke the
// other's tokens. Secrets that cannot be read are left to Check to report. The errors never hold a
// value. `check` reports them; rotate, revoke and the daemon refuse the clients they name.
func (e *Engine) SharedSecrets(ctx context.Context, clients []*Client) []*SharedSecretError {
	type owner struct {
		client string
		slot   int
	}
	seen := map[string]owner{}
	var errs []*SharedSecretError
	for _, c := range clients {
		for slot := 1; slot <= c.Slots() && c.HasClientSecret(); slot++ {
			s, err := e.clientSecret(ctx, c, slot)
			if err != nil {
				continue
			}
			key := fingerprint("", s)
			if o, ok := seen[key]; ok {
				errs = append(errs, &SharedSecretError{Other: o.client, OtherSlot: o.slot, Client: c.Name, APIClient: slot})
				continue
			}
			seen[key] = owner{c.Name, slot}
		}
	}
	return errs
}

// Revocation is what a revoke came to with one API client.
type Revocation struct {
	// APIClient is the configured API client (1 or 2).
	APIClient int
	// Result is the attempt's result; its APIClient is always set.
	Result Result
	// Revoked is true when every token this API client issued before the revoke is known to be
	// dead at Clear (see revoked).
	Revoked bool
}

// Revoke asks every configured API client of c for a new token, so that every token the rotator
// ever stored for c is revoked at Clear, and stores each answer as it comes: the last one stays
// AWSCURRENT. It goes through the same claim, count and limits as any rotation, one request per API
// client. An API client that cannot be asked (blocked, limited, failing) does not stop the others:
// each token revoked is one fewer that may have leaked. The API client that issued the token in
// AWSCURRENT is asked last, so that AWSCURRENT holds a live token whenever that request succeeds.
//
// With an event id (a Lambda event), the request to each API client is its own event, derived from
// the event id and the API client's number, never from the order of asking, which the first
// delivery changes; and its token is stored as a version whose id is derived from the same, so that
// a retried delivery can tell a request whose token was stored from one that failed.
func (e *Engine) Revoke(ctx context.Context, c *Client, event string) []Revocation {
	order := []int{1}
	if c.Slots() == 2 {
		order = []int{1, 2}
		if st, err := e.Status(ctx, c); err == nil && st.APIClient != nil && *st.APIClient == 1 {
			order = []int{2, 1}
		}
	}
	out := make([]Revocation, 0, len(order))
	for _, slot := range order {
		out = append(out, e.revokeSlot(ctx, c, event, slot))
	}
	return out
}

// revokeSlot asks API client slot of c for a new token, unless this revoke already stored one.
func (e *Engine) revokeSlot(ctx context.Context, c *Client, event string, slot int) Revocation {
	req := Request{Force: true, Slot: slot}
	version := ""
	if event != "" {
		req.Event = fmt.Sprintf("%s/revoke/%d", event, slot)
		version = requestToken("revoke", req.Event)
		req.TokenVersion = version
		if e.versionStored(ctx, c, version) {
			if e.revokeStands(ctx, c, version, slot) {
				// An earlier delivery stored this API client's token: asking again would spend a
				// request and revoke a token that is already the fresh one.
				return Revocation{APIClient: slot, Result: e.alreadyRevoked(ctx, c, req.Event, slot), Revoked: true}
			}
			// The id's event is remembered (it would be a duplicate), and a new token would need
			// a version of its own: the operator gives a new id.
			st, _ := e.Status(ctx, c)
			r := Result{Client: c.Name, APIClient: slot, Status: st}.fail(Failed, &ReusedRevokeError{Event: event, Slot: slot})
			e.report(c, r)
			return Revocation{APIClient: slot, Result: r}
		}
	}
	r := e.Run(ctx, c, req, nil)
	if r.APIClient == 0 {
		// Refused before asking: the result is still about this API client.
		r.APIClient = slot
	}
	return Revocation{APIClient: slot, Result: r, Revoked: e.revoked(ctx, c, r, version)}
}

// revoked is the one rule for whether a revoke's request to an API client left every token that
// API client issued before it dead: it did when the request stored a new token (Clear revokes the
// previous token of a client secret when it issues the next), now or in an earlier delivery of the
// same event. A duplicate counts only when that earlier request's token was stored; an event id
// recorded by a request that failed, or that is still in flight, proves nothing.
func (e *Engine) revoked(ctx context.Context, c *Client, r Result, version string) bool {
	switch r.Outcome {
	case Rotated:
		return true
	case Duplicate:
		return version != "" && e.versionStored(ctx, c, version)
	}
	return false
}

// revokeStands reports whether the token a revoke's earlier request to API client slot stored as
// version is still that API client's newest: it is AWSCURRENT, or AWSPREVIOUS under a token of the
// other API client (two used in turn). An older version means the API client issued a newer token
// since, which that revoke did not revoke. A read that fails is a no, and so is a newest token of
// this API client that fell below AWSPREVIOUS while the other was asked twice: the caller then
// refuses the id rather than report a token dead that may live.
func (e *Engine) revokeStands(ctx context.Context, c *Client, version string, slot int) bool {
	stages, err := e.Store.Stages(ctx, c.TokenSecretID)
	if err != nil {
		return false
	}
	switch version {
	case stages[CurrentStage]:
		return true
	case stages[previousStage]:
		cur, _, err := e.Version(ctx, c, stages[CurrentStage])
		return err == nil && cur != nil && issuer(Snapshot{HasToken: true, Token: *cur}) != slot
	}
	return false
}

// versionStored reports whether the token secret holds a token document under version id version.
// An answer that does not come is a no: the caller then reports that a token may be live rather
// than that it is dead.
func (e *Engine) versionStored(ctx context.Context, c *Client, version string) bool {
	tok, _, err := e.Version(ctx, c, version)
	return err == nil && tok != nil
}

// alreadyRevoked is the result of a revoke's request that an earlier delivery of the same event
// made and stored.
func (e *Engine) alreadyRevoked(ctx context.Context, c *Client, event string, slot int) Result {
	st, _ := e.Status(ctx, c)
	dup := &DuplicateError{Event: event}
	r := Result{Client: c.Name, APIClient: slot, Status: st}
	r = r.fail(Duplicate, dup)
	e.report(c, r)
	return r
}
