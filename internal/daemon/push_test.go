package daemon

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

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
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.API.DescribeSecret(ctx, in, o...)
}

// gatedPush starts the push delivery of a daemon without the push settings, for one client whose
// Secrets Manager holds every DescribeSecret until the gate is released.
func gatedPush(t *testing.T) (*Push, *rotation.Client, *describeGate) {
	t.Helper()
	h := newHarness(t, "@every 5m")
	c := h.client("hourly", time.Hour, 48)
	a := h.app(c)
	gate := &describeGate{API: h.base.SM, release: make(chan struct{})}
	a.Store = store.New(gate)
	p := NewPush(a)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p, c, gate
}

// A daemon without the push settings, which only records what it does not tell (app.App.Untold),
// makes that record off the check's path: its check had waited for one or two DescribeSecret calls
// after each token stored (review 5's F6), and with them every client's next check.
func TestPushRecordsWhatItDoesNotTellOffTheChecksPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, gate := gatedPush(t)
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

// seqGate holds, once armed, each of the next DescribeSecret calls until its own channel closes.
type seqGate struct {
	store.API
	mu    sync.Mutex
	holds []chan struct{}
}

func (g *seqGate) arm(n int) []chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holds = nil
	for range n {
		g.holds = append(g.holds, make(chan struct{}))
	}
	return append([]chan struct{}(nil), g.holds...)
}

func (g *seqGate) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	g.mu.Lock()
	var ch chan struct{}
	if len(g.holds) > 0 {
		ch, g.holds = g.holds[0], g.holds[1:]
	}
	g.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.API.DescribeSecret(ctx, in, o...)
}

// recordUndelivered writes what a process that did not deliver version of kind writes on the
// token secret id.
func recordUndelivered(t *testing.T, h *harness, id, kind, version string) {
	t.Helper()
	recordValue(t, h, id, kind, "version "+version+" at 2000-01-01T00:00:00Z reason forced")
}

func recordValue(t *testing.T, h *harness, id, kind, value string) {
	t.Helper()
	tg := h.base.SM.(interface {
		TagResource(context.Context, *secretsmanager.TagResourceInput, ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error)
	})
	if _, err := tg.TagResource(context.Background(), &secretsmanager.TagResourceInput{SecretId: aws.String(id), Tags: []types.Tag{
		{Key: aws.String(app.UndeliveredTagPrefix + kind), Value: aws.String(value)},
		{Key: aws.String(app.PushMarkPrefix + kind), Value: aws.String("told")},
	}}); err != nil {
		t.Fatal(err)
	}
}

// A reload while a check's look reads the record: the record is delivered with the configuration
// the reload loaded, not the one it replaced. The look had posted with the replaced one, and the
// reload's own resume then found the client busy, so that "fix the hook, then SIGHUP" ran the
// broken hook again (the review of the looks, finding 2).
func TestPushALookDoesNotOutliveAReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("hourly", time.Hour, 48)
		version := h.worlds["hourly"].StoreToken("tok-0123456789-abcdefghij")
		gate := &seqGate{API: h.base.SM}
		withHook := func(hook string) *app.App {
			a := h.app(c)
			cfg := *a.Config
			cfg.Notify.HookCommand = []string{hook}
			a.Config, a.Store = &cfg, store.New(gate)
			return a
		}
		p := NewPush(withHook("/nonexistent/hook-OLD"))
		opts := Options{Load: func(context.Context) (*app.App, error) { return withHook("/nonexistent/hook-NEW"), nil }}
		p.Wire(&opts)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		recordUndelivered(t, h, c.TokenSecretID, "hook", version)
		holds := gate.arm(2)
		p.OnResult(context.Background(), c, rotation.Result{}) // a check that stored nothing: a look
		synctest.Wait()
		if _, err := opts.Load(context.Background()); err != nil { // SIGHUP, with the hook fixed
			t.Fatal(err)
		}
		synctest.Wait()
		close(holds[0]) // the look's read answers first
		synctest.Wait()
		close(holds[1]) // then the reload's resume's
		synctest.Wait()
		_ = p.Stop(context.Background())
		if logs := h.logs.String(); strings.Contains(logs, "hook-OLD") || !strings.Contains(logs, "hook-NEW") {
			t.Errorf("the replaced hook ran (%v), the reloaded one did not (%v)", strings.Contains(logs, "hook-OLD"), !strings.Contains(logs, "hook-NEW"))
		}
	})
}

