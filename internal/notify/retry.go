package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Verdict is what one attempt's outcome means for the next.
type Verdict int

const (
	// Delivered: the receiver has it.
	Delivered Verdict = iota
	// Retry: the receiver may take it later (a 5xx, a 408 or 429, a timeout, no answer).
	Retry
	// GiveUp: the receiver refused it, and will again (any other 4xx, a 3xx since redirects are not
	// followed, a request that cannot be made).
	GiveUp
)

func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	}
	return "give-up"
}

// Classify decides what an HTTP answer means: status is the receiver's status code, 0 when there
// was no answer (err says why).
func Classify(status int, err error) Verdict {
	switch {
	case status == 0 && err == nil:
		return GiveUp // absurd: neither an answer nor a failure
	case status == 0:
		var pe *permanentError
		if errors.As(err, &pe) {
			return GiveUp
		}
		return Retry // a timeout, a refused connection, a reset: the receiver may be back soon
	case status >= 200 && status < 300:
		return Delivered
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500 && status < 600:
		return Retry
	}
	return GiveUp
}

// permanentError is a failure that no retry can mend (a request that cannot be built, a command
// that cannot be started).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Policy is how a shell retries: the backoff between attempts, how many attempts a delivery gets
// (0: until the context ends), and after how many failed attempts the failure is reported (the
// daemon reports a failure it keeps retrying; the CLI and the Lambda report when they give up).
type Policy struct {
	Backoff  timing.Backoff
	Attempts int
	ReportAt int
}

// Daemon is the daemon's policy: retry until delivered or superseded, every few seconds at first
// and at least every five minutes, and report after five failed attempts (15 to 30 s).
var Daemon = Policy{Backoff: timing.Backoff{Base: 2 * time.Second, Cap: 5 * time.Minute}, Attempts: 0, ReportAt: 5}

// Run is the policy of `rotator rotate` and of the Lambda: four attempts, 7 to 14 s of waits in all,
// so that a receiver restarting gets the message and the command still ends promptly (each attempt
// is bounded too: WebhookTimeout, the hook's timeout).
var Run = Policy{Backoff: timing.Backoff{Base: 2 * time.Second, Cap: 8 * time.Second}, Attempts: 4, ReportAt: 4}

// Once is one attempt, its failure reported at once: for a delivery resumed by a shell that runs on
// a schedule (the Lambda, `rotator rotate` from cron), whose next run is its retry, and whose run
// must stay short.
var Once = Policy{Backoff: Run.Backoff, Attempts: 1, ReportAt: 1}

// Next decides after failed attempts (>= 1) with verdict v: whether to try again, and after how
// long (r is the jitter, in [0, 1)). asked is the wait the receiver asked for (its Retry-After, 0
// for none): it lengthens the backoff's wait up to the backoff's cap, so that a receiver that is
// restarting is not knocked on every few seconds, and one asking for hours cannot hold a token's
// news back longer than the policy allows.
func (p Policy) Next(failed int, v Verdict, r float64, asked time.Duration) (time.Duration, bool) {
	if v != Retry || (p.Attempts > 0 && failed >= p.Attempts) {
		return 0, false
	}
	return max(p.Backoff.Delay(failed, r), min(asked, p.Backoff.Cap)), true
}

// Failing reports whether a delivery that has failed attempts times, the last with verdict v, is
// now a failure to report: at once when the receiver refused it, or after ReportAt attempts.
func (p Policy) Failing(failed int, v Verdict) bool {
	if v == Delivered || failed < 1 {
		return false
	}
	if v == GiveUp {
		return true
	}
	n := p.ReportAt
	if n < 1 {
		n = 1
	}
	if p.Attempts > 0 && n > p.Attempts {
		n = p.Attempts
	}
	return failed >= n
}

// Error is a delivery that failed, for errors.As: which target, after how many attempts, and the
// last attempt's failure (an HTTP status or an exit code; never a token).
type Error struct {
	Kind     string // "webhook" or "hook"
	Client   string
	Attempts int
	Err      error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s for client %q not delivered after %d attempt(s): %v", e.Kind, e.Client, e.Attempts, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// sleep waits d or until ctx ends; in a synctest bubble the timer is the fake clock.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
