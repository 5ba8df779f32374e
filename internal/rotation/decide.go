package rotation

import (
	"fmt"
	"slices"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Snapshot is what a rotator read of one client before deciding: the token in AWSCURRENT, the
// state under ROTATOR_STATE, and the fingerprints of the configured client secrets. Each part says
// whether it is known, so that a decision made on a partial read (status with Secrets Manager down)
// reports unknown rather than guessing.
type Snapshot struct {
	// Now is the time of the decision.
	Now time.Time

	// CurrentKnown is true when AWSCURRENT was read (or found not to exist).
	CurrentKnown bool
	// CurrentID is the AWSCURRENT version id; empty when the secret has no current version.
	CurrentID string
	// Token is the document in AWSCURRENT, valid when HasToken.
	Token    document.Token
	HasToken bool

	// StateKnown is true when ROTATOR_STATE was read (or found not to exist).
	StateKnown bool
	State      document.State
	// StateID is the ROTATOR_STATE version id; empty when there is none yet.
	StateID string
	// StateDamaged is true when ROTATOR_STATE exists but could not be read: State is empty but for
	// the day's count the engine assumes (assumeSpent).
	StateDamaged bool

	// Secrets are the fingerprints of the configured API clients, in slot order (slot 1 first); an
	// empty string is an API client whose secret could not be read.
	Secrets []string

	// Deadline is when the caller must be done (a Lambda's deadline); zero means none.
	Deadline time.Time

	// VersionsKnown is true when the token secret's versions were listed (the engine lists them
	// only before asking Clear), for the version quota's rule (quotaGate).
	VersionsKnown bool
	Versions      []store.VersionInfo
}

// Policy is the configured rotation policy of one client.
type Policy struct {
	DailyLimit  int
	RenewBefore time.Duration
	MaxAge      time.Duration
	// ClearTimeout bounds one request to Clear; it sizes the claim's lease.
	ClearTimeout time.Duration
}

// Request is what the caller asks for.
type Request struct {
	// Force asks Clear whether or not the token is due, lifting a 401 block and a backoff; it still
	// respects the daily limit, Clear's 429 and a rotation in flight.
	Force bool
	// Event identifies the event or command behind a forced rotation; a second request with the
	// same id is a duplicate.
	Event string
	// Slot asks a particular API client (1 or 2); zero lets the decision choose.
	Slot int
	// Owner names the rotator in its claim.
	Owner string
	// TokenVersion, when set, is the version id (ClientRequestToken) the new token is stored as, and
	// Stages the staging labels it gets besides AWSCURRENT: Secrets Manager's own rotation names the
	// version it expects (createSecret) and wants it labelled AWSPENDING.
	TokenVersion string
	Stages       []string
	// Replaces, when set, is the AWSCURRENT version this request exists to replace (a token revoked
	// outside the rotator): once AWSCURRENT is another version, the request is moot.
	Replaces string
}

// Action is what a decision tells the caller to do.
type Action int

const (
	// Wait means do not call Clear now.
	Wait Action = iota
	// Ask means claim the rotation with Decision.Claim, then ask Clear with API client Slot.
	Ask
)

// Health is a client's condition in one word, for status, metrics and alerts.
type Health string

const (
	HealthOK         Health = "ok"
	HealthExpiring   Health = "expiring"
	HealthExpired    Health = "expired"
	HealthNoToken    Health = "no-token"
	HealthBlocked    Health = "blocked"
	HealthLimited    Health = "limited"
	HealthBackingOff Health = "backing-off"
	HealthInFlight   Health = "in-flight"
	HealthTokenLost  Health = "token-lost"
	HealthDegraded   Health = "degraded"
	HealthUnknown    Health = "unknown"
)

// Healths lists every health, for metrics.
var Healths = []Health{HealthOK, HealthExpiring, HealthExpired, HealthNoToken, HealthBlocked, HealthLimited,
	HealthBackingOff, HealthInFlight, HealthTokenLost, HealthDegraded, HealthUnknown}

// OK reports whether the client needs nobody's attention: its token is live and being renewed.
func (h Health) OK() bool { return h == HealthOK || h == HealthExpiring || h == HealthInFlight }

// SlotView is what the decision knows of one configured API client.
type SlotView struct {
	Slot int `json:"slot"`
	// RequestsToday is nil when the state could not be read.
	RequestsToday *int `json:"requests_today"`
	// BlockedUntil is when the API client may be asked again, nil when it may be asked now or
	// when only a configuration change (or a forced rotation, for a 401) lifts the block.
	BlockedUntil  *time.Time `json:"blocked_until"`
	BlockedReason *string    `json:"blocked_reason"`
	LastError     *string    `json:"last_error"`
	// Known is false when the API client's secret could not be read.
	Known bool `json:"-"`
	// refusal is why the API client may not be asked now without force, nil when it may.
	refusal error
	// hard is why it may not be asked even with force (the daily limit, a 429).
	hard error
	// wait is set on the API client the decision prefers when waiting for the end of its backoff is
	// better than asking the other one (markWaits); held when its token may still be held by
	// consumers (a *RereadError).
	wait *BackoffError
	held *RereadError
	// avoid puts it after the other API client, when the token in use is dead and this one's
	// token may still be held by consumers.
	avoid bool
	// secret is the API client's fingerprint, the key of its bookkeeping in the state.
	secret string
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Slot is the API client to ask (Action Ask), 1 or 2.
	Slot int
	// Secret is that API client's fingerprint.
	Secret string
	// Claim is the state to write to claim the rotation (Action Ask).
	Claim document.State
	// TokenVersion and Stages carry the request's, for the token write.
	TokenVersion string
	Stages       []string
	// Settled is the state as read, with finished and abandoned claims and recovered losses
	// accounted for; the base of any state write.
	Settled document.State

	// Outcome and Err say why the decision is Wait: NotDue (Err nil), Duplicate, Busy, Blocked,
	// Limited, or Failed.
	Outcome Outcome
	Err     error

	// RenewAt is when the token in AWSCURRENT is due (zero: never); NextCheck is when the client
	// next needs a look (zero: no particular time).
	RenewAt   time.Time
	NextCheck time.Time

	Health   Health
	Degraded bool
	Slots    []SlotView
	// RequestsToday is the day's count across the configured API clients, nil when unknown.
	RequestsToday *int
}

const (
	// blockedRecheck spaces the checks of an API client Clear refused with a 401: the fix (a new
	// client secret) may land in Secrets Manager without any change a daemon could notice.
	blockedRecheck = 15 * time.Minute
	// unknownValidity is how soon a token whose valid_till Clear sent in a form the rotator could
	// not understand is renewed: it may expire at any time, and the renewal shows whether the next
	// answer is readable.
	unknownValidity = time.Hour
	// minWriteTime is what a token write needs beyond Clear's timeout: a few attempts.
	minWriteTime = 5 * time.Second
)

// longestLease is the longest lease any rotator writes: its claim's work with the largest Clear
// timeout the configuration accepts. A claim is never live longer after its start.
var longestLease = timing.Lease(timing.MaxClearTimeout)

// minLifetime is the shortest lifetime an issued token may have before the answer is treated as a
// clock or Clear problem (and answered with backoff rather than with the next request).
var minLifetime = timing.MinInterval

// Decide is the rotator's one decision: given what was read, the policy and the request, whether to
// ask Clear for a token now, with which API client, and if not, why and when to look again. It is a
// pure function of its arguments; the CLI, the daemon, the Lambda and status all act on its result.
//
// The rules that may stop a rotation before an API client is chosen are the gates, listed in the
// order they are checked; then choose picks the API client, and the deadline gate checks that the
// work fits in the caller's time.
func Decide(s Snapshot, p Policy, req Request) Decision {
	now := s.Now.UTC()
	d := Decision{Health: HealthUnknown}
	if !s.CurrentKnown {
		d.Outcome, d.Err = Failed, ErrUnknown
		return d
	}
	st, inFlight := settle(s.State, s, now)
	d.Settled = st
	d.RenewAt = renewAt(s, p, now)
	d.Slots, d.RequestsToday = slotViews(s, st, p, backoffEnds(s, st, p, d.RenewAt, now), now)
	markWaits(s, st, p, req, d.RenewAt, now, d.Slots)
	d.Degraded = degraded(d.Slots)
	d.Health = health(s, st, inFlight, d, now)

	in := gateInput{s: s, p: p, req: req, st: st, inFlight: inFlight, renewAt: d.RenewAt, now: now}
	for _, g := range gates {
		if st := g(in); st != nil {
			d.Outcome, d.Err, d.NextCheck = st.outcome, st.err, st.next
			if st.outcome == Limited && d.Health != HealthTokenLost && d.Health != HealthBlocked {
				d.Health = HealthLimited
			}
			return d
		}
	}

	// A retried event whose attempt failed is spaced like an automatic rotation: only a new
	// request lifts a backoff or a 401 block.
	choice := req
	choice.Force = req.Force && !slices.Contains(st.Failed, req.Event)
	slot, err := choose(s, d.Slots, choice)
	if err != nil {
		d.Outcome, d.Err = outcomeOf(err), err
		d.NextCheck = retryTime(err, now)
		return d
	}
	if err := deadlineGate(s, p, now); err != nil {
		d.Outcome, d.Err = Failed, err
		return d
	}
	d.Action, d.Slot, d.Secret = Ask, slot, s.Secrets[slot-1]
	d.Claim = claimState(s, p, req, st, slot, now)
	d.TokenVersion, d.Stages = req.TokenVersion, req.Stages
	return d
}

// gateInput is what the gates look at.
type gateInput struct {
	s        Snapshot
	p        Policy
	req      Request
	st       document.State
	inFlight *document.Claim
	renewAt  time.Time
	now      time.Time
}

// A gate is one rule that may stop a rotation before an API client is chosen; it returns nil to let
// the rotation go on.
type gate func(in gateInput) *stop

// stop is a gate's verdict: the outcome, the reason (nil for not due) and when to look again.
type stop struct {
	outcome Outcome
	err     error
	next    time.Time
}

// gates are checked in this order; the first that stops the rotation decides.
var gates = []gate{duplicateGate, busyGate, movedGate, stateGate, dueGate, floorGate, quotaGate}

// duplicateGate: an event already acted on (its rotation stored a token, or its claim is still
// live) asks nothing. A failed attempt does not count: its retry asks again.
func duplicateGate(in gateInput) *stop {
	ev := in.req.Event
	if ev == "" || !(slices.Contains(in.st.Events, ev) || (in.inFlight != nil && in.inFlight.Event == ev)) {
		return nil
	}
	return &stop{Duplicate, &DuplicateError{Event: ev}, in.renewAt}
}

// busyGate: a live claim means another rotation is in flight; look again when its lease ends.
func busyGate(in gateInput) *stop {
	cl := in.inFlight
	if cl == nil {
		return nil
	}
	return &stop{Busy, &BusyError{Owner: cl.Owner, Since: cl.At, Until: cl.LeaseUntil}, cl.LeaseUntil}
}

// movedGate: a request to replace a version that is no longer AWSCURRENT asks nothing; another
// rotation already replaced it, and forcing again would revoke a token that is fine.
func movedGate(in gateInput) *stop {
	if in.req.Replaces == "" || in.req.Replaces == in.s.CurrentID {
		return nil
	}
	return &stop{Busy, &BusyError{Reason: "another rotator stored a new token meanwhile"}, in.renewAt}
}

// stateGate: nothing is asked of Clear on a guess.
func stateGate(in gateInput) *stop {
	if in.s.StateKnown {
		return nil
	}
	return &stop{Failed, ErrUnknown, time.Time{}}
}

// dueGate: without force, only a due token or a lost one is rotated.
func dueGate(in gateInput) *stop {
	due := !in.renewAt.IsZero() && !in.now.Before(in.renewAt)
	if in.req.Force || due || lostCurrent(in.s, in.st) || suspect(in.s, in.st) {
		return nil
	}
	return &stop{NotDue, nil, in.renewAt}
}

// floorGate: however the token looks, two automatic rotations are at least MinInterval apart. The
// floor counts from the issue of the token in AWSCURRENT (a failed request is spaced by its API
// client's backoff instead); an issue time in the future (another rotator's clock) cannot push it
// further than MinInterval from now. A lost token is replaced at once.
func floorGate(in gateInput) *stop {
	if in.req.Force || !in.s.HasToken || lostCurrent(in.s, in.st) {
		return nil
	}
	floor := in.s.Token.IssuedAt.Add(timing.MinInterval)
	if limit := in.now.Add(timing.MinInterval); floor.After(limit) {
		floor = limit
	}
	if !in.now.Before(floor) {
		return nil
	}
	return &stop{NotDue, nil, floor}
}

// deadlineGate refuses a rotation that cannot ask Clear and store its answer before the caller's
// deadline.
func deadlineGate(s Snapshot, p Policy, now time.Time) error {
	if s.Deadline.IsZero() {
		return nil
	}
	need := p.clearTimeout() + minWriteTime
	if left := s.Deadline.Sub(now); left < need {
		return &LeaseError{Left: max(left, 0), Need: need, Deadline: true}
	}
	return nil
}

// claimState is the state written to claim a rotation with API client slot: the request counted,
// the claim with its lease, and the API client whose token the rotation replaces.
func claimState(s Snapshot, p Policy, req Request, st document.State, slot int, now time.Time) document.State {
	fp := s.Secrets[slot-1]
	a := st.APIClient(fp)
	a.Day, a.Requests = timing.Day(now), a.RequestsOn(timing.Day(now))+1
	if a.CountLost != a.Day {
		a.CountLost = ""
	}
	next := st.WithAPIClient(a, s.Secrets...)
	at := now
	next.LastRequest = &at
	next.Claim = &document.Claim{Owner: req.Owner, At: now, LeaseUntil: now.Add(timing.Lease(p.clearTimeout())),
		Base: s.CurrentID, Force: req.Force, Slot: slot, Secret: fp, Event: req.Event}
	if n := issuer(s); len(s.Secrets) > 1 && n >= 1 && n <= len(s.Secrets) {
		next.Claim.Replaces = s.Secrets[n-1]
	}
	return next
}

// slotViews describes every configured API client, and the day's count across them (nil when the
// state is unknown).
func slotViews(s Snapshot, st document.State, p Policy, ends backoffEnd, now time.Time) ([]SlotView, *int) {
	today := timing.Day(now)
	views := make([]SlotView, len(s.Secrets))
	total, known := 0, s.StateKnown
	for i, fp := range s.Secrets {
		v := slotView(i+1, fp, st, s.StateKnown, p, ends, now, today)
		views[i] = v
		if v.RequestsToday != nil {
			total += *v.RequestsToday
		} else {
			known = false
		}
	}
	if !known {
		return views, nil
	}
	return views, &total
}

// preferred is the API client a rotation asks when it may: the one that did not issue the token in
// AWSCURRENT, so that the token ERP systems hold stays valid.
func preferred(s Snapshot, slots int) int {
	if slots > 1 && issuer(s) == 1 {
		return 2
	}
	return 1
}

// issuer is the API client that issued the token in AWSCURRENT, 0 without one. A token whose
// document names none was written while one API client was configured, the first: when a second
// is added, the next rotation asks the second, and the token ERP systems hold stays valid. A token
// stored by another writer names none either: it is taken for the first's as well, so one that was
// in fact the second's is revoked by the next rotation (the README asks such writers to name it).
func issuer(s Snapshot) int {
	switch {
	case !s.HasToken:
		return 0
	case s.Token.APIClient == 0:
		return 1
	}
	return s.Token.APIClient
}

// markWaits marks the preferred of two API clients when asking it later is better than asking the
// other one now, which would revoke the token in use while it is still good:
//   - it is backing off after a transient failure, and the token in use outlives the backoff and a
//     rotation after it (degraded mode is for an API client that cannot be asked, not for one
//     that failed once);
//   - the token it issued was in AWSCURRENT until recently, and consumers that re-read on the
//     documented interval may still hold it: asking it would revoke that token.
//
// Neither applies when the token in use is dead (lost, expired, absent, or revoked outside the
// rotator, which a request that replaces it says): asking its API client then revokes nothing live.
func markWaits(s Snapshot, st document.State, p Policy, req Request, renewAt, now time.Time, slots []SlotView) {
	if len(slots) < 2 || !s.HasToken {
		return
	}
	v := &slots[preferred(s, len(slots))-1]
	if !v.Known || v.hard != nil {
		return
	}
	revoked := req.Replaces != "" && req.Replaces == s.CurrentID
	alive := !revoked && !lostCurrent(s, st) && outlives(s.Token, now)
	if bo, ok := v.refusal.(*BackoffError); ok && alive && outlives(s.Token, bo.Until.Add(timing.Lease(p.clearTimeout()))) {
		v.wait = bo
	}
	a := st.APIClient(v.secret)
	every := rereadInterval(s.Token, p, renewAt)
	if a.Retired == nil || every <= 0 {
		return
	}
	if until := a.Retired.Add(every); now.Before(until) {
		if alive {
			v.held = &RereadError{Slot: v.Slot, Since: *a.Retired, Until: until, Interval: every}
		} else {
			// The token in use is dead: its own API client revokes nothing live, so it goes first.
			v.avoid = true
		}
	}
}

// outlives reports whether token t is still valid at time at: it never expires, or expires later.
// A token whose expiry could not be read is not known to outlive anything.
func outlives(t document.Token, at time.Time) bool {
	if t.ValidTill == nil {
		return !t.ValidTillUnknown
	}
	return t.ValidTill.After(at)
}

// rereadInterval is the consumers' rule for two API clients: a consumer that re-reads the secret at
// least this often never holds a dead token. It is the time between the token's renewal and its
// expiry, or the max age for tokens that never expire; zero when it cannot be known.
func rereadInterval(t document.Token, p Policy, renewAt time.Time) time.Duration {
	switch {
	case t.ValidTill != nil && !renewAt.IsZero():
		return max(t.ValidTill.Sub(renewAt), 0)
	case t.ValidTill == nil && !t.ValidTillUnknown && p.MaxAge > 0:
		return p.MaxAge
	}
	return 0
}

// degraded reports whether two API clients are configured and one of them cannot be asked, so that
// a rotation revokes the token in use. One waited for (markWaits) is not: the decision waits for it
// rather than falling back.
func degraded(slots []SlotView) bool {
	if len(slots) < 2 {
		return false
	}
	for _, v := range slots {
		if (!v.Known || v.refusal != nil) && v.wait == nil {
			return true
		}
	}
	return false
}

func (p Policy) clearTimeout() time.Duration {
	if p.ClearTimeout > 0 {
		return p.ClearTimeout
	}
	return 30 * time.Second
}

// renewAt returns when the token in AWSCURRENT is due; now when there is none, zero when never.
func renewAt(s Snapshot, p Policy, now time.Time) time.Time {
	if !s.HasToken {
		return now
	}
	t := s.Token
	if t.ValidTill == nil && t.ValidTillUnknown {
		wait := unknownValidity
		if p.MaxAge > 0 && p.MaxAge < wait {
			wait = p.MaxAge
		}
		return t.IssuedAt.Add(wait)
	}
	at, renew := timing.RenewAt(t.IssuedAt, t.ValidTill, p.RenewBefore, p.MaxAge)
	if !renew {
		return time.Time{}
	}
	return at
}

// settle interprets the recorded claim against the current token version: a complete claim means
// the last rotation succeeded (its event was acted on, and the token it replaced is retired); a
// live one is returned; an expired one is an abandoned claim, which may have cost the ERP its token
// (its event failed). A recorded loss is over once AWSCURRENT has moved on, and a block or backoff
// no rotator could have written is over at once (sane).
func settle(st document.State, s Snapshot, now time.Time) (document.State, *document.Claim) {
	st.APIClients = slices.Clone(st.APIClients)
	for i := range st.APIClients {
		st.APIClients[i] = sane(st.APIClients[i], now)
	}
	if st.Lost != nil && st.Lost.Base != s.CurrentID {
		st.Lost = nil
	}
	if st.Suspect != s.CurrentID {
		st.Suspect = "" // AWSCURRENT moved on
	}
	cl := st.Claim
	if cl == nil {
		return st, nil
	}
	st.Claim = nil
	if end := cl.At.Add(longestLease); cl.LeaseUntil.After(end) {
		// No rotator writes a longer lease (a hand-edited or damaged state): it would hold every
		// rotator off, and the ERP without a token, for as long as it says.
		capped := *cl
		capped.LeaseUntil = end
		cl = &capped
	}
	switch {
	case cl.Base != s.CurrentID:
		st = completed(st, cl, s, now)
	case now.Before(cl.LeaseUntil):
		st.Claim = cl
		return st, cl
	default:
		reason := fmt.Sprintf("the rotation claimed by %s at %s did not finish within its lease; if Clear answered, the token it issued was lost",
			cl.Owner, cl.At.UTC().Format(time.RFC3339))
		st.Lost = &document.Lost{At: cl.LeaseUntil, Reason: reason, Base: cl.Base, Slot: cl.Slot, Secret: cl.Secret}
		for i := range st.APIClients {
			if st.APIClients[i].Secret == cl.Secret {
				st.APIClients[i].Failures++
				st.APIClients[i].LastError = reason
			}
		}
		st.Failed = document.Remember(st.Failed, cl.Event)
	}
	return st, nil
}

// completed accounts for a claim whose rotation stored its token: its API client is healthy again,
// its event was acted on, and the token it replaced is retired.
func completed(st document.State, cl *document.Claim, s Snapshot, now time.Time) document.State {
	st.APIClients = slices.Clone(st.APIClients)
	for i := range st.APIClients {
		a := &st.APIClients[i]
		if a.Secret == cl.Secret {
			a.Failures, a.RetryAt, a.LastError = 0, nil, ""
			if a.Blocked != nil && a.Blocked.Until == nil {
				a.Blocked = nil
			}
		}
	}
	if cl.Replaces != "" && cl.Replaces != cl.Secret {
		// The token it replaced stopped being AWSCURRENT when the new one was stored: at the new
		// token's issue, never before the claim nor after now.
		at := cl.At
		if s.HasToken && s.Token.IssuedAt.After(at) {
			at = s.Token.IssuedAt
		}
		st = retire(st, cl.Replaces, minTime(at, now))
	}
	st.Events = document.Remember(st.Events, cl.Event)
	st.Failed = document.Forget(st.Failed, cl.Event)
	st.Suspect = "" // replaced
	return st
}

// retire records that the token of the API client with fingerprint fp stopped being AWSCURRENT at
// at, keeping its bookkeeping even when it is no longer configured.
func retire(st document.State, fp string, at time.Time) document.State {
	a := st.APIClient(fp)
	a.Retired = &at
	keep := secretsIn(st)
	if !slices.Contains(keep, fp) {
		keep = append(keep, fp)
	}
	return st.WithAPIClient(a, keep...)
}

// secretsIn lists the fingerprints st keeps bookkeeping for.
func secretsIn(st document.State) []string {
	out := make([]string, 0, len(st.APIClients)+1)
	for _, a := range st.APIClients {
		out = append(out, a.Secret)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// suspect reports whether a failed request may have revoked the token in AWSCURRENT (State.Suspect):
// it is due, once its API client's backoff allows.
func suspect(s Snapshot, st document.State) bool {
	return st.Suspect != "" && st.Suspect == s.CurrentID
}

// lostCurrent reports whether a recorded loss has (or may have) revoked the token in AWSCURRENT:
// the lost request was made with the API client that issued it. Such a client is rotated at once,
// whatever its schedule, because the ERP holds a dead token.
func lostCurrent(s Snapshot, st document.State) bool {
	l := st.Lost
	if l == nil || l.Base != s.CurrentID {
		return false
	}
	if !s.HasToken || len(s.Secrets) < 2 {
		return true
	}
	return issuer(s) == l.Slot
}

// backoffEnd is what ends a backoff before its time (slotView). While the token in AWSCURRENT lives,
// its last chance (lastChance). While it is dead (expired, or lost), a look timing.DeadRetry after
// the last request, as long as the API client's day keeps reserve requests for the renewals after
// it (timing.RenewalsLeft): the ERP systems fail until the next token whatever the backoff saves,
// but a day's budget spent on a long outage of Clear would hold the token dead after Clear is back,
// until midnight UTC. A first token (none in AWSCURRENT) keeps its backoff: nothing tells how many
// requests its renewals will need.
type backoffEnd struct {
	last      time.Time // the token's last chance; zero: none
	deadRetry time.Time // zero: the token is not dead, or no request is on record
	reserve   int
}

// at returns when the backoff of an API client that made requests today ends at the latest; zero
// when only the backoff's own end holds.
func (b backoffEnd) at(requests, limit int) time.Time {
	if !b.deadRetry.IsZero() && requests+b.reserve < limit {
		return b.deadRetry
	}
	return b.last
}

func backoffEnds(s Snapshot, st document.State, p Policy, renewAt, now time.Time) backoffEnd {
	b := backoffEnd{last: lastChance(s, st, p, renewAt, now)}
	if st.LastRequest == nil || !s.HasToken || !expired(s, now) && !lostCurrent(s, st) {
		return b
	}
	b.deadRetry = st.LastRequest.Add(timing.DeadRetry)
	t := s.Token
	b.reserve = timing.RenewalsLeft(now, timing.RenewalsPerDay(t.IssuedAt, t.ValidTill, p.RenewBefore, p.MaxAge))
	return b
}

// expired reports whether the token in AWSCURRENT has expired at now (false without one, or for
// one that never expires).
func expired(s Snapshot, now time.Time) bool {
	return s.HasToken && s.Token.ValidTill != nil && !now.Before(*s.Token.ValidTill)
}

// lastChance is the latest a rotation can start and still store a token before the one in
// AWSCURRENT expires: its expiry less a rotation's lease. No backoff lasts past it (slotView): a
// look then still renews the token the ERP holds, which is worth one more request. It is zero when
// there is none to take: the token never expires, is dead already (expired, lost), or arrived too
// short-lived to come due before it (a Clear or clock problem, which the backoff after a suspicious
// answer spaces); and when a request was made at or after it, which took it, so that a Clear that
// keeps failing cannot spend the day's budget in the token's last minute.
func lastChance(s Snapshot, st document.State, p Policy, renewAt, now time.Time) time.Time {
	if !s.HasToken || s.Token.ValidTill == nil || expired(s, now) || lostCurrent(s, st) {
		return time.Time{}
	}
	last := s.Token.ValidTill.Add(-timing.Lease(p.clearTimeout()))
	if renewAt.IsZero() || renewAt.After(last) || st.LastRequest != nil && !st.LastRequest.Before(last) {
		return time.Time{}
	}
	return last
}

// slotView describes one configured API client at now; ends says what may end its backoff early.
func slotView(slot int, fp string, st document.State, stateKnown bool, p Policy, ends backoffEnd, now time.Time, today string) SlotView {
	v := SlotView{Slot: slot, Known: fp != "", secret: fp}
	if !v.Known {
		err := fmt.Errorf("API client %d: its client secret could not be read", slot)
		v.refusal, v.hard = err, err
		return v
	}
	if !stateKnown {
		v.refusal, v.hard = ErrUnknown, ErrUnknown
		return v
	}
	a := st.APIClient(fp)
	n := a.RequestsOn(today)
	if a.CountLost != today {
		// A count a damaged state lost (assumeSpent) is unknown until the day is over; n still
		// guards the limit.
		v.RequestsToday = &n
	}
	if a.LastError != "" {
		le := a.LastError
		v.LastError = &le
	}
	if b := a.Blocked; b != nil && (b.Until == nil || now.Before(*b.Until)) {
		reason := b.Kind + ": " + b.Reason
		v.BlockedReason = &reason
		berr := &BlockedError{Slot: slot, Kind: b.Kind, Reason: b.Reason}
		if b.Until != nil {
			u := *b.Until
			v.BlockedUntil, berr.Until = &u, &u
			v.hard = berr
		}
		v.refusal = berr
	}
	if v.hard == nil && n >= p.DailyLimit {
		until := timing.NextMidnightUTC(now)
		lerr := &LimitError{Slot: slot, Limit: p.DailyLimit, Requests: n, Until: until}
		v.refusal, v.hard = lerr, lerr
		v.BlockedUntil = &until
		reason := "daily limit"
		v.BlockedReason = &reason
	}
	if a.RetryAt == nil {
		return v
	}
	until := *a.RetryAt
	if end := ends.at(n, p.DailyLimit); !end.IsZero() && end.Before(until) {
		until = end
	}
	if v.refusal == nil && now.Before(until) {
		v.refusal = &BackoffError{Slot: slot, Until: until, Failures: a.Failures, LastError: a.LastError}
		v.BlockedUntil = &until
		reason := "backing off"
		v.BlockedReason = &reason
	}
	return v
}

// sane returns a without a block or backoff that ends further ahead of now than any rotator
// writes one: a 429's block ends within clear.MaxRetryAfter of Clear's answer (or at the next
// midnight UTC, sooner), and a backoff within its cap (an hour) of the failure. One beyond a day
// (and a lease's slack) was edited by hand or written by a rotator whose clock was far ahead;
// honoured, it would hold the API client off for as long as it says, a 429 even against a force.
// Over, it costs at most one request: Clear's next 429, if it comes, records a block of its own.
func sane(a document.APIClient, now time.Time) document.APIClient {
	horizon := now.Add(clear.MaxRetryAfter + longestLease)
	if b := a.Blocked; b != nil && b.Until != nil && b.Until.After(horizon) {
		a.Blocked = nil
	}
	if a.RetryAt != nil && a.RetryAt.After(horizon) {
		a.RetryAt = nil
	}
	return a
}

// choose picks the API client to ask: the one that did not issue the token in AWSCURRENT, so that
// the token ERP systems hold stays valid; the other one when that one may not be asked (degraded
// mode, where the rotation revokes the token in use); an error when neither may be asked, or when
// waiting for the preferred one is better than revoking the token in use (markWaits). An API
// client named by the request (revoke) is asked whatever its token: naming it says that is meant.
func choose(s Snapshot, slots []SlotView, req Request) (int, error) {
	if req.Slot > 0 {
		return chooseNamed(slots, req)
	}
	if len(slots) == 0 {
		return 0, fmt.Errorf("no API client is configured")
	}
	first := slots[preferred(s, len(slots))-1]
	order := []SlotView{first}
	for _, v := range slots {
		if v.Slot != first.Slot {
			order = append(order, v)
		}
	}
	if first.avoid {
		order = append(order[1:], first)
	}
	if slot, decided, err := preferredRule(first, req); decided {
		return slot, err
	}
	// An API client that may be asked as it is comes first; a force may then lift a 401 block or a
	// backoff, but never the daily limit or a 429.
	for _, v := range order {
		if v.refusal == nil && v.held == nil {
			return v.Slot, nil
		}
	}
	if req.Force {
		for _, v := range order {
			if v.hard == nil && v.held == nil {
				return v.Slot, nil
			}
		}
		if first.hard != nil {
			return 0, first.hard
		}
	}
	if first.refusal == nil && first.held != nil {
		return 0, first.held
	}
	return 0, first.refusal
}

// preferredRule decides for the preferred API client when markWaits marked it: wait for its backoff
// (a force lifts it, rather than revoke the token in use by asking the other), and never ask it
// while consumers may hold its token.
func preferredRule(first SlotView, req Request) (slot int, decided bool, err error) {
	switch {
	case first.wait != nil && !req.Force:
		return 0, true, first.wait
	case first.wait != nil && first.held == nil:
		return first.Slot, true, nil
	case first.held != nil && (first.refusal == nil || first.wait != nil):
		return 0, true, first.held
	}
	return 0, false, nil
}

// chooseNamed checks the API client the request names.
func chooseNamed(slots []SlotView, req Request) (int, error) {
	if req.Slot > len(slots) {
		return 0, fmt.Errorf("API client %d is not configured", req.Slot)
	}
	v := slots[req.Slot-1]
	if err := v.refusal; err != nil && (!req.Force || v.hard != nil) {
		if req.Force {
			return 0, v.hard
		}
		return 0, err
	}
	return req.Slot, nil
}

// health is the client's condition in one word, most urgent first.
func health(s Snapshot, st document.State, inFlight *document.Claim, d Decision, now time.Time) Health {
	switch {
	case !s.StateKnown:
		return HealthUnknown
	case inFlight != nil:
		return HealthInFlight
	case lostCurrent(s, st):
		return HealthTokenLost
	}
	if h, stuck := refusalHealth(d.Slots); stuck {
		return h
	}
	switch {
	case !s.HasToken:
		return HealthNoToken
	case expired(s, now):
		return HealthExpired
	case waiting(d.Slots):
		return HealthBackingOff
	case d.Degraded:
		return HealthDegraded
	case !d.RenewAt.IsZero() && !now.Before(d.RenewAt):
		return HealthExpiring
	}
	return HealthOK
}

// refusalHealth reports whether no API client may be asked now, and if so the cause to report:
// a block before the daily limit before a backoff.
func refusalHealth(slots []SlotView) (Health, bool) {
	var blocked, limited, backoff bool
	for _, v := range slots {
		switch v.refusal.(type) {
		case nil:
			if v.Known {
				return "", false
			}
		case *BlockedError:
			blocked = true
		case *LimitError:
			limited = true
		case *BackoffError:
			backoff = true
		default:
			blocked = true
		}
	}
	switch {
	case blocked:
		return HealthBlocked, true
	case limited:
		return HealthLimited, true
	case backoff:
		return HealthBackingOff, true
	}
	return HealthUnknown, true
}

// waiting reports whether the decision waits for an API client's backoff rather than fall back.
func waiting(slots []SlotView) bool {
	for _, v := range slots {
		if v.wait != nil {
			return true
		}
	}
	return false
}

// retryTime is when a refused client is worth another look.
func retryTime(err error, now time.Time) time.Time {
	switch e := err.(type) {
	case *BlockedError:
		if e.Until != nil {
			return *e.Until
		}
		return now.Add(blockedRecheck)
	case *LimitError:
		return e.Until
	case *BackoffError:
		return e.Until
	case *RereadError:
		return e.Until
	case *QuotaError:
		return e.Until
	}
	return time.Time{}
}
