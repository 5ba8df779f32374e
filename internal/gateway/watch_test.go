package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// The watcher reads a value only when AWSCURRENT's version changed: an idle look is one
// DescribeSecret.
func TestWatcherReadsOnlyChangedVersions(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour})
	tok := w.Issue()
	v1 := w.StoreToken(tok)
	h := &gateway.Holder{}
	wt := &gateway.Watcher{Store: store.New(w.API), SecretID: w.TokenID, Changed: gateway.TokenFeed(h, w.Logger(), "erp"), What: "token"}
	ctx := context.Background()
	w.API.TakeCalls()
	if id, err := wt.Check(ctx); err != nil || id != v1 {
		t.Fatalf("check: %q %v", id, err)
	}
	if got, ok := h.Current(); !ok || got.Version != v1 || got.Value.Reveal() != tok {
		t.Fatalf("holder has %v %v", got.Version, ok)
	}
	w.API.TakeCalls()
	for range 3 {
		if _, err := wt.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, by := w.API.TakeCalls(); n != 3 || by["DescribeSecret"] != 3 {
		t.Fatalf("idle looks made %d calls (%v), want 3 DescribeSecret", n, by)
	}
	v2 := w.StoreToken(w.Issue())
	if id, _ := wt.Check(ctx); id != v2 {
		t.Fatalf("check after a rotation: %q, want %q", id, v2)
	}
	if got, _ := h.Current(); got.Version != v2 {
		t.Fatal("the holder did not get the new version")
	}
}

// Newer nudges the watcher, so a waiting request does not wait for the next poll.
func TestNewerNudgesTheWatcher(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour})
	v1 := w.StoreToken(w.Issue())
	h := &gateway.Holder{}
	wt := &gateway.Watcher{Store: store.New(w.API), SecretID: w.TokenID, Changed: gateway.TokenFeed(h, nil, "erp"), Poll: time.Hour, What: "token"}
	h.OnWait = wt.Nudge
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go wt.Run(ctx)
	rig.Await(t, "the first token", 5*time.Second, func() bool { _, ok := h.Current(); return ok })
	v2 := w.StoreToken(w.Issue())
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	got, ok := h.Newer(wctx, v1)
	if !ok || got.Version != v2 {
		t.Fatalf("Newer: %v %q, want %q", ok, got.Version, v2)
	}
}

// TestKeyFeedRefusesAShortKey: a key read from Secrets Manager obeys the rule a configured one
// does (at least 16 characters, nothing a header cannot carry): a secret changed to "abc" keeps
// the previous key in service rather than opening the gateway to a guessable one.
func TestKeyFeedRefusesAShortKey(t *testing.T) {
	const first = "first-key-0123456789"
	keys := gateway.NewKeys(gateway.Key{}, nil)
	feed := gateway.KeyFeed(keys, 0, nil)
	feed(store.Version{ID: "v1", Value: first})
	for _, bad := range []string{"abc", "short-key-15chr", "a-key-of-16-chars\x01"} {
		feed(store.Version{ID: "v2", Value: bad})
		if keys.Accepts(bad) || !keys.Accepts(first) {
			t.Errorf("after a stored key %q: accepts it %v, the previous one %v", bad, keys.Accepts(bad), keys.Accepts(first))
		}
	}
	empty := gateway.NewKeys(gateway.Key{}, nil)
	gateway.KeyFeed(empty, 0, nil)(store.Version{ID: "v1", Value: "abc"})
	if empty.Enabled() {
		t.Error("a short stored key enabled the key check with it")
	}
}
