package daemon

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
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

// A reload that stops telling a client (its webhook or hook removed) also stops counting that
// client's undelivered token as failing: clear_rotator_delivery_failing, and the alert on it, would
// otherwise stay up until the daemon restarts, since no delivery of that kind will ever succeed.
func TestPushReloadForgetsWhatItNoLongerTells(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("hourly", time.Hour, 48)
		a := h.app(c)
		a.Config.Notify.HookCommand = []string{"/nonexistent/hook"} // refused at once: failing
		p := NewPush(a)
		cfg2 := *a.Config
		cfg2.Notify.HookCommand = nil
		a2 := h.app(c)
		a2.Config = &cfg2
		opts := Options{Load: func(context.Context) (*app.App, error) { return a2, nil }}
		p.Wire(&opts)

		p.OnResult(context.Background(), c, rotation.Result{Stored: &rotation.Stored{VersionID: "v1"}})
		for len(p.stats.Snapshot()) == 0 || !p.stats.Snapshot()[0].Failing {
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := opts.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		var m bytes.Buffer
		p.WriteMetrics(&m)
		if strings.Contains(m.String(), `clear_rotator_delivery_failing{client="hourly",kind="hook"} 1`) {
			t.Fatalf("the hook the reload removed still counts as failing:\n%s", m.String())
		}
	})
}

// describeGate holds every DescribeSecret until released: a Secrets Manager slow to answer.
type describeGate struct {
	store.API
	release chan struct{}
}

func (g *describeGate) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	<-g.release
	return g.API.DescribeSecret(ctx, in, o...)
}

// A daemon without the push settings, which only records what it does not tell (app.App.Untold),
// makes that record off the check's path: its check had waited for one or two DescribeSecret calls
// after each token stored (review 5's F6), and with them every client's next check.
func TestPushRecordsWhatItDoesNotTellOffTheChecksPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("hourly", time.Hour, 48)
		a := h.app(c)
		gate := &describeGate{API: h.base.SM, release: make(chan struct{})}
		a.Store = store.New(gate)
		p := NewPush(a)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		returned := make(chan struct{})
		go func() {
			p.OnResult(context.Background(), c, rotation.Result{Stored: &rotation.Stored{VersionID: "v1"}})
			close(returned)
		}()
		synctest.Wait()
		select {
		case <-returned:
		default:
			t.Error("OnResult waits for DescribeSecret")
		}
		close(gate.release)
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-returned
	})
}
