package rotation

import (
	"math"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Metrics are a client's metric values, derived once from what the engine saw of it, for every
// shell: the daemon's Prometheus exposition and the Lambda's EMF lines only give them their names
// (which are each shell's contract) and format them. A value that is not known is nil, and the
// shells leave it out rather than show a false zero, which would clear an alarm on a client nobody
// could look at.
type Metrics struct {
	// Outcome is the attempt's outcome; "" for metrics of a status alone.
	Outcome Outcome
	// ExpiresAt is when the token in AWSCURRENT expires, and SecondsLeft how long that is from now
	// in whole seconds, never below zero; both nil when there is no token or it never expires, so
	// that a never-expiring token does not read as one about to expire.
	ExpiresAt   *time.Time
	SecondsLeft *float64
	// IssuedAt is when the token in AWSCURRENT was issued.
	IssuedAt *time.Time
	// RequestsToday is today's (UTC) count of requests across the API clients, and PerAPIClient
	// each API client's; unknown when the count was not read, or was read on another UTC day,
	// which says nothing of today's.
	RequestsToday *int
	PerAPIClient  []APIClientRequests
	// DailyLimit is the limit of requests per API client and UTC day.
	DailyLimit int
	// Blocked, Degraded and TokenLost are nil when the client could not be read.
	Blocked, Degraded, TokenLost *bool
}

// APIClientRequests is one API client's count of today's requests.
type APIClientRequests struct {
	APIClient, Requests int
}

// Metrics derives the metric values of the client whose status s was read at readAt, as they
// stand at now.
func (s Status) Metrics(readAt, now time.Time) Metrics {
	m := Metrics{ExpiresAt: s.ValidTill, IssuedAt: s.IssuedAt, DailyLimit: s.DailyLimit}
	if s.ValidTill != nil {
		left := math.Max(0, math.Floor(s.ValidTill.Sub(now).Seconds()))
		m.SecondsLeft = &left
	}
	if timing.Day(readAt) == timing.Day(now) {
		m.RequestsToday = s.RequestsToday
		for _, v := range s.APIClients {
			if v.RequestsToday != nil {
				m.PerAPIClient = append(m.PerAPIClient, APIClientRequests{APIClient: v.Slot, Requests: *v.RequestsToday})
			}
		}
	}
	blocked, degraded, lost := s.BlockedReason != nil, s.IsDegraded(), s.Lost()
	m.Blocked, m.Degraded, m.TokenLost = &blocked, &degraded, &lost
	return m
}

// Metrics derives the metric values of an attempt at now: its outcome, and those of the status
// after it, which counts the attempt's own request. When Secrets Manager could not be read, the
// flags are unknown.
func (r Result) Metrics(now time.Time) Metrics {
	m := r.Status.Metrics(now, now)
	m.Outcome = r.Outcome
	if r.ReadErr != nil {
		m.Blocked, m.Degraded, m.TokenLost = nil, nil, nil
	}
	return m
}
