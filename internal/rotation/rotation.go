// Package rotation is the rotator's engine: it decides whether a client's token is due, claims the
// rotation in Secrets Manager so that exactly one rotator calls Clear, counts the request against
// the daily limit before sending it, and stores the new token as AWSCURRENT straight after Clear
// answers. The CLI, the daemon and the Lambda are thin shells around Engine.
//
// # One decision
//
// Every rule lives in Decide, a pure function of what was read (the token in AWSCURRENT, the state
// under ROTATOR_STATE, the configured client secrets), the policy, the time and the request. The
// engine reads, calls Decide, and acts on its result; Status reports the same decision without
// acting on it, so what `status` says is what `rotate` would do.
//
// # Protocol
//
// The token secret holds two kinds of version: the token document under AWSCURRENT (and the one
// before it under AWSPREVIOUS), and the rotator's state under the custom label ROTATOR_STATE. The
// state versions form a chain: each new one is put with a ClientRequestToken derived from the id of
// the version it replaces. Secrets Manager accepts a given token once; a second put with the same
// token and another value fails with ResourceExistsException. So of several rotators that read the
// same state, exactly one can write its successor: that write is the compare-and-set that both
// claims the rotation and counts the request, and it happens before Clear is called.
//
// A claim names the AWSCURRENT version it set out to replace (its base). Once AWSCURRENT is another
// version the claim is complete, so a successful rotation needs no second state write. The claim's
// lease covers exactly the work it stands for (Clear's timeout, the write window and a margin);
// a claim whose owner vanished is taken over when it ends, and the owner stops trying to store a
// token before then, so a late write can never overwrite its successor's token. An owner that
// knows it lost a token releases its claim at once and records the loss, while its lease lasts.
//
// # Two API clients
//
// Clear revokes a token only when the same client secret asks again. With two API clients
// configured, each rotation asks the one that did not issue the token in AWSCURRENT, so the token
// being replaced stays valid until its own expiry: no ERP notices the rotation. Counts, backoff and
// blocks are kept per client secret; when one API client may not be asked, the other is used
// (degraded mode, where a rotation revokes the token in use, as with one API client).
package rotation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// CurrentStage is the staging label consumers read; previousStage is the one Secrets Manager moves
// to the version CurrentStage leaves.
const (
	CurrentStage  = "AWSCURRENT"
	previousStage = "AWSPREVIOUS"
)

const (
	// attemptLimit bounds one write attempt.
	attemptLimit = 10 * time.Second
	// releaseLimit bounds the state write that releases a claim after a lost token; it runs even
	// when the work's own time is spent (it is what lets the next rotation start at once), but
	// never past the lease less its margin.
	releaseLimit = 10 * time.Second
	// releaseReserve is the end of the owner's work that the token write leaves to what follows
	// its failure: the check that it did not land after all, and the release that records the
	// loss, which must land before the lease's margin.
	releaseReserve = 5 * time.Second
	// secretTTL is how long a cached client secret is used before it is read again.
	secretTTL     = 15 * time.Minute
	emptyDocument = "{}"
)

// Outcome is what one rotation attempt came to.
type Outcome string

const (
	Rotated   Outcome = "rotated"
	NotDue    Outcome = "not_due"
	Busy      Outcome = "busy"
	Duplicate Outcome = "duplicate"
	Limited   Outcome = "limited"
	Blocked   Outcome = "blocked"
	Failed    Outcome = "failed"
)

// Outcomes lists every outcome, for metrics.
var Outcomes = []Outcome{Rotated, NotDue, Busy, Duplicate, Limited, Blocked, Failed}

// OK reports whether the outcome leaves the client as it should be: rotated, not due, being
// rotated by another rotator, or a duplicate of a request already acted on.
func (o Outcome) OK() bool { return o == Rotated || o == NotDue || o == Busy || o == Duplicate }

