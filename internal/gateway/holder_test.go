package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

func TestHolder(t *testing.T) {
	t.Parallel()
	h := &gateway.Holder{}
	if _, ok := h.Current(); ok {
		t.Fatal("an empty holder holds a token")
	}
	nudges := 0
	h.OnWait = func() { nudges++ }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, ok := h.Newer(ctx, ""); ok || nudges != 1 {
		t.Fatalf("Newer on an empty holder: %v, %d nudges", ok, nudges)
	}
	h.Set(gateway.Token{Value: clear.NewAccessToken("tok-1"), Version: ""}) // no version: ignored
	h.Set(gateway.Token{Version: "v0"})                                     // no token: ignored
	if _, ok := h.Current(); ok {
		t.Fatal("a token without a version or value was held")
	}
	done := make(chan gateway.Token)
	go func() { t, _ := h.Newer(context.Background(), "v1"); done <- t }()
	h.Set(gateway.Token{Value: clear.NewAccessToken("tok-1"), Version: "v1"}) // the version waited past
	h.Set(gateway.Token{Value: clear.NewAccessToken("tok-2"), Version: "v2"})
	select {
	case got := <-done:
		if got.Version != "v2" {
			t.Fatalf("Newer returned %s", got.Version)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Newer did not wake")
	}
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Second)
	for _, tc := range []struct {
		tok  gateway.Token
		live bool
	}{
		{gateway.Token{}, false},
		{gateway.Token{Value: clear.NewAccessToken("t")}, true},
		{gateway.Token{Value: clear.NewAccessToken("t"), ValidTill: &past}, false},
		{gateway.Token{Value: clear.NewAccessToken("t"), ValidTill: &now}, false},
		{gateway.Token{Value: clear.NewAccessToken("t"), ValidTill: &future}, true},
	} {
		if got := tc.tok.Live(now); got != tc.live {
			t.Errorf("Live(%v) = %v", tc.tok.ValidTill, got)
		}
	}
}

func TestHolderNeverGoesBackToAReplacedVersion(t *testing.T) {
	// A watcher's read of the token secret that began before a rotation stored its token (handed
	// over at once by Stored) may finish after it, with the version just replaced: with one API
	// client a token Clear has revoked. Taken, every call is sent with it until the next poll; a
	// replayable call recovers, a streamed one fails. The holder never goes back to a version it
	// has moved on from.
	t.Parallel()
	h := &gateway.Holder{}
	v1 := gateway.Token{Value: clear.NewAccessToken("tok-1"), Version: "v1"}
	v2 := gateway.Token{Value: clear.NewAccessToken("tok-2"), Version: "v2"}
	h.Set(v1)
	h.Set(v2) // Stored
	h.Set(v1) // the watcher's late read
	if got, _ := h.Current(); got.Version != "v2" {
		t.Fatalf("the holder went back to %s after v2 replaced it", got.Version)
	}
	h.Set(v2)
	v3 := gateway.Token{Value: clear.NewAccessToken("tok-3"), Version: "v3"}
	h.Set(v3)
	if got, _ := h.Current(); got.Version != "v3" {
		t.Fatalf("a new version was not taken: %s", got.Version)
	}
}