// Stop gives up when its context ends, though a record of what is not told is still waiting for
// Secrets Manager: it had waited for it past its context (30 s here), and the deliveries still
// retrying lost the time the context gave them (finding 3).
func TestPushStopKeepsToItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, c, gate := gatedPush(t)
		p.OnResult(context.Background(), c, rotation.Result{Stored: &rotation.Stored{VersionID: "v1"}})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_ = p.Stop(ctx)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Stop took %s with a context of 2s", took)
		}
		close(gate.release)
		synctest.Wait()
	})
}

// hookPush starts the push delivery of a daemon with a hook that cannot run, for one client whose
// token secret holds a token (its version is returned).
func hookPush(t *testing.T) (*harness, *rotation.Client, string, *app.App, *Push) {
	t.Helper()
	h := newHarness(t, "@every 5m")
	c := h.client("hourly", time.Hour, 48)
	version := h.worlds["hourly"].StoreToken("tok-0123456789-abcdefghij")
	a := h.app(c)
	cfg := *a.Config
	cfg.Notify.HookCommand = []string{"/nonexistent/hook"}
	a.Config, a.Store = &cfg, store.New(h.base.SM)
	p := NewPush(a)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	return h, c, version, a, p
}

// A check's look leaves to a replica the delivery it records as failing and goes on retrying, for
// app.RetryingTrust: with two replicas both had retried every failing delivery (the review of the
// looks, finding 1). Past it, the retrier is taken for gone.
func TestPushALookLeavesADeliveryAReplicaRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, c, version, _, p := hookPush(t)
		at := func(d time.Time) string { return d.UTC().Format(time.RFC3339) }
		recordValue(t, h, c.TokenSecretID, "hook", "version "+version+" at "+at(time.Now())+" reason scheduled retrying")
		p.OnResult(context.Background(), c, rotation.Result{})
		synctest.Wait()
		if strings.Contains(h.logs.String(), "resuming a delivery") {
			t.Fatal("a look resumed a delivery a replica goes on retrying")
		}
		recordValue(t, h, c.TokenSecretID, "hook", "version "+version+" at "+at(time.Now().Add(-2*app.RetryingTrust))+" reason scheduled retrying")
		p.OnResult(context.Background(), c, rotation.Result{})
		synctest.Wait()
		if !strings.Contains(h.logs.String(), "resuming a delivery") {
			t.Fatal("a look left a delivery whose retrier has been silent for longer than RetryingTrust")
		}
		_ = p.Stop(context.Background())
	})
}

// A look costs nothing when the check it follows found no record on the token secret: the
// check's own DescribeSecret has the tags. It had doubled a push daemon's DescribeSecret calls (the
// review of the looks, finding 5). A record the check found is looked at, and resumed.
func TestPushALookReadsOnlyWhenTheCheckFoundARecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, c, version, a, p := hookPush(t)
		fake := h.base.Fake
		check := func() { // the engine's read of the token secret in a check, then the hooks
			if _, err := a.Store.Stages(context.Background(), c.TokenSecretID); err != nil {
				t.Fatal(err)
			}
			p.OnResult(context.Background(), c, rotation.Result{})
			synctest.Wait()
		}
		before := fake.Calls()["DescribeSecret"]
		check()
		if n := fake.Calls()["DescribeSecret"] - before; n != 1 {
			t.Fatalf("a check and its look with nothing recorded made %d DescribeSecret calls, want the check's 1", n)
		}
		recordUndelivered(t, h, c.TokenSecretID, "hook", version)
		check()
		if !strings.Contains(h.logs.String(), "resuming a delivery") {
			t.Fatal("a record the check found was not resumed")
		}
		_ = p.Stop(context.Background())
	})
}
