package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// HeaderKey carries the inbound key: what a caller shows to use the gateway. It is removed before
// the request goes to Clear, and never logged or echoed.
const HeaderKey = "x-clear-rotator-key"

// HeaderClient names the client a request is for; required when more than one is configured.
const HeaderClient = "x-clear-rotator-client"

// redacted is what a Key shows instead of itself: the one marker.
const redacted = secret.Marker

// Key is an inbound key. Like clear.ClientSecret it never formats, logs or marshals as its value;
// only its SHA-256 is held, so that comparing keys in constant time does not depend on their
// lengths, and the value itself is not kept in memory longer than it takes to hash it.
type Key struct {
	sum [sha256.Size]byte
	set bool
}

// NewKey wraps a key; the empty string gives the zero Key, which matches nothing.
func NewKey(s string) Key {
	if s == "" {
		return Key{}
	}
	return Key{sum: sha256.Sum256([]byte(s)), set: true}
}

// IsZero reports whether no key is held.
func (k Key) IsZero() bool { return !k.set }

// matches compares k with a presented value in constant time.
func (k Key) matches(presented string) bool {
	if !k.set || presented == "" {
		return false
	}
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(k.sum[:], sum[:]) == 1
}

func (k Key) String() string               { return redacted }
func (k Key) GoString() string             { return "gateway.Key(" + redacted + ")" }
func (k Key) Format(f fmt.State, _ rune)   { fmt.Fprint(f, redacted) }
func (k Key) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (k Key) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }
func (k Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Keys is the set of keys the gateway accepts: the current one, and the previous one until its
// grace ends, so that a key can be rotated without refusing the callers that have not yet read the
// new one. The zero Keys accepts nothing (and the gateway then asks for no key: see Options.Keys).
// It is safe for concurrent use.
type Keys struct {
	mu       sync.RWMutex
	current  Key
	previous Key
	until    time.Time // when previous stops being accepted
	now      func() time.Time
}

// NewKeys returns a set holding k; now is the clock (nil: time.Now).
func NewKeys(k Key, now func() time.Time) *Keys {
	if now == nil {
		now = time.Now
	}
	return &Keys{current: k, now: now}
}

// Set makes k the current key; the key it replaces is still accepted for grace.
func (s *Keys) Set(k Key, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k == s.current {
		return
	}
	s.previous, s.until = s.current, s.now().Add(grace)
	s.current = k
}

// Enabled reports whether a key is required.
func (s *Keys) Enabled() bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.current.IsZero()
}

// Accepts reports whether presented is the current key, or the previous one within its grace.
// Both comparisons always run, so that the time taken does not tell which key matched.
func (s *Keys) Accepts(presented string) bool {
	s.mu.RLock()
	cur, prev, until := s.current, s.previous, s.until
	s.mu.RUnlock()
	a := cur.matches(presented)
	b := prev.matches(presented) && s.now().Before(until)
	return a || b
}