// Result describes one rotation attempt: what it came to, and the client's Status after it. The
// client's fields (its health, its token's times, the day's count) are read from Status, never
// copied beside it.
type Result struct {
	Client  string
	Outcome Outcome
	Message string
	// Requested reports whether Clear was called, and APIClient which API client was asked (or, for
	// a revoke refused before asking, would have been); 0 when none.
	Requested bool
	APIClient int
	// NextCheck is when the client next needs a look; zero means no particular time.
	NextCheck time.Time
	// Err is the failure or refusal behind the outcome.
	Err error
	// ReadErr is set when Secrets Manager could not be read: the decision was made on nothing.
	ReadErr error
	// Stored is the token this attempt stored in AWSCURRENT; nil when it stored none. The shells act
	// on it: the daemon hands the token to its gateway, push delivery tells the ERP which version
	// to read.
	Stored *Stored
	// Status is the client's status after the attempt, as the engine last saw it, with a request
	// this attempt counted included in its RequestsToday.
	Status Status
}

// resultJSON is the document a Result is in `rotator rotate --json`, `revoke --json` and the
// Lambda's answers (README, docs/lambda.md). Its keys and their order are the operators' contract;
// TestResultJSONIsTheDocumentedShape pins its bytes.
type resultJSON struct {
	Client  string  `json:"client"`
	Outcome Outcome `json:"outcome"`
	Message string  `json:"message"`
	// State is the client's health after the attempt.
	State Health `json:"state"`
	// ValidTill, RenewAt and IssuedAt describe the token now in AWSCURRENT, when one is known.
	ValidTill *time.Time `json:"valid_till"`
	RenewAt   *time.Time `json:"renew_at"`
	IssuedAt  *time.Time `json:"issued_at"`
	// RequestsToday is the day's count across the API clients as last read, this attempt's request
	// included; null when it was not read.
	RequestsToday *int `json:"requests_today"`
	DailyLimit    int  `json:"daily_limit"`
	Requested     bool `json:"requested"`
	// APIClient is the API client this attempt was for (1 or 2): the one it claimed, or, for a
	// revoke, the one it was to ask; null when it chose none. Requested says whether it asked.
	APIClient *int `json:"api_client"`
	// Degraded is true when two API clients are configured and only one may be asked; null when
	// the token secret could not be read.
	Degraded *bool `json:"degraded"`
}

// MarshalJSON writes the result as its documented document: the outcome, and the status fields an
// operator reads beside it.
func (r Result) MarshalJSON() ([]byte, error) {
	st := r.Status
	var asked *int
	if r.APIClient != 0 {
		asked = &r.APIClient
	}
	return json.Marshal(resultJSON{Client: r.Client, Outcome: r.Outcome, Message: r.Message, State: st.State,
		ValidTill: st.ValidTill, RenewAt: st.RenewAt, IssuedAt: st.IssuedAt, RequestsToday: st.RequestsToday,
		DailyLimit: st.DailyLimit, Requested: r.Requested, APIClient: asked, Degraded: st.Degraded})
}

// Stored is a token the engine has just stored in AWSCURRENT.
type Stored struct {
	// VersionID is the AWSCURRENT version that holds it.
	VersionID string
	// Token is the document as stored; its AccessToken redacts itself.
	Token document.Token
	// Forced is true when the rotation was asked for (a forced rotation, an event, a revoke) rather
	// than found due.
	Forced bool
}

// DefaultWriteRetry is the engine's first pause between token write attempts.
const DefaultWriteRetry = 250 * time.Millisecond

// Engine rotates tokens. Build it with NewEngine, which sets every field left unset to its
// default; a field changed afterwards (a test's clock, the Lambda's owner) must be set to a
// usable value, not zeroed.
type Engine struct {
	Store Store
	// Now is the clock; unset: time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for backoff jitter; unset: math/rand.
	Rand func() float64
	// Log receives one line per decision that matters; unset: discarded.
	Log *slog.Logger
	// Owner identifies this process in claims; unset: host/pid/random.
	Owner string
	// Backoff spaces attempts after failures; unset: timing.DefaultBackoff.
	Backoff timing.Backoff
	// ClearTimeout bounds one request to Clear; unset: clear.DefaultTimeout. The claim's lease
	// is sized from it (timing.Lease).
	ClearTimeout time.Duration
	// WriteRetry is the first pause between token write attempts; unset: DefaultWriteRetry.
	WriteRetry time.Duration
}

