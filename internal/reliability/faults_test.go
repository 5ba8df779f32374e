package reliability

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// daemonTick is the schedule of the rotator that recovers in these tests: a daemon that looks
// every ten seconds.
const daemonTick = 10 * time.Second

// lostFault is a way to lose the token Clear just issued (issue 9, D1).
type lostFault string

const (
	// lostRefused: the token write is refused (AccessDenied, as with a missing permission or a
	// KMS key problem); the owner lives, knows, and releases its claim.
	lostRefused lostFault = "refused-write"
	// lostCrash: the owner dies between Clear's answer and the token write; nobody is told.
	lostCrash lostFault = "crash"
)

// lostTokenOutage is what one D1 run measured.
type lostTokenOutage struct {
	dead   time.Duration // from the request that revoked the token to the one that replaced it
	states map[rotation.Health]int
}

// measureLostToken seeds a one-hour token, starts a daemon-like rotator ticking every ten seconds
// (first tick at phase after the seed), and at the due time lets another rotator "a" make the due
// rotation and lose its token to fault. It returns how long AWSCURRENT held no live token, and the
// states status showed each second meanwhile. It runs inside a synctest bubble.
func measureLostToken(t *testing.T, clearTimeout time.Duration, fault lostFault, phase time.Duration) lostTokenOutage {
	w := newWorld(t, rig.Options{Lifetime: time.Hour})
	c := w.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	expect(t, engine(w, "seed", nil, clearTimeout).Rotate(ctx, c, false), rotation.Rotated)
	time.Sleep(phase)
	stopped := daemonLoop(ctx, engine(w, "daemon", nil, clearTimeout), c, daemonTick)
	defer func() { cancel(); <-stopped }()

	api := &procFaults{}
	api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
		if !isTokenWrite(in) {
			return false, nil
		}
		if fault == lostCrash {
			api.dead.Store(true)
			return false, errProcessDied
		}
		return false, apiError("AccessDeniedException")
	}
	time.Sleep(time.Until(start.Add(40 * time.Minute))) // due, between two of the daemon's ticks
	before := len(answered(w))
	aDone := make(chan rotation.Result, 1)
	go func() { aDone <- engine(w, "a", api.api(w), clearTimeout).Rotate(ctx, c, false) }()

	out := lostTokenOutage{states: map[rotation.Health]int{}}
	status := engine(w, "status", nil, clearTimeout)
	for {
		// Let every goroutine woken at this instant reach its next durable block first, before
		// anything is sampled: between Clear's answer and the refused write, the owner's claim is
		// rightly in flight, for no time on the bubble's clock; and the end condition read while
		// "a" runs could see the old token live, then Clear's answer to "a", and end the
		// measurement at the loss instead of the recovery (seen once under load: one request
		// "after the due time").
		synctest.Wait()
		if w.Live() && len(answered(w)) > before {
			break
		}
		if len(answered(w)) > before && !w.Live() {
			s, err := status.Status(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			out.states[s.State]++
			if s.State == rotation.HealthTokenLost && s.TokenLost == nil {
				t.Errorf("status says %s without token_lost details", s.State)
			}
		}
		if time.Since(start) > 3*time.Hour {
			t.Fatal("no live token three hours after the loss")
		}
		time.Sleep(time.Second)
	}
	res := <-aDone
	if res.Outcome != rotation.Failed || res.Status.State != rotation.HealthTokenLost {
		t.Errorf("the rotator that lost the token reports %s (state %s): %s", res.Outcome, res.Status.State, res.Message)
	}
	log := answered(w)[before:]
	if len(log) < 2 || log[0].Token == "" {
		t.Fatalf("Clear requests after the due time: %+v", log)
	}
	// The first request revoked the ERP's token; the last one stored its replacement.
	out.dead = log[len(log)-1].At.Sub(log[0].At)
	if len(log) != 2 {
		t.Errorf("%d Clear requests from the loss to recovery, want 2 (the lost one and its replacement)", len(log))
	}
	if tok, _ := current(w); tok.AccessToken.Reveal() != log[len(log)-1].Token {
		t.Error("AWSCURRENT does not hold the replacement token")
	}
	return out
}

