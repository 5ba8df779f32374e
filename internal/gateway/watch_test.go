package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestAHeldCallSeesATokenStoredAfterItsFirstLook: a standalone gateway (the token secret watched,
// as `rotator gateway` wires it) with one API client and a poll longer than the hold. Clear
// revokes the token, an ERP's call is refused, and the watcher's looks at once after the 401 come
// before the rotator has stored the newer token (Clear revokes first, the rotator stores a moment
// later: here a second after the first look, a slow write). The held call must still be replayed with the newer token within the hold, not wait for
// the next poll and get Clear's 401.
func TestAHeldCallSeesATokenStoredAfterItsFirstLook(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *gateway.Options) { o.Hold = 3 * time.Second })
	wt := &gateway.Watcher{Store: store.New(f.w.API), SecretID: f.w.TokenID, Changed: gateway.TokenFeed(f.h, nil, "erp"),
		Poll: 30 * time.Second, What: "token"}
	f.h.OnWait = wt.Nudge
	f.w.StoreToken(f.w.Issue())
	if _, err := wt.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go wt.Run(ctx)
	time.Sleep(300 * time.Millisecond) // past the watcher's first look and its gap

	tok2 := f.w.Issue() // Clear revoked the held token; the rotator stores tok2 after the gateway's look
	looks := f.w.API.Calls()["DescribeSecret"]
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		rig.Await(t, "the gateway's look after the 401", 5*time.Second, func() bool { return f.w.API.Calls()["DescribeSecret"] > looks })
		time.Sleep(time.Second) // a slow write: Secrets Manager has it a second after the look
		f.w.StoreToken(tok2)
	}()
	rec := f.do(httptest.NewRequest(http.MethodPost, "/v1/invoice", strings.NewReader(`{"invoice":1}`)))
	<-stored
	if rec.Code != http.StatusOK {
		t.Fatalf("the call refused during the rotation: status %d, body %s; want it replayed with the newer token", rec.Code, rec.Body)
	}
	if n := len(f.up.requests()); n != 2 {
		t.Errorf("%d upstream requests, want 2 (the refused one and its replay)", n)
	}
}

// A token secret that does not exist yet (a new deployment, before its first rotation) is said to
// be awaited, at info level: "cannot read ... keeping what was read before" warned of something
// expected, and of a past that never was (an audit's walk-through). Once something was read, a
// failure still warns.
func TestAWatchedSecretNotCreatedYetIsAwaited(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour})
	var logs bytes.Buffer
	wt := &gateway.Watcher{Store: store.New(w.API), SecretID: w.TokenID + "-new", Changed: func(store.Version) {},
		Log: slog.New(slog.NewTextHandler(&logs, nil)), What: "token"}
	if _, err := wt.Check(context.Background()); err == nil {
		t.Fatal("a secret that does not exist was read")
	}
	if out := logs.String(); strings.Contains(out, "WARN") || !strings.Contains(out, "does not exist yet") {
		t.Errorf("the log:\n%s", out)
	}
}
