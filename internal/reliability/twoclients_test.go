package reliability

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// checkSlotCounts asserts issue 10's per-API-client count invariant: for each API client, the
// state's count for today equals the requests Clear received with that client secret today plus
// lost[slot], the claims for that API client that never reached Clear. The slot of each
// fingerprint in the state is learnt from the claims recorded in the state's versions.
func checkSlotCounts(t *testing.T, w *rig.World, lost map[int]int) {
	t.Helper()
	slotOf := map[string]int{}
	for _, v := range w.Versions() {
		if st, err := document.ParseState([]byte(v.Value)); err == nil && st.Claim != nil && st.Claim.Secret != "" {
			slotOf[st.Claim.Secret] = st.Claim.Slot
		}
	}
	st := state(w)
	today := timing.Day(time.Now())
	got := map[int]int{}
	for _, a := range st.APIClients {
		slot := slotOf[a.Secret]
		if slot == 0 && a.RequestsOn(today) > 0 {
			t.Fatalf("the state counts requests for an API client that never claimed")
		}
		got[slot] += a.RequestsOn(today)
	}
	for i, s := range w.Secrets {
		slot := i + 1
		if want := w.Emu.RequestsToday(s) + lost[slot]; got[slot] != want {
			t.Errorf("API client %d: the state counts %d requests today; Clear received %d and %d claims never reached it",
				slot, got[slot], w.Emu.RequestsToday(s), lost[slot])
		}
	}
}

// TestTwoAPIClientsRacingRotators races sixteen engines on one due secret with two API clients,
// four rounds, alternating plain and forced rotations. Each round costs Clear exactly one request
// and one racer rotates; consecutive rotations use different API clients (alternation), so the
// token each rotation replaces stays live (it is never revoked: AWSCURRENT never holds a token
// Clear revoked); and each API client's count in the state equals Clear's count for its secret.
func TestTwoAPIClientsRacingRotators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
		c := w.Client()
		ctx := context.Background()
		expect(t, engine(w, "seed", nil, 0).Rotate(ctx, c, false), rotation.Rotated)
		for round, force := range []bool{false, true, false, true} {
			if force {
				// A force may ask the other API client only once consumers that re-read on the
				// documented interval (20 minutes for hourly tokens) can no longer hold its token,
				// which was in AWSCURRENT until the last round (issue 19 item 9).
				time.Sleep(21 * time.Minute)
			} else {
				time.Sleep(45 * time.Minute)
			}
			prev, _ := current(w)
			before := len(answered(w))
			var mu sync.Mutex
			outcomes := map[rotation.Outcome]int{}
			// A barrier holds every racer's first write (its claim) until all sixteen have read
			// and decided, so that they all decide on the same state and their claims compete.
			var arrived sync.WaitGroup
			arrived.Add(16)
			var wg sync.WaitGroup
			for i := range 16 {
				api := &procFaults{}
				var once sync.Once
				arrive := func() { once.Do(func() { arrived.Done(); arrived.Wait() }) }
				api.put = func(*secretsmanager.PutSecretValueInput) (bool, error) {
					arrive()
					return false, nil
				}
				wg.Go(func() {
					r := engine(w, fmt.Sprintf("racer-%d-%d", round, i), api.api(w), 0).Rotate(ctx, c, force)
					arrive() // a racer that decided not to claim still lets the others go
					mu.Lock()
					outcomes[r.Outcome]++
					mu.Unlock()
					if !r.Outcome.OK() {
						t.Errorf("racer %d: %s: %s", i, r.Outcome, r.Message)
					}
				})
			}
			wg.Wait()
			t.Logf("round %d (force %v): %v", round, force, outcomes)
			if got := len(answered(w)) - before; got != 1 {
				t.Fatalf("round %d: 16 racers made %d Clear requests, want 1", round, got)
			}
			if outcomes[rotation.Rotated] != 1 {
				t.Fatalf("round %d: %d racers rotated, want 1", round, outcomes[rotation.Rotated])
			}
			tok, _ := current(w)
			if !w.Emu.Live(tok.AccessToken.Reveal()) {
				t.Fatalf("round %d: AWSCURRENT holds a revoked token", round)
			}
			if tok.APIClient == prev.APIClient || tok.APIClient == 0 {
				t.Fatalf("round %d: API client %d followed API client %d", round, tok.APIClient, prev.APIClient)
			}
			if !w.Emu.Live(prev.AccessToken.Reveal()) {
				t.Fatalf("round %d: the token just replaced was revoked", round)
			}
			checkSlotCounts(t, w, nil)
		}
	})
}

