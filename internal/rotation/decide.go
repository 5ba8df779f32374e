package rotation

import (
	"fmt"
	"slices"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/document"
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

	// Secrets are the fingerprints of the configured API clients, in slot order (slot 1 first); an
	// empty string is an API client whose secret could not be read.
	Secrets []string

	// Deadline is when the caller must be done (a Lambda's deadline); zero means none.
	Deadline time.Time
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
	// since is when its bookkeeping last recorded anything, for choosing which refusal to report.
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

// minLifetime is the shortest lifetime an issued token may have before the answer is treated as a
// clock or Clear problem (and answered with backoff rather than with the next request).
var minLifetime = timing.MinInterval

// Decide is the rotator's one decision: given what was read, the policy and the request, whether to
// ask Clear for a token now, with which API client, and if not, why and when to look again. It is a
// pure function of its arguments; the CLI, the daemon, the Lambda and status all act on its result.
func Decide(s Snapshot, p Policy, req Request) Decision {
	now := s.Now.UTC()
	d := Decision{Health: HealthUnknown}
	if !s.CurrentKnown {
		d.Outcome, d.Err = Failed, ErrUnknown
		return d
	}
	st, inFlight := settle(s.State, s.CurrentID, now)
	d.Settled = st

	// When the token in AWSCURRENT is due, and the earliest an automatic rotation may happen.
	d.RenewAt = renewAt(s, p, now)
	due := !d.RenewAt.IsZero() && !now.Before(d.RenewAt)
	// The floor counts from the issue of the token in AWSCURRENT: a failed request is spaced by its
	// API client's backoff instead. An issue time in the future (another rotator's clock) cannot push
	// the floor further than MinInterval from now.
	floor := time.Time{}
	if s.HasToken {
		floor = s.Token.IssuedAt.Add(timing.MinInterval)
		if limit := now.Add(timing.MinInterval); floor.After(limit) {
			floor = limit
		}
	}

	// The API clients.
	today := timing.Day(now)
	d.Slots = make([]SlotView, len(s.Secrets))
	total, totalKnown := 0, s.StateKnown
	for i, fp := range s.Secrets {
		v := slotView(i+1, fp, st, s.StateKnown, p, now, today)
		d.Slots[i] = v
		if v.RequestsToday != nil {
			total += *v.RequestsToday
		} else {
			totalKnown = false
		}
	}
	if totalKnown {
		d.RequestsToday = &total
	}
	usable := 0
	for _, v := range d.Slots {
		if v.Known && v.refusal == nil {
			usable++
		}
	}
	d.Degraded = len(d.Slots) > 1 && usable < len(d.Slots)

	d.Health = health(s, st, inFlight, d, now)

	switch {
	case req.Event != "" && slices.Contains(st.Events, req.Event):
		d.Outcome, d.Err = Duplicate, &DuplicateError{Event: req.Event}
		d.NextCheck = d.RenewAt
		return d
	case inFlight != nil:
		d.Outcome, d.Err = Busy, &BusyError{Owner: inFlight.Owner, Since: inFlight.At, Until: inFlight.LeaseUntil}
		d.NextCheck = inFlight.LeaseUntil
		return d
	case !s.StateKnown:
		d.Outcome, d.Err = Failed, ErrUnknown
		return d
	}
	urgent := lostCurrent(s, st)
	if !req.Force && !due && !urgent {
		d.Outcome, d.NextCheck = NotDue, d.RenewAt
		return d
	}
	if !req.Force && !urgent && now.Before(floor) {
		// However the token looks, two automatic rotations are at least MinInterval apart.
		d.Outcome, d.NextCheck = NotDue, floor
		return d
	}

	slot, err := choose(s, d.Slots, req)
	if err != nil {
		d.Outcome, d.Err = outcomeOf(err), err
		d.NextCheck = retryTime(err, now)
		return d
	}
	if !s.Deadline.IsZero() {
		if left := s.Deadline.Sub(now); left < p.clearTimeout()+minWriteTime {
			d.Outcome = Failed
			d.Err = &LeaseError{Left: max(left, 0), Need: p.clearTimeout() + minWriteTime, Deadline: true}
			return d
		}
	}

	// Ask: count the request and take the rotation, in one state write.
	fp := s.Secrets[slot-1]
	a := st.APIClient(fp)
	a.Day, a.Requests = today, a.RequestsOn(today)+1
	next := st.WithAPIClient(a, s.Secrets...)
	at := now
	next.LastRequest = &at
	next.Claim = &document.Claim{Owner: req.Owner, At: now, LeaseUntil: now.Add(timing.Lease(p.clearTimeout())),
		Base: s.CurrentID, Force: req.Force, Slot: slot, Secret: fp, Event: req.Event}
	if req.Event != "" {
		next.Events = append(slices.Clone(st.Events), req.Event)
		if len(next.Events) > document.MaxEvents {
			next.Events = next.Events[len(next.Events)-document.MaxEvents:]
		}
	}
	d.Action, d.Slot, d.Secret, d.Claim = Ask, slot, fp, next
	d.TokenVersion, d.Stages = req.TokenVersion, req.Stages
	return d
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
// the last rotation succeeded; a live one is returned; an expired one is an abandoned claim, which
// may have cost the ERP its token. A recorded loss is over once AWSCURRENT has moved on.
func settle(st document.State, currentID string, now time.Time) (document.State, *document.Claim) {
	st.APIClients = slices.Clone(st.APIClients)
	if st.Lost != nil && st.Lost.Base != currentID {
		st.Lost = nil
	}
	cl := st.Claim
	if cl == nil {
		return st, nil
	}
	st.Claim = nil
	switch {
	case cl.Base != currentID:
		// The claim's rotation stored its token: its API client is healthy again.
		if cl.Secret != "" {
			for i := range st.APIClients {
				if st.APIClients[i].Secret == cl.Secret {
					a := &st.APIClients[i]
					a.Failures, a.RetryAt, a.LastError = 0, nil, ""
					if a.Blocked != nil && a.Blocked.Until == nil {
						a.Blocked = nil
					}
				}
			}
		}
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
	}
	return st, nil
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
	return s.Token.APIClient == 0 || s.Token.APIClient == l.Slot
}

// slotView describes one configured API client at now.
func slotView(slot int, fp string, st document.State, stateKnown bool, p Policy, now time.Time, today string) SlotView {
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
	v.RequestsToday = &n
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
	if v.refusal == nil && a.RetryAt != nil && now.Before(*a.RetryAt) {
		until := *a.RetryAt
		v.refusal = &BackoffError{Slot: slot, Until: until, Failures: a.Failures, LastError: a.LastError}
		v.BlockedUntil = &until
		reason := "backing off"
		v.BlockedReason = &reason
	}
	return v
}

// choose picks the API client to ask: the one that did not issue the token in AWSCURRENT, so that
// the token ERP systems hold stays valid; the other one when that one may not be asked (degraded
// mode, where the rotation revokes the token in use); an error when neither may be asked.
func choose(s Snapshot, slots []SlotView, req Request) (int, error) {
	if req.Slot > 0 {
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
	if len(slots) == 0 {
		return 0, fmt.Errorf("no API client is configured")
	}
	preferred := 1
	if len(slots) > 1 && s.HasToken && s.Token.APIClient == 1 {
		preferred = 2
	}
	order := []SlotView{slots[preferred-1]}
	for _, v := range slots {
		if v.Slot != preferred {
			order = append(order, v)
		}
	}
	// An API client that may be asked as it is comes first; a force may then lift a 401 block or a
	// backoff, but never the daily limit or a 429.
	for _, v := range order {
		if v.refusal == nil {
			return v.Slot, nil
		}
	}
	if req.Force {
		for _, v := range order {
			if v.hard == nil {
				return v.Slot, nil
			}
		}
		return 0, order[0].hard
	}
	return 0, order[0].refusal
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
	// Whether an automatic rotation could happen now: when none can, that is the cause to report.
	var blocked, limited, backoff bool
	usable := false
	for _, v := range d.Slots {
		switch v.refusal.(type) {
		case nil:
			usable = usable || v.Known
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
	case !usable && blocked:
		return HealthBlocked
	case !usable && limited:
		return HealthLimited
	case !usable && backoff:
		return HealthBackingOff
	case !usable:
		return HealthUnknown
	case !s.HasToken:
		return HealthNoToken
	case s.Token.ValidTill != nil && !now.Before(*s.Token.ValidTill):
		return HealthExpired
	case d.Degraded:
		return HealthDegraded
	case !d.RenewAt.IsZero() && !now.Before(d.RenewAt):
		return HealthExpiring
	}
	return HealthOK
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
	}
	return time.Time{}
}
