// Package timing holds the rotator's time arithmetic as pure functions of the times they are given:
// when a token is due for renewal, which UTC day a request counts against, when that day ends, and
// how long to back off after a failure. Nothing here reads a clock, so every rule is testable at any
// instant, and the daemon, the CLI and the Lambda all decide the same way.
package timing

import (
	"math"
	"time"
)

// Claim and rotation timing. A claim covers one request to Clear and the write of its answer, so its
// lease is sized to that work rather than to a round number: a claim whose owner died is taken over
// as soon as the owner could no longer be working on it, which bounds the time ERP systems spend
// without a live token after a crash.
const (
	// WriteWindow is what a claim allows beyond Clear's timeout: the calls around the request (the
	// re-read after claiming) and storing Clear's answer, retries included, and the margin below.
	WriteWindow = 30 * time.Second
	// LeaseMargin is the part of the write window the owner never uses: it stops writing this long
	// before its lease ends, so that its last write stays clear of a takeover even when the clocks
	// of two rotators differ a little.
	LeaseMargin = 10 * time.Second
	// MaxClearTimeout is the longest Clear timeout the configuration allows (CLEAR_TIMEOUT), and
	// with it Lease(MaxClearTimeout) the longest lease any rotator writes.
	MaxClearTimeout = 120 * time.Second
)

// MinInterval is the floor between two automatic rotations of a client, whatever Clear answers or
// the configuration says: every rotation revokes a token, and a bad valid_till must not turn into a
// storm of requests. A token that lives less than MinInterval is treated as a clock or Clear problem.
//
// It is one minute in every release build. It is a variable only so that process tests can build a
// rotator that renews emulator tokens living a few seconds in real time, with
// -ldflags "-X github.com/clear-rotator/clear-rotator/internal/timing.testFloor=500ms"; no
// configuration or environment can change it.
var MinInterval = buildTime(testFloor, time.Minute)

// testFloor is set at build time only; see MinInterval.
var testFloor string

// TestFloorFlag is the -ldflags value that builds a rotator with a 500 ms floor, for process tests.
const TestFloorFlag = "-X github.com/clear-rotator/clear-rotator/internal/timing.testFloor=500ms"

// buildTime is a duration set at build time (s, from -ldflags -X), or release when s is missing or
// not a positive duration: no build-time value can take a floor or a backoff to zero or below.
func buildTime(s string, release time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return release
}

// Lease returns how long a claim keeps other rotators away: a Clear request and the write window
// (which holds the margin). After a crash, ERP systems are without a live token for at most this
// plus the time until the next rotator looks.
func Lease(clearTimeout time.Duration) time.Duration {
	return clearTimeout + WriteWindow
}

// MinShutdownGrace returns the least shutdown grace that lets a rotation claimed just before a
// SIGTERM finish: a Clear request and the write of its answer. A shorter grace could lose a token
// that Clear has issued, and with it the token the ERP holds.
func MinShutdownGrace(clearTimeout time.Duration) time.Duration {
	return Lease(clearTimeout)
}

// MinRenewBefore returns the least renew-before a configuration may give: a renewal started with
// less validity left than a Clear request and the write of its answer (Lease) hands ERP systems an
// expired token at every rotation, and leaves no time to retry one that failed. A process-test
// build (testFloor), whose emulator tokens live seconds, has its MinInterval as the floor instead.
func MinRenewBefore(clearTimeout time.Duration) time.Duration {
	if MinInterval < time.Minute {
		return MinInterval
	}
	return Lease(clearTimeout)
}

// DayLayout formats the UTC day a request is counted against.
const DayLayout = "2006-01-02"

// Day returns the UTC calendar day of t, the unit of Clear's daily request limit.
func Day(t time.Time) string { return t.UTC().Format(DayLayout) }

// NextMidnightUTC returns the first 00:00 UTC strictly after t, when Clear's daily count resets.
func NextMidnightUTC(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
}