// TestTwoAPIClientsDegraded makes API client 2 answer 401 (its secret deleted in Clear) or 429,
// then lets a daemon that looks every ten seconds run for six hours. API client 1 keeps serving:
// AWSCURRENT holds a live token at every sample, rotations keep coming, status says degraded, API
// client 2 is not asked again, and the per-API-client counts stay exact.
func TestTwoAPIClientsDegraded(t *testing.T) {
	for _, tc := range []struct {
		name string
		arm  func(w *rig.World)
	}{
		{"401", func(w *rig.World) { w.Emu.SetSecretActive(w.Secrets[1], false) }},
		{"429", func(w *rig.World) { w.Emu.Inject(emulator.RateLimited("")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
				c := w.Client()
				ctx, cancel := context.WithCancel(context.Background())
				expect(t, engine(w, "seed", nil, 0).Rotate(ctx, c, false), rotation.Rotated)
				if tok, _ := current(w); tok.APIClient != 1 {
					t.Fatalf("the first rotation used API client %d", tok.APIClient)
				}
				tc.arm(w)
				stopped := daemonLoop(ctx, engine(w, "daemon", nil, 0), c, daemonTick)
				defer func() { cancel(); <-stopped }()
				// Samples fall between the daemon's ticks, never at the instant one runs.
				time.Sleep(5 * time.Second)
				status := engine(w, "status", nil, 0)
				degraded := 0
				for range 6 * 60 {
					time.Sleep(time.Minute)
					if !w.Live() {
						t.Fatalf("AWSCURRENT is not live at %s", time.Now().UTC().Format(time.TimeOnly))
					}
					s, err := status.Status(ctx, c)
					if err != nil {
						t.Fatal(err)
					}
					if len(answered(w)) > 1 {
						if !s.IsDegraded() || s.State != rotation.HealthDegraded && s.State != rotation.HealthExpiring {
							t.Fatalf("status after API client 2 failed: degraded %v, state %s", s.IsDegraded(), s.State)
						}
						degraded++
					}
				}
				per := map[int]int{}
				for _, r := range answered(w) {
					per[r.Slot]++
				}
				t.Logf("requests per API client over six hours: %v; %d minutes degraded", per, degraded)
				if per[2] != 1 {
					t.Errorf("API client 2 was asked %d times; once, then never while it fails", per[2])
				}
				if per[1] < 6 {
					t.Errorf("API client 1 made only %d rotations in six hours of one-hour tokens", per[1])
				}
				checkSlotCounts(t, w, nil)
			})
		})
	}
}

// TestTwoAPIClientsCrashPoints kills a rotator at each step of a due rotation with two API
// clients, while a daemon that looks every ten seconds runs beside it. With two API clients a
// crash never costs the ERP its token: the request the dying rotator made (if any) was for the API
// client that did not issue AWSCURRENT, so AWSCURRENT is live at every second. The daemon
// completes the rotation by the claim's lease plus one tick, and the per-API-client counts equal
// Clear's plus the claim the crash lost.
func TestTwoAPIClientsCrashPoints(t *testing.T) {
	const clearTimeout = 5 * time.Second
	type crash struct {
		name string
		arm  func(api *procFaults)
		lost bool // a claim counted whose request never reached Clear
	}
	crashes := []crash{
		{name: crashBeforeClaim, arm: func(api *procFaults) {
			api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
				if isClaimBy(in, "a") {
					api.dead.Store(true)
					return false, errProcessDied
				}
				return false, nil
			}
		}},
		{name: crashAfterClaim, lost: true, arm: func(api *procFaults) {
			api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
				if isClaimBy(in, "a") {
					api.dead.Store(true)
					return true, errProcessDied
				}
				return false, nil
			}
		}},
		{name: crashAtReread, lost: true, arm: func(api *procFaults) {
			claimed := false
			api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
				claimed = claimed || isClaimBy(in, "a")
				return false, nil
			}
			api.get = func(in *secretsmanager.GetSecretValueInput) error {
				if claimed && aws.ToString(in.VersionStage) == rotation.CurrentStage {
					api.dead.Store(true)
					return errProcessDied
				}
				return nil
			}
		}},
		{name: crashBeforeToken, arm: func(api *procFaults) {
			api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
				if isTokenWrite(in) {
					api.dead.Store(true)
					return false, errProcessDied
				}
				return false, nil
			}
		}},
		{name: crashAfterToken, arm: func(api *procFaults) {
			api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
				if isTokenWrite(in) {
					api.dead.Store(true)
					return true, errProcessDied
				}
				return false, nil
			}
		}},
	}
	for _, cr := range crashes {
		t.Run(cr.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
				c := w.Client()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				start := time.Now()
				expect(t, engine(w, "seed", nil, clearTimeout).Rotate(ctx, c, false), rotation.Rotated)
				seed, _ := current(w)
				time.Sleep(time.Second)
				stopped := daemonLoop(ctx, engine(w, "daemon", nil, clearTimeout), c, daemonTick)
				defer func() { cancel(); <-stopped }()

				api := &procFaults{}
				cr.arm(api)
				time.Sleep(time.Until(start.Add(40 * time.Minute)))
				claimAt := time.Now()
				go engine(w, "a", api.api(w), clearTimeout).Rotate(ctx, c, false)
				for time.Since(claimAt) < 10*time.Minute {
					if !w.Live() {
						t.Fatalf("AWSCURRENT holds a revoked token %s after the crash", time.Since(claimAt))
					}
					time.Sleep(time.Second)
				}
				tok, _ := current(w)
				if tok.APIClient != 2 {
					t.Fatalf("after the crash AWSCURRENT is from API client %d, want 2", tok.APIClient)
				}
				var done time.Time
				for _, r := range answered(w) {
					if r.Token == tok.AccessToken.Reveal() {
						done = r.At
					}
				}
				if bound := claimAt.Add(timing.Lease(clearTimeout) + daemonTick); done.After(bound) {
					t.Errorf("the rotation completed %s after the crash, later than the lease plus a tick", done.Sub(claimAt))
				}
				if !w.Emu.Live(seed.AccessToken.Reveal()) {
					t.Error("the token the rotation replaced was revoked")
				}
				lost := map[int]int{}
				if cr.lost {
					lost[2] = 1
				}
				checkSlotCounts(t, w, lost)
			})
		})
	}
}

