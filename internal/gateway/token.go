package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// Token is what the gateway sends to Clear for one client: the access token and the Secrets
// Manager version that holds it. The version names the token in logs, metrics and events, since
// the token itself may never appear there.
type Token struct {
	Value   clear.AccessToken
	Version string
	// ValidTill is nil for a token that never expires.
	ValidTill *time.Time
}

// Live reports whether t may be sent at now: it is set and not expired.
func (t Token) Live(now time.Time) bool {
	return !t.Value.IsZero() && (t.ValidTill == nil || now.Before(*t.ValidTill))
}

// Source is where the gateway gets one client's token. It is fed by the daemon (embedded) or by
// a watcher of the token secret (standalone); Holder is both's implementation.
type Source interface {
	// Current returns the token now held; false when none has been seen yet.
	Current() (Token, bool)
	// Newer waits until the source holds a token of another version than version, and returns
	// it; false when ctx ends first. It may ask the feeder to look now (see Holder.OnWait).
	Newer(ctx context.Context, version string) (Token, bool)
}

// Holder holds one client's latest token and wakes those waiting for a newer one. It is safe for
// concurrent use; its zero value holds nothing.
type Holder struct {
	mu      sync.Mutex
	tok     Token
	has     bool
	changed chan struct{} // closed and replaced at every change
	// past are the versions most recently moved on from, newest last: a read that began before a
	// newer token was stored may still bring one back, with one API client a token Clear revoked.
	past []string
	// OnWait, when set, is called (without the lock) by Newer before it waits, and again while it
	// waits (after nudgeFirst, then at doubling gaps up to nudgeMax), so that a watcher looks at
	// the secret at once rather than at its next poll, and again until the newer token is there:
	// Clear revokes a token before the rotator has stored its successor, so the first look can
	// come too early. It must not block.
	OnWait func()
}

// The gaps between a waiting Newer's calls of OnWait: a rotator stores the newer token
// milliseconds after Clear issued it, a slow Secrets Manager a second or more later, and a held
// call must see it within the hold whatever the poll (the watcher's own gap bounds the looks
// however many calls wait).
const (
	nudgeFirst = 250 * time.Millisecond
	nudgeMax   = time.Second
)

// maxPast bounds Holder.past: a late read is at most a poll old, and a poll sees few rotations.
const maxPast = 8

// Set stores t if its version differs from the one held and is not one held before it, and wakes
// the waiters.
func (h *Holder) Set(t Token) {
	if t.Value.IsZero() || t.Version == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.has && h.tok.Version == t.Version && h.tok.Value == t.Value || slices.Contains(h.past, t.Version) {
		return
	}
	if h.has && h.tok.Version != t.Version {
		if len(h.past) == maxPast {
			h.past = slices.Delete(h.past, 0, 1)
		}
		h.past = append(h.past, h.tok.Version)
	}
	h.tok, h.has = t, true
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
}

// Current implements Source.
func (h *Holder) Current() (Token, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tok, h.has
}

// Newer implements Source.
func (h *Holder) Newer(ctx context.Context, version string) (Token, bool) {
	nudge := h.OnWait
	if nudge == nil {
		tok, ok, _ := h.wait(ctx, version, nil)
		return tok, ok
	}
	nudge()
	gap := nudgeFirst
	t := time.NewTimer(gap)
	defer t.Stop()
	for {
		tok, ok, done := h.wait(ctx, version, t.C)
		if done {
			return tok, ok
		}
		nudge()
		gap = min(2*gap, nudgeMax)
		t.Reset(gap)
	}
}

// wait waits until the holder holds a token of another version than version (returned with true),
// ctx ends (false), or again is ready (done false: the caller nudges and waits again).
func (h *Holder) wait(ctx context.Context, version string, again <-chan time.Time) (t Token, ok, done bool) {
	for {
		h.mu.Lock()
		if h.has && h.tok.Version != version {
			t := h.tok
			h.mu.Unlock()
			return t, true, true
		}
		if h.changed == nil {
			h.changed = make(chan struct{})
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-again:
			return Token{}, false, false
		case <-ctx.Done():
			return Token{}, false, true
		}
	}
}
