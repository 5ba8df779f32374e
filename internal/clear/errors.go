package clear

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Kind classifies a failed token request by what the caller should do next.
type Kind int

const (
	// KindTransient covers 5xx and 408 answers, timeouts and network failures: retry with backoff.
	KindTransient Kind = iota + 1
	// KindMalformed is a 200 answer that is not a valid token document. Clear may have issued
	// (and revoked the previous) token, so it is retried with backoff, but never stored.
	KindMalformed
	// KindAuth is a 401 (CLI-SEC-001, -002 or -003): permanent until the configuration changes.
	KindAuth
	// KindRateLimited is a 429: Clear refuses this client secret until midnight UTC, or for
	// Error.RetryAfter when the answer says so.
	KindRateLimited
	// KindRejected is any other answer (a redirect, another 4xx): permanent, the request is wrong.
	KindRejected
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindMalformed:
		return "malformed"
	case KindAuth:
		return "unauthorized"
	case KindRateLimited:
		return "rate-limited"
	case KindRejected:
		return "rejected"
	}
	return "unknown"
}

// Error is a failed token request. Its text never holds the client secret or a token.
type Error struct {
	Kind Kind
	// Status is the HTTP status, or 0 when no answer arrived.
	Status int
	// Code, Message and ErrorID come from Clear's error details object, sanitized, with the
	// client secret redacted.
	Code, Message, ErrorID string
	// RetryAfter is the wait a 429 or 503 answer's Retry-After header asked for (see
	// ParseRetryAfter), or 0 when it gave none that made sense.
	RetryAfter time.Duration
	// Err is the underlying transport error, if any.
	Err error
	// Unsent is true when the request never left (no connection, a failed TLS handshake): Clear
	// cannot have issued anything.
	Unsent bool
}

// MayHaveIssued reports whether Clear may have issued a token, revoking the previous one of the
// client secret, though the request failed: its answer was not a token that could be read (a 200
// that is not one, a 5xx after the work was done), or never came after the request left. A refusal
// (401, another 4xx, 429, a 408) issued nothing, nor did a request that never left.
func (e *Error) MayHaveIssued() bool {
	switch e.Kind {
	case KindMalformed:
		return true
	case KindTransient:
		return !e.Unsent && e.Status != http.StatusRequestTimeout
	}
	return false
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("clear: ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.Status)
	}
	if e.Code != "" {
		b.WriteString(e.Code + " ")
	}
	b.WriteString(e.Kind.String())
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.ErrorID != "" {
		b.WriteString(" (error_id " + e.ErrorID + ")")
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying the same request cannot succeed until something outside the
// rotator changes (the client secret, the IP allowlist, the base URL).
func (e *Error) Permanent() bool { return e.Kind == KindAuth || e.Kind == KindRejected }