// TestTwoAPIClientsTokenAboutToExpireIsRenewedAfterAbandonedClaims is the case make soak found
// (TestSoakMonth/engine-loop/1h-two-api-clients, seed 104) when abandoned claims backed off
// whatever the token in use (780fd88, reverted): with two API clients, the due API client's claims
// are abandoned again and again (a rotator that dies at the token write, started afresh on a
// five-minute schedule, as the Lambda is), and the backoff after one of them ended while the
// token in use still lived but past the schedule's last look before its expiry: waiting for it
// left AWSCURRENT expired until the look after (30 s here, with that rule). Any backoff after
// abandoned claims must keep this: once the rotator stops dying, the token about to expire is
// renewed before it does, and AWSCURRENT is live every second.
func TestTwoAPIClientsTokenAboutToExpireIsRenewedAfterAbandonedClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			clearTimeout = 5 * time.Second
			lifetime     = 3 * time.Hour
			every        = 5 * time.Minute
			// deaths is how many looks die at the token write: a backoff after the eighth loss in
			// a row (its step's shortest, sixteen minutes) would end four minutes before the
			// token in use expires, between the last two looks before it.
			deaths = 8
		)
		w := newWorld(t, rig.Options{Lifetime: lifetime, APIClients: 2})
		c := w.Client()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		expect(t, engine(w, "seed", nil, clearTimeout).Rotate(ctx, c, false), rotation.Rotated)
		seed, _ := current(w)
		if seed.APIClient != 1 || seed.ValidTill == nil {
			t.Fatalf("seed token: API client %d, valid till %v", seed.APIClient, seed.ValidTill)
		}
		end := seed.ValidTill.Add(30 * time.Minute)

		// The scheduled rotator: a fresh process each look, half a minute past each five minutes,
		// that dies at the token write until it has died deaths times.
		died := 0
		var mu sync.Mutex
		results := map[rotation.Outcome]int{}
		looks := make(chan struct{})
		go func() {
			defer close(looks)
			for n := 1; ; n++ {
				at := start.Add(time.Duration(n)*every + 30*time.Second)
				if !at.Before(end) {
					return
				}
				time.Sleep(time.Until(at))
				api := &procFaults{}
				if died < deaths {
					api.put = func(in *secretsmanager.PutSecretValueInput) (bool, error) {
						if isTokenWrite(in) {
							api.dead.Store(true)
							return false, errProcessDied
						}
						return false, nil
					}
				}
				res := engine(w, fmt.Sprintf("look-%d", n), api.api(w), clearTimeout).Rotate(ctx, c, false)
				if api.dead.Load() {
					died++
				}
				mu.Lock()
				results[res.Outcome]++
				mu.Unlock()
			}
		}()

		var dead []time.Time
		for now := start; now.Before(end); now = time.Now() {
			synctest.Wait()
			if !w.Live() {
				dead = append(dead, now)
			}
			time.Sleep(time.Second)
		}
		<-looks
		mu.Lock()
		defer mu.Unlock()
		if died != deaths {
			t.Fatalf("the scheduled rotator died %d times, want %d (outcomes %v)", died, deaths, results)
		}
		if len(dead) > 0 {
			t.Errorf("AWSCURRENT held no live token for %d s, from %s after the seed (its token expired %s after it); outcomes %v",
				len(dead), dead[0].Sub(start), seed.ValidTill.Sub(start), results)
		}
		tok, _ := current(w)
		if tok.APIClient != 2 || !tok.IssuedAt.Before(*seed.ValidTill) {
			t.Errorf("AWSCURRENT holds a token of API client %d issued %s after the seed, want API client 2's, before %s",
				tok.APIClient, tok.IssuedAt.Sub(start), seed.ValidTill.Sub(start))
		}
		t.Logf("%d Clear requests; renewed %s after the seed, %s before its token expired; outcomes %v",
			len(answered(w)), tok.IssuedAt.Sub(start), seed.ValidTill.Sub(tok.IssuedAt), results)
	})
}
