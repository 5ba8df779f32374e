package rotation

import (
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Decide says whether to ask Clear; Transition says what the answer did to the state. Together they
// hold every rule of the engine: the executor reads, decides, claims, asks Clear, applies the
// transition, writes it, and decides again on what it wrote.

// AttemptKind is what became of an attempt that held a claim.
type AttemptKind int

const (
	// AttemptStored: Clear answered and the token is stored in AWSCURRENT; the claim is complete.
	AttemptStored AttemptKind = iota + 1
	// AttemptSuspicious: stored, but the answer looks wrong (it expires within a minute, or its
	// valid_till could not be read), which points at a clock or Clear problem.
	AttemptSuspicious
	// AttemptRefused: Clear refused (401, another 4xx, 429) or failed (5xx, a timeout, a malformed
	// answer); nothing was stored.
	AttemptRefused
	// AttemptLost: Clear answered, but the token could not be stored: the previous token of the
	// API client asked is revoked.
	AttemptLost
	// AttemptReleased: the claim was given up before Clear was asked.
	AttemptReleased
	// AttemptOvertaken: the claim's re-read found AWSCURRENT replaced by another writer, so Clear
	// was not asked; the claim is over without having completed.
	AttemptOvertaken
)

// Attempt is what became of the attempt that held the claim in the state it is applied to.
type Attempt struct {
	Kind AttemptKind
	// At is when it happened (Clear's answer, the failed write, the release).
	At time.Time
	// Token is the token stored (Stored, Suspicious).
	Token document.Token
	// Clear is Clear's refusal or failure (Refused).
	Clear *clear.Error
	// Reason is the text recorded as the API client's last error, already redacted: Clear's
	// message (Refused), the problem (Suspicious) or the write's failure (Lost).
	Reason string
}

// Spacing is how attempts after failures are spaced: the backoff and a jitter in [0, 1).
type Spacing struct {
	Backoff timing.Backoff
	Jitter  float64
}

// Transition returns the state after attempt, from the state that claimed it (its Claim set). It is
// a pure function; the next state has no claim, so that the next rotation need not wait for the
// lease:
//   - Stored completes the claim as settle would: the API client is healthy again, the event acted
//     on, the token replaced retired.
//   - Suspicious completes it too, but the API client backs off one step further than before, so
//     that a clock or Clear problem that persists cannot spend the day's budget.
//   - Refused blocks the API client (401 and other 4xx: until its secret changes; 429: until
//     Retry-After, but no sooner than the backoff, or midnight UTC) or backs it off (transient);
//     its event failed. When Clear may have issued a token before the failure (clear.Error's
//     MayHaveIssued) and the API client asked issued the token in AWSCURRENT, that token is
//     suspect: it is replaced once the backoff allows, due or not (dueGate).
//   - Lost records the loss; the first retry after it is immediate, since the token in AWSCURRENT
//     may be dead, and a loss while an earlier one is unrecovered backs off from the first step.
//   - Released uncounts the request the claim counted: it was never sent. It counts as a failure,
//     and a release after another failure backs off.
//   - Overtaken is not a rotation, though settle would take the claim for one (AWSCURRENT is not
//     its base): its API client was never answered, so its failures, backoff and blocks stand,
//     and its event was not acted on. The token it set out to replace is retired all the same,
//     since another writer replaced it, from the re-read that found it (the later bound of when
//     consumers may have seen the other's). The request it counted is uncounted, as a release's:
//     it was never sent.
func Transition(claimed document.State, a Attempt, sp Spacing) document.State {
	cl := claimed.Claim
	if cl == nil {
		return claimed
	}
	st := claimed
	st.Claim = nil
	acting := st.APIClient(cl.Secret)
	switch a.Kind {
	case AttemptStored, AttemptSuspicious:
		prior := acting.Failures
		st = completed(st, cl, Snapshot{HasToken: true, Token: a.Token}, a.At)
		if a.Kind == AttemptStored {
			return st
		}
		acting = st.APIClient(cl.Secret)
		acting.Failures, acting.LastError = prior+1, a.Reason
		acting.RetryAt = timePtr(a.At.Add(sp.Backoff.Delay(acting.Failures, sp.Jitter)))
	case AttemptRefused:
		st.Failed = document.Remember(st.Failed, cl.Event)
		acting.Failures++
		acting.LastError, acting.RetryAt = a.Reason, nil
		refuse(&acting, a, sp)
		if mayHaveRevoked(cl, a) {
			st.Suspect = cl.Base
		}
	case AttemptLost:
		st.Failed = document.Remember(st.Failed, cl.Event)
		again := st.Lost != nil && st.Lost.Base == cl.Base
		acting.Failures++
		acting.LastError, acting.RetryAt = a.Reason, nil
		if again {
			acting.RetryAt = timePtr(a.At.Add(sp.Backoff.Delay(max(acting.Failures-1, 1), sp.Jitter)))
		}
		st.Lost = &document.Lost{At: a.At, Reason: a.Reason, Base: cl.Base, Slot: cl.Slot, Secret: cl.Secret, Certain: true}
	case AttemptOvertaken:
		if acting.Requests > 0 {
			acting.Requests--
		}
		st = st.WithAPIClient(acting, secretsIn(st)...)
		if cl.Replaces != "" && cl.Replaces != cl.Secret {
			st = retire(st, cl.Replaces, a.At)
		}
		return st
	case AttemptReleased:
		if acting.Requests > 0 {
			acting.Requests--
		}
		// The claim and its release are two secret versions that no request paid for: releases in
		// a row back off (the first retry is immediate), so that a cause that persists (a Secrets
		// Manager too slow to leave time for Clear) cannot pile versions up past its quota.
		acting.Failures++
		if a.Reason != "" {
			acting.LastError = a.Reason
		}
		if acting.Failures > 1 {
			acting.RetryAt = timePtr(a.At.Add(sp.Backoff.Delay(acting.Failures-1, sp.Jitter)))
		}
	}
	return st.WithAPIClient(acting, secretsIn(st)...)
}

// mayHaveRevoked reports whether the failed attempt a, of claim cl, may have revoked the token in
// AWSCURRENT: Clear may have issued a token before it failed, and the API client asked issued the
// one in use (the only one, or the one the claim replaces).
func mayHaveRevoked(cl *document.Claim, a Attempt) bool {
	return a.Clear != nil && a.Clear.MayHaveIssued() && cl.Base != "" && (cl.Replaces == "" || cl.Replaces == cl.Secret)
}

// refuse records Clear's refusal on the API client that was asked.
func refuse(a *document.APIClient, at Attempt, sp Spacing) {
	kind := clear.KindTransient
	var retryAfter time.Duration
	if at.Clear != nil {
		kind, retryAfter = at.Clear.Kind, at.Clear.RetryAfter
	}
	switch kind {
	case clear.KindAuth, clear.KindRejected:
		a.Blocked = &document.Block{Kind: kind.String(), Reason: at.Reason}
	case clear.KindRateLimited:
		until := timing.NextMidnightUTC(at.At)
		if retryAfter > 0 {
			// Clear's wait is honoured, but never shorter than the backoff after as many failures
			// in a row: a 429 that keeps saying "Retry-After: 1" must not spend the day's budget
			// in a minute.
			wait := max(retryAfter, sp.Backoff.Delay(a.Failures, sp.Jitter))
			if at.At.Add(wait).Before(until) {
				until = at.At.Add(wait)
			}
		}
		a.Blocked = &document.Block{Kind: kind.String(), Reason: at.Reason, Until: &until}
	default:
		a.RetryAt = timePtr(at.At.Add(sp.Backoff.Delay(a.Failures, sp.Jitter)))
	}
}

func timePtr(t time.Time) *time.Time { return &t }