// NewEngine returns e with every unset field set to its default: the one place the engine's
// defaults are written, so that neither the engine nor its callers (the fleet's guard, the Lambda)
// need a fallback at each use. Store has no default.
func NewEngine(e Engine) *Engine {
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Rand == nil {
		e.Rand = mrand.Float64
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	if e.Owner == "" {
		e.Owner = defaultOwner
	}
	if e.Backoff.Base <= 0 {
		e.Backoff = timing.DefaultBackoff
	}
	if e.ClearTimeout <= 0 {
		e.ClearTimeout = clear.DefaultTimeout
	}
	if e.WriteRetry <= 0 {
		e.WriteRetry = DefaultWriteRetry
	}
	return &e
}

// now is the engine's clock in UTC, the zone of every time the state document holds.
func (e *Engine) now() time.Time { return e.Now().UTC() }

func (e *Engine) policy(c *Client) Policy {
	return Policy{DailyLimit: c.DailyLimit, RenewBefore: c.RenewBefore, MaxAge: c.MaxAge, ClearTimeout: e.ClearTimeout}
}

var defaultOwner = func() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}()

// Rotate rotates c's token if it is due, or, with force, whether or not it is due. It calls Clear
// at most once, and only after winning the claim and counting the request.
func (e *Engine) Rotate(ctx context.Context, c *Client, force bool) Result {
	return e.Run(ctx, c, Request{Force: force}, nil)
}

// Run reads c (through cache when it is not nil), decides, and acts on the decision.
func (e *Engine) Run(ctx context.Context, c *Client, req Request, cache *Cache) Result {
	if req.Owner == "" {
		req.Owner = e.Owner
	}
	rd, err := e.read(ctx, c, cache, true)
	var r Result
	if err != nil {
		r = Result{Client: c.Name, ReadErr: err, Status: e.unknownStatus(c, rd)}
		r = r.fail(Failed, err)
		e.report(c, r)
		return r
	}
	if d, ok := ctx.Deadline(); ok {
		// The deadline is on the wall clock; the decision runs on the engine's.
		rd.snap.Deadline = rd.snap.Now.Add(time.Until(d))
	}
	d := Decide(rd.snap, e.policy(c), req)
	if d.Action == Ask {
		d = e.withVersions(ctx, c, &rd, req, d)
	}
	r = e.result(c, rd.snap, d)
	if d.Action == Ask {
		r = e.ask(ctx, c, rd, d, r, cache)
		if r.Stored != nil {
			r.Stored.Forced = req.Force || req.Event != ""
		}
	} else if d.Err != nil {
		r = r.fail(d.Outcome, d.Err)
		r.Outcome = d.Outcome
	} else {
		r.Outcome, r.Message = d.Outcome, notDueMessage(d.RenewAt)
	}
	e.report(c, r)
	return r
}

