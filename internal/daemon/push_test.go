package daemon

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// The daemon's push delivery names the reason of each stored token from the results it has seen
// through Options.OnResult: a token replacing one that was expired (or missing, or lost) at the
// previous check is healed, the next due one scheduled, an asked-for one forced; a result that
// stored nothing is told to nobody, and nothing is told when nothing is configured (issue 18).
func TestPushReasonFromThePreviousResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("hourly", time.Hour, 48)
		a := h.app(c)
		p := NewPush(a)
		stored := func(forced bool) *rotation.Stored {
			return &rotation.Stored{VersionID: "v-" + time.Now().String(), Forced: forced}
		}
		ctx := context.Background()
		if _, _, ok := p.event(ctx, c, rotation.Result{Status: rotation.Status{State: rotation.HealthOK}, Stored: stored(false)}); ok {
			t.Fatal("an event without push delivery configured")
		}
		a.Config.Notify.HookCommand = []string{"true"}

		steps := []struct {
			r    rotation.Result
			want notify.Reason // "" when nothing is told
		}{
			{rotation.Result{Status: rotation.Status{State: rotation.HealthExpired}}, ""},
			{rotation.Result{Status: rotation.Status{State: rotation.HealthOK}, Stored: stored(false)}, notify.Healed},
			{rotation.Result{Status: rotation.Status{State: rotation.HealthOK}, Stored: stored(false)}, notify.Scheduled},
			{rotation.Result{Status: rotation.Status{State: rotation.HealthOK}, Stored: stored(true)}, notify.Forced},
			{rotation.Result{Status: rotation.Status{State: rotation.HealthTokenLost}}, ""},
			{rotation.Result{Status: rotation.Status{State: rotation.HealthOK}, Stored: stored(true)}, notify.Forced},
		}
		for i, s := range steps {
			_, ev, ok := p.event(ctx, c, s.r)
			switch {
			case s.want == "" && ok:
				t.Fatalf("step %d: told %+v of a result that stored nothing", i, ev)
			case s.want != "" && (!ok || ev.Reason != s.want):
				t.Fatalf("step %d: told %v (reason %q), want reason %q", i, ok, ev.Reason, s.want)
			}
		}
	})
}
