package bench

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/reliability"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// BenchmarkCallCost counts, per client, the Secrets Manager calls (the rig's count, on the real
// SDK client against moto) and the secret versions written by each kind of engine call:
// the first rotation (which creates the secret), an idle check of a token that is not due, a due
// rotation, a failed one (Clear answers 500), and a check while another rotator holds the claim.
// The naive baseline's tick is one PutSecretValue and one version, every tick.
func BenchmarkCallCost(b *testing.B) {
	clk := fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	w := rig.New(b, rig.Options{Clock: clk, Lifetime: time.Hour, DailyLimit: 250})
	client, emu, secret := w.Client(), w.Emu, w.Secrets[0]
	versions := func() int {
		out, err := w.Moto.Client().ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(w.TokenID), IncludeDeprecated: aws.Bool(true)})
		if err != nil {
			return 0
		}
		return len(out.Versions)
	}
	otherDone := make(chan rotation.Result, 1)
	type step struct {
		name  string
		setup func()
		want  rotation.Outcome
		owner string
	}
	steps := []step{
		{name: "first-rotation", want: rotation.Rotated},
		{name: "idle-check", setup: func() { clk.Advance(10 * time.Minute) }, want: rotation.NotDue},
		{name: "due-rotation", setup: func() { clk.Advance(35 * time.Minute) }, want: rotation.Rotated},
		{name: "failed-rotation", setup: func() { clk.Advance(45 * time.Minute); emu.Inject(emulator.Fault{Status: 500}) }, want: rotation.Failed},
		{name: "backing-off", want: rotation.Blocked},
		{name: "busy", setup: func() {
			// Past the backoff, another rotator claims and waits for a slow Clear answer.
			clk.Advance(2 * time.Minute)
			emu.Inject(emulator.Fault{Delay: 2 * time.Second})
			before := emu.Requests(secret)
			go func() { otherDone <- w.Engine("other").Rotate(context.Background(), client, false) }()
			for emu.Requests(secret) == before {
				time.Sleep(5 * time.Millisecond)
			}
		}, want: rotation.Busy, owner: "third"},
	}
	results := map[string][2]int{}
	for range b.N {
		for _, s := range steps {
			if s.setup != nil {
				s.setup()
			}
			w.API.TakeCalls()
			before := versions()
			owner := s.owner
			if owner == "" {
				owner = "bench"
			}
			r := w.Engine(owner).Rotate(context.Background(), client, false)
			if r.Outcome != s.want {
				b.Fatalf("%s: outcome %s (%s), want %s", s.name, r.Outcome, r.Message, s.want)
			}
			calls, byOp := w.API.TakeCalls()
			results[s.name] = [2]int{calls, versions() - before}
			b.Logf("%-16s %d calls %v, %d versions", s.name, calls, byOp, versions()-before)
		}
		if r := <-otherDone; r.Outcome != rotation.Rotated {
			b.Fatalf("the other rotator: %s: %s", r.Outcome, r.Message)
		}
	}
	for _, s := range steps {
		b.ReportMetric(float64(results[s.name][0]), s.name+"-calls")
		b.ReportMetric(float64(results[s.name][1]), s.name+"-versions")
	}

	// The daemon asks the engine only once a client's NextCheck has come (and at least hourly): a
	// tick with nothing due makes no call. Count it over a simulated day of the engine loop the
	// daemon implements, on the in-memory store.
	rep := reliability.Simulate(context.Background(), reliability.SimConfig{
		Clock: reliability.NewVirtualClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)), Days: 1,
		Lifetime: 24 * time.Hour, Processes: 1, Seed: 1,
	})
	calls := 0
	for _, n := range rep.StoreCalls {
		calls += n
	}
	b.Logf("cached engine loop, one client, 24h tokens, one day of 5-minute ticks: %d ticks, %d Clear requests, %d Secrets Manager calls %v",
		rep.Ticks, rep.Requests, calls, rep.StoreCalls)
	b.ReportMetric(float64(calls)/float64(rep.Ticks), "cached-calls/tick")
}
