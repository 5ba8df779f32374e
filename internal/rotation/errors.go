package rotation

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnknown means the decision lacks what it needs to know: the token secret or the rotation state
// could not be read. Nothing is asked of Clear on a guess.
var ErrUnknown = errors.New("the token secret or the rotation state could not be read")

// BusyError is a rotation refused because another is in flight: a live claim, a claim won by
// another rotator, or AWSCURRENT changed since it was read.
type BusyError struct {
	Owner        string
	Since, Until time.Time
	// Reason, when set, replaces the default description.
	Reason string
}

func (e *BusyError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return fmt.Sprintf("a rotation is in progress (claimed by %s at %s, lease until %s)", e.Owner,
		e.Since.UTC().Format(time.RFC3339), e.Until.UTC().Format(time.RFC3339))
}

// DuplicateError is a forced rotation whose event was already acted on.
type DuplicateError struct{ Event string }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("event %q was already acted on; a duplicated delivery asks Clear for nothing", e.Event)
}

// ReusedRevokeError is a revoke sent with the id of an earlier one after the API client issued a
// newer token than the one that revoke stored: the token stored since, which may be the one that
// leaked, was not revoked, and a "duplicate" answer would leave it live with no error.
type ReusedRevokeError struct {
	Event string // the id as given
	Slot  int
}

func (e *ReusedRevokeError) Error() string {
	return fmt.Sprintf("request id %q was used by an earlier revoke, and API client %d has issued a newer token since, which that revoke did not revoke: send the revoke with a new request id", e.Event, e.Slot)
}

// BlockedError is an API client Clear refused: with a 401 (or another permanent refusal) until its
// client secret changes or a rotation is forced, with a 429 until Until.
type BlockedError struct {
	Slot   int
	Kind   string
	Reason string
	Until  *time.Time
}

func (e *BlockedError) Error() string {
	if e.Until != nil {
		return fmt.Sprintf("API client %d is blocked until %s: %s", e.Slot, e.Until.UTC().Format(time.RFC3339), e.Reason)
	}
	return fmt.Sprintf("API client %d is blocked until its client secret changes (or a forced rotation): %s", e.Slot, e.Reason)
}

// BackoffError is an API client backing off after failures.
type BackoffError struct {
	Slot      int
	Until     time.Time
	Failures  int
	LastError string
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("API client %d is backing off until %s after %d failed attempt(s): %s", e.Slot,
		e.Until.UTC().Format(time.RFC3339), e.Failures, e.LastError)
}

// LimitError is the refusal of a request by the rotator's own daily limit.
type LimitError struct {
	Slot            int
	Limit, Requests int
	Until           time.Time
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("refused by the daily limit: %d of %d requests to Clear used today (UTC) by API client %d; the count resets at %s",
		e.Requests, e.Limit, e.Slot, e.Until.UTC().Format(time.RFC3339))
}

// LeaseError is a rotation not attempted because too little time was left to ask Clear and store
// its answer: before a Lambda's deadline, or in the claim's lease after slow Secrets Manager calls.
// Asking anyway could revoke the ERP's token and lose the new one.
type LeaseError struct {
	Left, Need time.Duration
	// Deadline is true for the caller's deadline, false for the claim's lease.
	Deadline bool
}

func (e *LeaseError) Error() string {
	what := "the claim's lease"
	if e.Deadline {
		what = "the deadline"
	}
	return fmt.Sprintf("only %s left before %s, less than the %s needed to call Clear and store its answer; not calling it",
		e.Left.Round(time.Second), what, e.Need.Round(time.Second))
}

// LostError is a token Clear issued that could not be stored: the previous token of its API client
// is revoked, and the new one is gone.
type LostError struct {
	Slot int
	Err  error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("clear issued a new token (API client %d) but storing it failed; it is lost and the previous token of that API client is revoked: %v", e.Slot, e.Err)
}

func (e *LostError) Unwrap() error { return e.Err }

// outcomeOf maps a refusal to its outcome.
func outcomeOf(err error) Outcome {
	var (
		busy *BusyError
		dup  *DuplicateError
		blk  *BlockedError
		bo   *BackoffError
		lim  *LimitError
		re   *RereadError
		quo  *QuotaError
	)
	switch {
	case errors.As(err, &busy):
		return Busy
	case errors.As(err, &dup):
		return Duplicate
	case errors.As(err, &blk), errors.As(err, &bo), errors.As(err, &re):
		return Blocked
	case errors.As(err, &lim), errors.As(err, &quo):
		return Limited
	}
	return Failed
}

// RereadError is an API client not asked because the token it issued was in AWSCURRENT until
// recently: consumers that re-read the secret on the documented interval may hold it until Until,
// and a new request with the same client secret would revoke it. Naming the API client (revoke)
// asks it anyway.
type RereadError struct {
	Slot int
	// Since is when its token stopped being AWSCURRENT; Interval is the consumers' re-read
	// interval.
	Since, Until time.Time
	Interval     time.Duration
}

func (e *RereadError) Error() string {
	return fmt.Sprintf("not asking API client %d before %s: its token was in AWSCURRENT until %s, and consumers that re-read the secret every %s may still hold it; "+
		"asking now would revoke it (to replace the token in AWSCURRENT at once, ask the API client that issued it: rotate --force --api-client %d; to revoke every stored token on purpose: revoke)",
		e.Slot, e.Until.UTC().Format(time.RFC3339), e.Since.UTC().Format(time.RFC3339), e.Interval.Round(time.Second), 3-e.Slot)
}