// Again reports whether r's client should be run again at once, within ctx: r asked Clear and
// failed, and the engine named no later time than now for its next look. A failed request names
// now only after a lost token (release) whose next rotation its rules let go without waiting
// (Decide on the state the loss left: the first loss in a row retries at once, a second one backs
// off, and the daily limit, blocks and the caller's deadline hold), so this adds no rule of its
// own beyond room:
// ctx's deadline, when it has one, must leave a whole claim's lease and its margin, so that a
// claim is never cut short by the caller's end. The daemon honours the same NextCheck at its next
// wake; the Lambda and `rotator rotate`, whose next run may be minutes away, ask this (fleet).
func (e *Engine) Again(ctx context.Context, r Result) bool {
	// A token stored is never run again here, even one due at once (it arrived about to expire):
	// what follows it is a backoff, the engine's to keep.
	if !r.Requested || r.Outcome.OK() || r.NextCheck.IsZero() || r.NextCheck.After(e.now()) {
		return false
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timing.Lease(e.ClearTimeout)+timing.LeaseMargin {
		return false
	}
	return true
}

// withVersions decides again with the token secret's versions listed, for the version quota's
// rule (quotaGate). It runs only when a decision is about to ask Clear, so that an idle look costs
// no extra call. A listing that fails leaves the decision as it was: the guard is not worth a
// rotation that does not happen.
func (e *Engine) withVersions(ctx context.Context, c *Client, rd *read, req Request, d Decision) Decision {
	var vs []store.VersionInfo
	var err error
	// A token secret without AWSCURRENT (not created yet, or created empty) has no versions to
	// count: listing them would cost a call, and an error where the secret does not exist.
	if rd.snap.CurrentID != "" {
		vs, err = e.Store.ListVersions(ctx, c.TokenSecretID)
	}
	if errors.Is(err, store.ErrNotFound) {
		vs, err = nil, nil
	}
	if err != nil {
		e.Log.Warn("could not list the token secret's versions; Secrets Manager's version quota is not checked",
			"client", c.Name, "error", err)
		return d
	}
	rd.snap.Versions, rd.snap.VersionsKnown = vs, true
	return Decide(rd.snap, e.policy(c), req)
}

// result describes a decision for its caller.
func (e *Engine) result(c *Client, s Snapshot, d Decision) Result {
	return Result{Client: c.Name, NextCheck: d.NextCheck, Status: statusOf(c, s, d)}
}

// ask claims the rotation the decision chose, asks Clear, and stores the answer.
func (e *Engine) ask(ctx context.Context, c *Client, rd read, d Decision, r Result, cache *Cache) Result {
	// What the cache holds is stale once the claim is written; a successful rotation refills it
	// with what it wrote, so the next look costs one call as usual.
	cache.Invalidate()
	body, err := document.MarshalState(d.Claim)
	if err != nil {
		return r.fail(Failed, err)
	}
	slot := rd.snap.StateID
	if slot == "" {
		slot = "genesis/" + rd.snap.CurrentID
	}
	claimToken := requestToken("claim", slot)
	claimID, err := e.Store.Put(ctx, c.TokenSecretID, claimToken, string(body), document.StateStage)
	if errors.Is(err, store.ErrConflict) {
		return r.fail(Busy, &BusyError{Reason: "another rotator claimed this rotation first"})
	}
	var abandoned error
	if err != nil {
		abandoned = fmt.Errorf("claiming the rotation: %w", err)
		if !e.stateLanded(ctx, c, claimToken, string(body)) {
			return r.fail(Failed, abandoned)
		}
		// The claim landed though every answer to it was lost. This rotator gives it up, and says
		// so at once, so that the others need not wait for its lease.
		claimID = claimToken
	}
	r.Status.RequestsToday = counted(r.Status.RequestsToday)
	r.APIClient = d.Slot
	r.NextCheck = d.Claim.Claim.LeaseUntil
	if abandoned != nil {
		return e.release(ctx, c, rd, d, claimID, abandoned, false)
	}

	// Re-check after winning: a rotation that finished between the first read and the claim must
	// not be repeated, and a forced rotation that finds AWSCURRENT changed since it read it stops.
	again, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if err != nil {
		return e.release(ctx, c, rd, d, claimID, fmt.Errorf("re-reading the token secret after claiming: %w", err), false)
	}
	if again.ID != rd.snap.CurrentID {
		// Left as it is, the claim would be settled as a completed rotation (AWSCURRENT is not its
		// base): its API client healthy again, its event acted on. The state that says otherwise is
		// put with the token the next claim on this one would use, so that it lands only if no
		// other rotator has claimed since (which also makes it safe after the lease), even when the
		// caller stops meanwhile, within a caller's deadline.
		wctx, cancel := detach(ctx, releaseLimit)
		e.apply(wctx, c, d, Attempt{Kind: AttemptOvertaken, At: e.now()}, requestToken("claim", claimID), "could not record the overtaken claim")
		cancel()
		r.NextCheck = time.Time{}
		return r.fail(Busy, &BusyError{Reason: "another rotator stored a new token meanwhile"})
	}

	// The claim's lease was set before the calls above, which a slow or throttled Secrets Manager
	// can stretch. Calling Clear late in the lease would let another rotator take the claim over
	// and race this one's token write; so the work must fit in what is left of the lease.
	left := e.leaseLeft(rd, d) - timing.LeaseMargin
	if need := e.ClearTimeout + minWriteTime; left < need {
		return e.release(ctx, c, rd, d, claimID, &LeaseError{Left: max(left, 0), Need: need}, false)
	}

	// From here on Clear may revoke the token the ERP holds, so the work must finish even if the
	// caller is cancelled (SIGTERM): only a deadline (a Lambda's, or the lease) stops it.
	work, cancel := detach(ctx, left)
	defer cancel()
	return e.request(work, c, rd, d, r, claimID, cache)
}

// request calls Clear and stores the answer: the token on success, the failure otherwise.
func (e *Engine) request(ctx context.Context, c *Client, rd read, d Decision, r Result, claimID string, cache *Cache) Result {
	secret := rd.secrets[d.Slot-1]
	cctx, cancel := context.WithTimeout(ctx, e.ClearTimeout)
	grant, err := c.Clear.Token(cctx, secret)
	cancel()
	answered := e.now()
	r.Requested = true
	if err != nil {
		return e.recordFailure(ctx, c, rd, d, r, claimID, answered, err)
	}
	// Issued to the second, as the token document holds it (document.MarshalToken): the result,
	// the cache and every later reader describe the same token.
	doc := document.Token{AccessToken: grant.AccessToken, ValidTill: grant.ValidTill, IssuedAt: answered.UTC().Truncate(time.Second),
		Client: c.Name, APIClient: d.Slot}
	if c.Slots() == 1 {
		doc.APIClient = 0
	}
	doc.ValidTillUnknown = grant.ValidTill == nil && grant.Drift != ""
	body, err := document.MarshalToken(doc)
	tokenVersion := requestToken("token", claimID)
	var stages []string
	if d.TokenVersion != "" {
		tokenVersion, stages = d.TokenVersion, append([]string{CurrentStage}, d.Stages...)
	}
	if err == nil {
		// The write comes straight after Clear's answer: no other call in between.
		wctx, wcancel := writeContext(ctx)
		_, err = e.retry(wctx, func(ctx context.Context) (string, error) {
			return e.Store.Put(ctx, c.TokenSecretID, tokenVersion, string(body), stages...)
		})
		wcancel()
	}
	if err != nil && e.landed(ctx, c, tokenVersion) {
		// Every answer was lost, but a write landed: a version's id is its request token.
		err = nil
	}
	if err != nil {
		return e.release(ctx, c, rd, d, claimID, &LostError{Slot: d.Slot, Err: err}, true)
	}

	// Describe the client as it now is: the token just stored, the claim complete.
	after := rd.snap
	after.Now = answered
	after.CurrentID, after.Token, after.HasToken = tokenVersion, doc, true
	after.State, after.StateID = d.Claim, claimID
	cache.fill(after, rd.secrets)
	problem := anomaly(grant, answered)
	if problem != "" {
		// A token that arrives expired or about to expire is stored, since it is the only one left,
		// but is not answered with the next request at once: the API client backs off, so a clock
		// or Clear problem cannot spend the daily budget in minutes.
		after.State, _ = e.apply(ctx, c, d, Attempt{Kind: AttemptSuspicious, At: answered, Token: doc, Reason: problem},
			requestToken("anomaly", tokenVersion), "could not record the suspicious answer")
		e.Log.Warn(problem, "client", c.Name, "api_client", d.Slot)
	}
	ad := Decide(after, e.policy(c), Request{})
	nr := e.result(c, after, ad)
	nr.Requested, nr.APIClient, nr.Outcome = true, d.Slot, Rotated
	nr.Message = "rotated; " + notDueMessage(ad.RenewAt)
	if d.Degraded && c.Slots() == 2 {
		nr.Message += fmt.Sprintf(" (degraded: only API client %d could be asked, so the token it replaced is revoked)", d.Slot)
	}
	if problem != "" {
		nr.Message += "; warning: " + problem
	}
	nr.NextCheck = ad.NextCheck
	nr.Stored = &Stored{VersionID: tokenVersion, Token: doc}
	return nr
}

// leaseLeft is what is left of the lease of the claim d made on rd: by the engine's clock, and
// never more than the lease less the real time since the read, so that a clock that steps back
// cannot stretch the owner's work past the moment other rotators take the claim over.
func (e *Engine) leaseLeft(rd read, d Decision) time.Duration {
	cl := d.Claim.Claim
	left := cl.LeaseUntil.Sub(e.now())
	if real := cl.LeaseUntil.Sub(cl.At) - time.Since(rd.started); real < left {
		left = real
	}
	return left
}

// anomaly describes what is wrong with a grant that was nevertheless stored, or "" when nothing is.
func anomaly(g clear.Grant, now time.Time) string {
	switch {
	case g.Drift != "":
		return "Clear's valid_till could not be understood (" + g.Drift + "); the token was stored with its expiry unknown and is renewed within the hour"
	case g.ValidTill != nil && g.ValidTill.Sub(now) < minLifetime:
		return fmt.Sprintf("Clear issued a token valid until %s, only %s after it was issued: check this machine's clock, or the API client's expiry in Clear",
			g.ValidTill.UTC().Format(time.RFC3339), g.ValidTill.Sub(now).Round(time.Second))
	}
	return ""
}

// apply applies the transition for what became of the claimed attempt and writes the state; it
// returns the state and whether the write landed.
func (e *Engine) apply(ctx context.Context, c *Client, d Decision, a Attempt, token, what string) (document.State, bool) {
	st := Transition(d.Claim, a, Spacing{Backoff: e.Backoff, Jitter: e.Rand()})
	return st, e.writeState(ctx, c, st, token, what)
}

// recordFailure writes the state after a failed request: backoff for transient failures, a block
// for refusals. The claim is cleared so that the next attempt need not wait for its lease.
func (e *Engine) recordFailure(ctx context.Context, c *Client, rd read, d Decision, r Result, claimID string, now time.Time, err error) Result {
	var ce *clear.Error
	if !errors.As(err, &ce) {
		ce = &clear.Error{Kind: clear.KindTransient, Message: clear.Sanitize(err.Error()), Err: err}
	}
	msg := redact(ce.Error(), rd.secrets)
	st, _ := e.apply(ctx, c, d, Attempt{Kind: AttemptRefused, At: now, Clear: ce, Reason: msg}, requestToken("result", claimID), "could not record the failure")

	after := rd.snap
	after.Now, after.State = now, st
	ad := Decide(after, e.policy(c), Request{})
	nr := e.result(c, after, ad)
	nr.Requested, nr.APIClient, nr.Status.RequestsToday = true, d.Slot, r.Status.RequestsToday
	nr.NextCheck = ad.NextCheck
	if nr.NextCheck.IsZero() {
		nr.NextCheck = now.Add(time.Minute)
	}
	out := nr.fail(Failed, fmt.Errorf("API client %d: %s", d.Slot, msg))
	out.Err = ce
	if d.Degraded || (c.Slots() == 2 && ad.Degraded) {
		out.Message += " (degraded: the other API client is used until this one recovers)"
	}
	return out
}

// release gives the claim up after its owner failed before or after asking Clear, and records why,
// so that the next rotation need not wait for the lease to end. lost says whether Clear issued a
// token that could not be stored. Its write is bounded by a short time of its own, since the work's
// time may be spent, and it ends where the owner's other writes do, before the lease less its
// margin: past that, another rotator may have taken the claim over, and a release landing on its
// claim would erase it and let a third rotator ask Clear while the second is asking. If the release
// cannot be written, the claim's lease ends soon anyway.
func (e *Engine) release(ctx context.Context, c *Client, rd read, d Decision, claimID string, cause error, lost bool) Result {
	now := e.now()
	a := Attempt{Kind: AttemptReleased, At: now, Reason: cause.Error()}
	if lost {
		a = Attempt{Kind: AttemptLost, At: now, Reason: cause.Error()}
	}
	var st document.State
	released := false
	if rctx, cancel, ok := e.afterClaim(ctx, rd, d); ok {
		st, released = e.apply(rctx, c, d, a, ReleaseToken(claimID), "could not release the claim")
		cancel()
	} else {
		e.Log.Warn("too little time is left, of the claim's lease or before the caller's deadline, to release the claim safely; it ends with its lease", "client", c.Name)
	}

	// Decide again on what the token secret now holds: the released state, or, when that write
	// failed too, the claim until its lease ends.
	after := rd.snap
	after.Now, after.State = now, st
	if !released {
		after.State = d.Claim
	}
	ad := Decide(after, e.policy(c), Request{})
	nr := e.result(c, after, ad)
	nr.Requested, nr.APIClient = lost, d.Slot
	nr.NextCheck = ad.NextCheck
	switch {
	case !released:
		nr.NextCheck = d.Claim.Claim.LeaseUntil
	case ad.Action == Ask && lost:
		// The token in AWSCURRENT may be dead: the next check asks again at once.
		nr.NextCheck = now
	case ad.Action == Ask || nr.NextCheck.IsZero():
		// Nothing was asked: a cause that persists (a slow Secrets Manager) is not retried in a
		// loop.
		nr.NextCheck = now.Add(time.Minute)
	}
	if lost && !released {
		// The token secret does not say so yet, but this rotator knows the token is lost.
		nr.Status.State = HealthTokenLost
		nr.Status.TokenLost = &LostView{At: now, Reason: cause.Error(), Certain: true}
	}
	return nr.fail(Failed, cause)
}

// writeState puts a state version with retries and reports whether it landed; a conflict means
// another writer's state won, which is as good.
func (e *Engine) writeState(ctx context.Context, c *Client, st document.State, token, what string) bool {
	body, err := document.MarshalState(st)
	if err == nil {
		_, err = e.retry(ctx, func(ctx context.Context) (string, error) {
			return e.Store.Put(ctx, c.TokenSecretID, token, string(body), document.StateStage)
		})
	}
	if err != nil && !errors.Is(err, store.ErrConflict) {
		e.Log.Warn(what, "client", c.Name, "error", err)
		return false
	}
	return true
}

// landed reports whether the token version was stored after all, when every answer to its write
// was lost. It asks once, with a short time limit of its own, since ctx may be spent.
func (e *Engine) landed(ctx context.Context, c *Client, version string) bool {
	vctx, cancel := outlive(ctx, attemptLimit)
	defer cancel()
	v, err := e.Store.Read(vctx, c.TokenSecretID, CurrentStage)
	return err == nil && v.ID == version
}

// stateLanded reports whether ROTATOR_STATE is the version written with request token id and
// value, when every answer to that write was lost: a version's id is its request token, and the
// value tells this rotator's claim from another's made with the same token. It asks once, with a
// short time limit of its own.
func (e *Engine) stateLanded(ctx context.Context, c *Client, id, value string) bool {
	vctx, cancel := outlive(ctx, attemptLimit)
	defer cancel()
	v, err := e.Store.Read(vctx, c.TokenSecretID, document.StateStage)
	return err == nil && v.ID == id && v.Value == value
}

// writeContext bounds the token write within the owner's work (ctx): it ends releaseReserve before
// the work does, so that a write that fails to the end leaves time to record the loss (release)
// before the lease's margin, but it never leaves the write less than minWriteTime.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	end, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	by := end.Add(-releaseReserve)
	if floor := time.Now().Add(minWriteTime); by.Before(floor) {
		by = floor // context.WithDeadline never goes past ctx's own deadline
	}
	return context.WithDeadline(ctx, by)
}