// RenewAt returns when a token issued at issuedAt should be replaced, and false when it never
// needs to be.
//
// A token with an expiry is renewed when renewBefore of its validity is left, or, when renewBefore
// is zero, when a third of its lifetime is left. Because every renewal revokes the token the ERP
// holds, a renewBefore longer than the lifetime must not turn into a rotation on every tick: a
// token is never renewed before half of its lifetime has passed.
//
// A token that never expires (validTill nil) is renewed once it is maxAge old, or never when maxAge
// is zero.
func RenewAt(issuedAt time.Time, validTill *time.Time, renewBefore, maxAge time.Duration) (time.Time, bool) {
	if validTill == nil {
		if maxAge <= 0 {
			return time.Time{}, false
		}
		return issuedAt.Add(maxAge), true
	}
	lifetime := validTill.Sub(issuedAt)
	if lifetime <= 0 {
		// Already expired when it was stored (a clock far off, or a hand-edited secret).
		return *validTill, true
	}
	at := validTill.Add(-lifetime / 3)
	if renewBefore > 0 {
		at = validTill.Add(-renewBefore)
	}
	if floor := issuedAt.Add(lifetime / 2); renewBefore > 0 && at.Before(floor) {
		at = floor
	}
	return at, true
}

// DeadRetry is the longest a backoff holds the next request while the token in AWSCURRENT is dead
// (expired, or lost) and the day has requests to spare (RenewalsLeft): the ERP systems are failing
// already, so a request costs them nothing and a look skipped costs them minutes. After a long
// outage of Clear the backoff has grown to an hour; without this, the token would stay dead up to an
// hour after Clear is back. Four minutes keeps every look of the default five-minute schedule.
const DeadRetry = 4 * time.Minute

// RenewalsLeft is how many of perDay renewals a day are still to come between now and the next
// midnight UTC, rounded up: the part of the day's budget that retries for a dead token leave for
// the renewals after it. perDay is RenewalsPerDay's count; any absurd value is bounded.
func RenewalsLeft(now time.Time, perDay int) int {
	if perDay <= 0 {
		return 0
	}
	left := NextMidnightUTC(now).Sub(now)
	n := math.Ceil(float64(perDay) * float64(left) / float64(24*time.Hour))
	return int(min(n, math.MaxInt32))
}

// RenewalsPerDay is how many requests a day tokens like this one need: one per renewal interval
// (from issue to RenewAt), rounded up; 0 when they are not renewed (never expiring without a max
// age) or the interval is not positive (a token expired when it was stored, which says nothing of
// the next).
func RenewalsPerDay(issuedAt time.Time, validTill *time.Time, renewBefore, maxAge time.Duration) int {
	at, renew := RenewAt(issuedAt, validTill, renewBefore, maxAge)
	every := at.Sub(issuedAt)
	if !renew || every <= 0 {
		return 0
	}
	return int((24*time.Hour + every - 1) / every)
}

// Backoff is a capped exponential backoff with jitter: after n consecutive failures the next
// attempt waits between half and all of min(Base*2^(n-1), Cap).
type Backoff struct {
	Base, Cap time.Duration
}

// DefaultBackoff suits Clear's token API: a first retry after 15-30 s, and no more than about one
// attempt an hour however long the outage, so that a failing client spends little of its daily
// request budget.
//
// Its base is 30 s in every release build. Like MinInterval, it can be lowered only at build time,
// for the Lambda's process tests that wait out a first backoff in real time (TestBackoffFlag); no
// configuration or environment can change it.
var DefaultBackoff = Backoff{Base: buildTime(testBackoffBase, 30*time.Second), Cap: time.Hour}

// testBackoffBase is set at build time only; see DefaultBackoff.
var testBackoffBase string

// TestBackoffFlag is the -ldflags value that builds a binary whose first backoff is 3-6 s instead
// of 15-30 s (a base of 6 s): long enough that a retry sent at once is still held back, short
// enough that a test waiting for the retry after it is not a minute long.
const TestBackoffFlag = "-X github.com/clear-rotator/clear-rotator/internal/timing.testBackoffBase=6s"

// Ceiling returns the longest wait after failures consecutive failures: min(Base*2^(n-1), Cap),
// without jitter; zero for failures < 1.
func (b Backoff) Ceiling(failures int) time.Duration {
	if failures < 1 {
		return 0
	}
	d := float64(b.Base) * math.Pow(2, float64(failures-1))
	if d > float64(b.Cap) || math.IsInf(d, 0) {
		d = float64(b.Cap)
	}
	return time.Duration(d)
}

// Delay returns the wait after failures consecutive failures (failures >= 1). r is a random number
// in [0, 1): the jitter that keeps several rotators from retrying in step.
func (b Backoff) Delay(failures int, r float64) time.Duration {
	if failures < 1 {
		return 0
	}
	d := float64(b.Ceiling(failures))
	if r < 0 {
		r = 0
	} else if r >= 1 {
		r = math.Nextafter(1, 0)
	}
	return time.Duration(d/2 + r*d/2)
}