// TestLostTokenIsReplacedWithinBound is issue 9's D1 in the suite. Clear answers a due rotation
// and revokes the ERP's token, and then the token is lost: its write is refused (AccessDenied), or
// its owner dies before writing it. Another rotator that looks every ten seconds must store a
// live token again within:
//
//   - refused write (the owner releases its claim and records the loss): one tick, whatever
//     CLEAR_TIMEOUT is, since the first retry after a loss is immediate (README);
//   - crash (nobody knows): the claim's lease, timing.Lease(CLEAR_TIMEOUT) = CLEAR_TIMEOUT + write
//     window + margin, plus one tick: at most a minute with CLEAR_TIMEOUT=5s.
//
// While the token is dead, status never says all is well: token-lost, or in-flight while a dead
// owner's lease runs (nobody can tell a dead owner from a slow one before its lease ends). The
// test sweeps the phase of the daemon's ticks against the loss and logs the worst outage, which
// BENCHMARKS.md reports.
func TestLostTokenIsReplacedWithinBound(t *testing.T) {
	for _, fault := range []lostFault{lostRefused, lostCrash} {
		for _, ct := range []time.Duration{5 * time.Second, 30 * time.Second} {
			t.Run(fmt.Sprintf("%s/clear-timeout-%s", fault, ct), func(t *testing.T) {
				bound := daemonTick
				if fault == lostCrash {
					bound = timing.Lease(ct) + daemonTick
				}
				var worst, best time.Duration
				for phase := 500 * time.Millisecond; phase < daemonTick; phase += time.Second {
					synctest.Test(t, func(t *testing.T) {
						o := measureLostToken(t, ct, fault, phase)
						if o.dead > bound {
							t.Errorf("phase %s: no live token for %s, more than %s", phase, o.dead, bound)
						}
						for h, n := range o.states {
							ok := h == rotation.HealthTokenLost || (fault == lostCrash && h == rotation.HealthInFlight)
							if !ok {
								t.Errorf("phase %s: status said %s %d times while the token was dead", phase, h, n)
							}
						}
						if fault == lostRefused && o.states[rotation.HealthTokenLost] == 0 {
							t.Errorf("phase %s: status never said token-lost", phase)
						}
						worst = max(worst, o.dead)
						if best == 0 || o.dead < best {
							best = o.dead
						}
					})
				}
				t.Logf("seconds without a live token: %.1f-%.1f (bound %s; daemon tick %s)", best.Seconds(), worst.Seconds(), bound, daemonTick)
				if ct == 5*time.Second && worst > time.Minute {
					t.Errorf("with CLEAR_TIMEOUT=5s the token was dead for %s, more than a minute", worst)
				}
			})
		}
	}
}

// TestBadValidTillCannotBurnTheBudget is issue 9's D2 in the suite. For a simulated day, a daemon
// that looks every ten seconds rotates against a Clear whose tokens arrive already expired
// (valid_till a minute in the past), carry the same valid_till in every answer, or live one
// second. The client's own limit is set to Clear's (288), so that only the rotator's spacing
// holds the requests down. Invariants: the day costs far less than the limit (a sixth of it); no
// two requests are closer than timing.MinInterval; every token Clear issued is stored (the one
// that arrives expired is the only one left), so AWSCURRENT always ends with the latest.
func TestBadValidTillCannotBurnTheBudget(t *testing.T) {
	cases := []struct {
		name  string
		opts  func(start time.Time) rig.Options
		setup func(*rig.World)
	}{
		{name: "past-valid-till", opts: func(time.Time) rig.Options { return rig.Options{Lifetime: time.Hour} },
			setup: func(w *rig.World) {
				for range 400 {
					w.Emu.Inject(emulator.PastValidTill())
				}
			}},
		{name: "fixed-valid-till", opts: func(start time.Time) rig.Options {
			return rig.Options{Lifetime: time.Hour, Emulator: emulator.Options{FixedValidTill: start.Add(2 * time.Hour)}}
		}},
		{name: "lifetime-1s", opts: func(time.Time) rig.Options { return rig.Options{Lifetime: time.Second} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := tc.opts(time.Now())
				o.DailyLimit = emulator.DefaultDailyLimit
				w := newWorld(t, o)
				if tc.setup != nil {
					tc.setup(w)
				}
				c := w.Client()
				ctx, cancel := context.WithCancel(context.Background())
				stopped := daemonLoop(ctx, engine(w, "daemon", nil, 0), c, daemonTick)
				defer func() { cancel(); <-stopped }()
				// Every stored token is the latest Clear issued, checked each minute, between the
				// daemon's ticks (never at the instant one runs, between Clear's answer and the write).
				time.Sleep(5 * time.Second)
				for range 24 * 60 {
					time.Sleep(time.Minute)
					if log := answered(w); len(log) > 0 {
						if tok, _ := current(w); tok.AccessToken.Reveal() != log[len(log)-1].Token {
							t.Fatalf("AWSCURRENT does not hold the latest token Clear issued (request %d)", len(log))
						}
					}
				}
				log := answered(w)
				for i := 1; i < len(log); i++ {
					if gap := log[i].At.Sub(log[i-1].At); gap < timing.MinInterval {
						t.Errorf("requests %d and %d were %s apart, less than %s", i, i+1, gap, timing.MinInterval)
					}
				}
				t.Logf("%d Clear requests in a day (Clear's limit %d)", len(log), emulator.DefaultDailyLimit)
				if len(log) > emulator.DefaultDailyLimit/6 {
					t.Errorf("%d requests in a day: a bad valid_till spends the budget", len(log))
				}
				s, err := engine(w, "status", nil, 0).Status(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				if s.LastError == nil {
					t.Error("status does not report the clock or Clear problem")
				}
			})
		})
	}
}