// afterClaim returns the context in which a release is written: it outlives the caller's
// cancellation (a SIGTERM), since left as it is the claim would hold the others off for its lease,
// but ends with releaseLimit, what is left of the lease (later, another rotator may have taken the
// claim over, and a release would erase that claim) or the caller's deadline (outlive). ok is false
// when too little time is left.
func (e *Engine) afterClaim(ctx context.Context, rd read, d Decision) (context.Context, context.CancelFunc, bool) {
	left := min(releaseLimit, e.leaseLeft(rd, d)-timing.LeaseMargin)
	if end, ok := callerEnd(ctx); ok {
		left = min(left, time.Until(end)-time.Second)
	}
	if left <= 0 {
		return nil, nil, false
	}
	wctx, cancel := outlive(ctx, left)
	return wctx, cancel, true
}

// detach returns a context that ignores ctx's cancellation but keeps its deadline, bounded by
// limit (what is left of the lease less a margin), so that the owner never writes after another
// rotator may take over. It keeps the caller's own deadline, or that it had none, aside for
// outlive: the work's narrower deadline would hide it.
func detach(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	end, ok := callerEnd(ctx)
	if ok {
		if left := time.Until(end) - time.Second; left < limit {
			limit = max(left, time.Second)
		}
	}
	out := context.WithValue(context.WithoutCancel(ctx), callerDeadline{}, deadline{end, ok})
	return context.WithTimeout(out, limit)
}

