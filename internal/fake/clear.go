package fake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// DefaultDailyLimit is Clear's limit of token requests per client secret and UTC day.
const DefaultDailyLimit = 288

// Fault is a one-shot misbehaviour of the token API, consumed by the next request that Clear would
// otherwise answer (a request with a wrong secret or over the daily limit does not consume one).
// Delay comes first; then Panic panics, Err fails the request without issuing a token, and anything
// else is a normal answer.
type Fault struct {
	// Delay holds the answer back. If the caller gives up first, nothing is issued and the request
	// fails as a transient timeout.
	Delay time.Duration
	// Err, if set, is the answer instead of a token.
	Err *clear.Error
	// Panic, if not nil, is panicked with: a bug in a token source must not take down the daemon.
	Panic any
}

// ServerError is Clear failing with a 500, which the engine retries with backoff.
func ServerError() *clear.Error {
	return &clear.Error{Kind: clear.KindTransient, Status: 500, Code: "CLR-500", Message: "internal server error", ErrorID: "fake-500"}
}

// Unauthorized is Clear refusing the client secret (CLI-SEC-002), which blocks the client until its
// configuration changes.
func Unauthorized() *clear.Error {
	return &clear.Error{Kind: clear.KindAuth, Status: 401, Code: "CLI-SEC-002", Message: "invalid client secret"}
}

// RateLimited is Clear's 429, which blocks the client secret until midnight UTC.
func RateLimited() *clear.Error {
	return &clear.Error{Kind: clear.KindRateLimited, Status: 429, Code: "CLI-RATE-001", Message: "too many requests"}
}

// Clear is an in-memory Clear token API for one client secret. Every issued token revokes the
// previous one; a token is valid for Lifetime from its issue (Lifetime <= 0: it never expires). A
// request with another secret gets a 401, and requests beyond the daily limit of a UTC day get a
// 429; both count against the day's limit, as Clear counts them. Set the fields before first use;
// the methods are safe for concurrent use.
type Clear struct {
	// Now is the clock; nil means time.Now (which a synctest bubble fakes).
	Now func() time.Time
	// Lifetime of issued tokens; zero or negative means they never expire.
	Lifetime time.Duration
	// Secret is the accepted client secret; empty accepts any.
	Secret string
	// DailyLimit is the number of requests allowed per UTC day; zero means DefaultDailyLimit.
	DailyLimit int

	mu       sync.Mutex
	faults   []Fault
	requests []time.Time
	day      string
	today    int
	issued   []Issue
	token    string
	expires  time.Time // zero: never
}

// Issue records one issued token.
type Issue struct {
	Token     string
	At        time.Time
	ValidTill *time.Time
}

// NewClear returns a fake accepting secret, issuing tokens valid for lifetime.
func NewClear(secret string, lifetime time.Duration) *Clear {
	return &Clear{Secret: secret, Lifetime: lifetime}
}

func (c *Clear) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Inject appends faults to the queue.
func (c *Clear) Inject(faults ...Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, faults...)
}

// Token implements rotation.TokenSource.
func (c *Clear) Token(ctx context.Context, secret clear.ClientSecret) (clear.Grant, error) {
	f, err := c.admit(secret)
	if err != nil {
		return clear.Grant{}, err
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return clear.Grant{}, &clear.Error{Kind: clear.KindTransient, Message: "fake: the caller gave up: " + ctx.Err().Error(), Err: ctx.Err()}
		}
	}
	if f.Panic != nil {
		panic(f.Panic)
	}
	if f.Err != nil {
		return clear.Grant{}, f.Err
	}
	return c.issue(), nil
}

// admit counts a request and decides whether Clear would answer it, taking the next fault if so.
func (c *Clear) admit(secret clear.ClientSecret) (Fault, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.requests = append(c.requests, now)
	if day := now.Format(time.DateOnly); day != c.day {
		c.day, c.today = day, 0
	}
	c.today++
	limit := c.DailyLimit
	if limit <= 0 {
		limit = DefaultDailyLimit
	}
	switch {
	case c.Secret != "" && secret.Reveal() != c.Secret:
		return Fault{}, &clear.Error{Kind: clear.KindAuth, Status: 401, Code: "CLI-SEC-001", Message: "unknown client secret"}
	case c.today > limit:
		return Fault{}, RateLimited()
	}
	var f Fault
	if len(c.faults) > 0 {
		f, c.faults = c.faults[0], c.faults[1:]
	}
	return f, nil
}

// issue mints a token, revoking the previous one.
func (c *Clear) issue() clear.Grant {
	var b [16]byte
	_, _ = rand.Read(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.token = fmt.Sprintf("1.fake-%d_%s", len(c.issued)+1, hex.EncodeToString(b[:]))
	c.expires = time.Time{}
	g := clear.Grant{AccessToken: clear.NewAccessToken(c.token)}
	if c.Lifetime > 0 {
		c.expires = now.Add(c.Lifetime)
		v := c.expires
		g.ValidTill = &v
	}
	c.issued = append(c.issued, Issue{Token: c.token, At: now, ValidTill: g.ValidTill})
	return g
}

// Live reports whether token is the latest one issued and has not expired.
func (c *Clear) Live(token string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return token != "" && token == c.token && (c.expires.IsZero() || c.now().Before(c.expires))
}

// Requests returns the number of requests made, whatever their answer.
func (c *Clear) Requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

// RequestTimes returns when each request arrived, oldest first.
func (c *Clear) RequestTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.requests...)
}

// Issued returns every token issued, oldest first.
func (c *Clear) Issued() []Issue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Issue(nil), c.issued...)
}