// abandonCase is a claim its living owner knows it abandoned (issue 9, D7).
type abandonCase struct {
	name string
	// arm installs the faults on the owner's Secrets Manager (and Clear).
	arm func(w *rig.World, api *procFaults)
	// released is whether the owner could write the release: then the next rotator proceeds at
	// its next tick; otherwise at the first tick after the claim's lease.
	released bool
}

func abandonCases() []abandonCase {
	return []abandonCase{
		{
			name: "claim-landed-answer-lost", released: true,
			arm: func(_ *rig.World, api *procFaults) {
				api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
					if isClaimBy(in, "a") {
						return true, apiError("InternalServiceError")
					}
					return false, nil
				}
			},
		},
		{
			name: "reread-failed", released: true,
			arm: func(_ *rig.World, api *procFaults) {
				var claimed atomic.Bool
				api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
					claimed.Store(claimed.Load() || isClaimBy(in, "a"))
					return false, nil
				}
				api.get = func(in *secretsmanager.GetSecretValueInput) error {
					if claimed.Load() && aws.ToString(in.VersionStage) == rotation.CurrentStage {
						return apiError("InternalServiceError")
					}
					return nil
				}
			},
		},
		{
			name: "reread-failed-release-unwritten",
			arm: func(_ *rig.World, api *procFaults) {
				var claimed atomic.Bool
				api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
					if claimed.Load() {
						return false, apiError("InternalServiceError")
					}
					claimed.Store(isClaimBy(in, "a"))
					return false, nil
				}
				api.get = func(in *secretsmanager.GetSecretValueInput) error {
					if claimed.Load() && aws.ToString(in.VersionStage) == rotation.CurrentStage {
						return apiError("InternalServiceError")
					}
					return nil
				}
			},
		},
		{
			name: "failure-record-unwritten",
			arm: func(w *rig.World, api *procFaults) {
				w.Emu.Inject(emulator.ServerError())
				var claimed atomic.Bool
				api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
					if claimed.Load() {
						return false, apiError("InternalServiceError")
					}
					claimed.Store(isClaimBy(in, "a"))
					return false, nil
				}
			},
		},
	}
}

// TestAbandonedClaimDoesNotHoldOthersBusy is issue 9's D7 in the suite. A rotator "a" claims a due
// rotation and then knows it gave the claim up: its claim landed but every answer was lost; its
// re-read of AWSCURRENT failed; or Clear failed and it could not write the failure record. It
// must not keep the other rotators busy for its lease when it can say so: a rotator that looks
// every ten seconds rotates at its next tick after "a" returns, or, when "a" could not write
// anything more, at its first tick after the claim's lease. In every case the due rotation ends
// with a live token in AWSCURRENT and costs Clear at most two requests.
func TestAbandonedClaimDoesNotHoldOthersBusy(t *testing.T) {
	const clearTimeout = 5 * time.Second
	for _, tc := range abandonCases() {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, rig.Options{Lifetime: time.Hour})
				c := w.Client()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				start := time.Now()
				expect(t, engine(w, "seed", nil, clearTimeout).Rotate(ctx, c, false), rotation.Rotated)
				time.Sleep(time.Second)
				stopped := daemonLoop(ctx, engine(w, "daemon", nil, clearTimeout), c, daemonTick)
				defer func() { cancel(); <-stopped }()

				api := &procFaults{}
				tc.arm(w, api)
				time.Sleep(time.Until(start.Add(40 * time.Minute)))
				claimAt := time.Now()
				before := len(answered(w))
				res := engine(w, "a", api.api(w), clearTimeout).Rotate(ctx, c, false)
				returned := time.Now()
				t.Logf("a: %s (%s)", res.Outcome, res.Message)
				if res.Outcome == rotation.Rotated {
					t.Fatal("the faulted rotator rotated")
				}
				for !w.Live() || len(answered(w)) == before || answered(w)[len(answered(w))-1].Token == "" {
					if time.Since(claimAt) > time.Hour {
						t.Fatal("no rotation within an hour of the abandoned claim")
					}
					time.Sleep(time.Second)
				}
				log := answered(w)[before:]
				recovered := log[len(log)-1].At
				bound := returned.Add(daemonTick)
				if !tc.released {
					bound = claimAt.Add(timing.Lease(clearTimeout) + daemonTick)
				}
				t.Logf("the next rotator asked Clear %s after the claim, %s after its owner gave up", recovered.Sub(claimAt), recovered.Sub(returned))
				if recovered.After(bound) {
					t.Errorf("the next rotation came %s after the abandoned claim; want by %s", recovered.Sub(claimAt), bound.Sub(claimAt))
				}
				if len(log) > 2 {
					t.Errorf("the due rotation cost %d Clear requests", len(log))
				}
			})
		})
	}
}