// callerDeadline is the context key under which detach keeps the caller's deadline.
type callerDeadline struct{}

type deadline struct {
	at  time.Time
	set bool
}

// callerEnd returns the caller's own deadline, when it has one: the one detach kept aside, or
// ctx's.
func callerEnd(ctx context.Context) (time.Time, bool) {
	if d, ok := ctx.Value(callerDeadline{}).(deadline); ok {
		return d.at, d.set
	}
	return ctx.Deadline()
}

// outlive returns a context for a call that must outlive the caller's cancellation (a SIGTERM) and
// the work's own time (a write window spent on a failing write): it is bounded by limit, and by the
// caller's deadline less a second. Past a Lambda's deadline the runtime is gone; a check or a
// release cut off there is lost anyway, and ending before it lets the run report its answer and
// the TokenLost metric.
func outlive(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	if end, ok := callerEnd(ctx); ok {
		limit = min(limit, time.Until(end)-time.Second)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), limit)
}

// retry runs op until it succeeds, fails with a conflict or an error that retrying cannot fix
// (store.Retryable), or ctx ends, pausing with the one backoff (timing.Backoff, from WriteRetry up
// to 5 s, with jitter) between attempts; each attempt has its own time limit.
func (e *Engine) retry(ctx context.Context, op func(context.Context) (string, error)) (string, error) {
	b := timing.Backoff{Base: e.WriteRetry, Cap: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptLimit)
		id, err := op(actx)
		cancel()
		if err == nil || errors.Is(err, store.ErrConflict) || !store.Retryable(err) {
			return id, err
		}
		e.Log.Warn("secrets manager write failed; retrying", "attempt", attempt, "error", err)
		t := time.NewTimer(b.Delay(attempt, e.Rand()))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		case <-t.C:
		}
	}
}

