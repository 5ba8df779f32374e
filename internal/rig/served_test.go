package rig_test

import (
	"context"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestRecordServedFindsTokensOfOtherCallers asks Clear for a token past the world's own clients,
// as a process does, and leaks it: only a world that records what Clear serves can tell.
func TestRecordServedFindsTokensOfOtherCallers(t *testing.T) {
	for _, served := range []bool{true, false} {
		tb := &recordingTB{TB: t}
		w := rig.New(tb, rig.Options{})
		if served {
			w.RecordServed()
		}
		cc, err := clear.NewClient(w.ClearURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		g, err := cc.Token(context.Background(), clear.NewClientSecret(w.Secrets[0]))
		if err != nil {
			t.Fatal(err)
		}
		w.Record("a process printed " + g.AccessToken.Reveal())
		for i := len(tb.cleanups) - 1; i >= 0; i-- {
			tb.cleanups[i]()
		}
		if got := len(tb.errs) > 0; got != served {
			t.Errorf("RecordServed %v: the scan reported %v", served, tb.errs)
		}
	}
}