// counted is the day's count n with the request just claimed added; an unknown count becomes 1.
func counted(n *int) *int {
	c := 1
	if n != nil {
		c += *n
	}
	return &c
}

func (r Result) fail(o Outcome, err error) Result {
	r.Outcome, r.Err, r.Message = o, err, err.Error()
	return r
}

func notDueMessage(renewAt time.Time) string {
	if renewAt.IsZero() {
		return "the token never expires and no max age is set; it is not rotated automatically"
	}
	return "next renewal at " + renewAt.UTC().Format(time.RFC3339)
}

// report logs the outcome: decisions that matter at info or above, the rest at debug.
func (e *Engine) report(c *Client, r Result) {
	st := r.Status
	attrs := []any{"client", c.Name, "outcome", string(r.Outcome), "state", string(st.State), "daily_limit", st.DailyLimit}
	if st.RequestsToday != nil {
		attrs = append(attrs, "requests_today", *st.RequestsToday)
	}
	if r.APIClient != 0 {
		attrs = append(attrs, "api_client", r.APIClient)
	}
	if st.ValidTill != nil {
		attrs = append(attrs, "valid_till", st.ValidTill.Format(time.RFC3339))
	}
	if st.RenewAt != nil {
		attrs = append(attrs, "renew_at", st.RenewAt.Format(time.RFC3339))
	}
	l := e.Log
	switch r.Outcome {
	case Rotated:
		if st.IsDegraded() {
			l.Warn("rotated the token in degraded mode", append(attrs, "message", r.Message)...)
			return
		}
		l.Info("rotated the token", attrs...)
		if st.OverBudget() {
			l.Warn(fmt.Sprintf("the tokens need more requests a day than the daily limit allows: the day's budget runs out, and the token then expires until midnight UTC; raise the client's daily limit (at most %d), or the token expiry of the API client in Clear",
				config.MaxDailyLimit),
				"client", c.Name, "renewals_per_day", *st.RenewalsPerDay, "daily_limit", st.DailyLimit, "api_clients", len(st.APIClients))
		}
	case NotDue:
		l.Debug(r.Message, attrs...)
	case Busy, Duplicate:
		l.Info(r.Message, attrs...)
	case Limited, Blocked:
		l.Warn(r.Message, attrs...)
	default:
		if !r.Requested && errors.Is(r.Err, context.Canceled) {
			// Shutdown cut a check short before it claimed anything: nothing happened.
			l.Debug("check cancelled before it began", attrs...)
			return
		}
		l.Error("rotation failed", append(attrs, "error", r.Message)...)
	}
}

// ReleaseToken is the ClientRequestToken of the state write that releases claim claimID: every
// rotator (and the reliability simulation, which recognises the write) derives the same one.
func ReleaseToken(claimID string) string { return requestToken("release", claimID) }

// requestToken derives a ClientRequestToken (a UUID-shaped string, as Secrets Manager expects)
// from what it stands for, so that every rotator computes the same token for the same step.
func requestToken(kind, of string) string {
	sum := sha256.Sum256([]byte("clear-rotator/" + kind + "\x00" + of))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
