package bench

import (
	"context"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/reliability"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }

// lifetimes are the token configurations the efficiency benchmark compares.
var lifetimes = []struct {
	name             string
	lifetime, maxAge time.Duration
}{
	{"1h", time.Hour, 0},
	{"24h", 24 * time.Hour, 0},
	{"never-maxage-7d", 0, 7 * 24 * time.Hour},
}

// benchFaults are the month simulation's random faults (reliability.DefaultFaults) without
// Secrets Manager outages: outside a synctest bubble the engine's write retries run on real time,
// and an outage would make them spin for minutes.
func benchFaults() reliability.FaultRates {
	f := reliability.DefaultFaults
	f.Outage = 0
	return f
}

// month runs thirty simulated days on a virtual clock: the rotator as two processes ticking side
// by side every five minutes with the daemon's NextCheck cache, or the naive baseline as one.
func month(lifetime, maxAge time.Duration, naive bool, faults reliability.FaultRates, seed uint64) *reliability.Report {
	cfg := reliability.SimConfig{
		Clock: reliability.NewVirtualClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
		Days:  30, Lifetime: lifetime, MaxAge: maxAge, Seed: seed, Faults: faults,
		// These run on real time outside a bubble; a hung Clear costs 20 ms instead of 30 s.
		ClearTimeout: 20 * time.Millisecond, WriteRetry: time.Millisecond,
	}
	if naive {
		cfg.NewRotator = func(p *reliability.Process) reliability.Rotator { return &Naive{P: p, Timeout: 20 * time.Millisecond} }
		cfg.Stateless, cfg.Processes, cfg.DailyLimit = true, 1, 288
	}
	return reliability.Simulate(context.Background(), cfg)
}

// BenchmarkRequestEfficiency counts the Clear requests of thirty simulated days, with random
// Clear and Secrets Manager faults, crashes, restarts and duplicate ticks, for three token
// configurations, as a ratio to the minimum the renewal policy needs (one request per renewal
// interval: 40 min for 1h tokens, 16 h for 24h tokens, 7 days for never-expiring tokens with
// ROTATOR_MAX_AGE=7d), next to the naive baseline that requests a token every five minutes.
//
// The rotator runs ten months (seeds 1 to 10) per configuration, because a month of 24h tokens
// makes only 45 requests and each one a fault spoils moves its ratio by 2%: the figures are the
// ten months' totals. "renewals" is stored tokens over the minimum (the policy's own cost, which
// faults cannot raise); "faulted" is the requests per month that did not end in a stored token
// (what the injected faults cost: one request each). The "calm" run of 1h tokens, without any
// fault, shows the policy alone.
func BenchmarkRequestEfficiency(b *testing.B) {
	type run struct {
		name   string
		naive  bool
		faults reliability.FaultRates
		seeds  int
	}
	for _, lt := range lifetimes {
		runs := []run{{lt.name + "/rotator", false, benchFaults(), 10}, {lt.name + "/naive", true, benchFaults(), 1}}
		if lt.name == "1h" {
			runs = append(runs, run{lt.name + "/rotator-calm", false, reliability.FaultRates{}, 1})
		}
		for _, rn := range runs {
			b.Run(rn.name, func(b *testing.B) {
				var requests, minimum, stored, maxDay, over, dead int
				worst := 0.0
				for range b.N {
					requests, minimum, stored, maxDay, over, dead, worst = 0, 0, 0, 0, 0, 0, 0
					for seed := 1; seed <= rn.seeds; seed++ {
						rep := month(lt.lifetime, lt.maxAge, rn.naive, rn.faults, uint64(seed))
						requests += rep.Requests
						minimum += rep.MinimumRequests
						stored += rep.Stored
						maxDay = max(maxDay, rep.MaxPerDay)
						over += rep.DaysAboveLimit
						dead += rep.DeadMinutes
						worst = max(worst, rep.Ratio())
						if seed == 1 {
							b.Logf("%s, seed 1: %s", rn.name, rep)
						}
						for _, v := range rep.Violations {
							b.Errorf("seed %d: violation: %s", seed, v)
						}
						if n := rep.Unexplained(); n > 0 && !rn.naive {
							b.Errorf("seed %d: %d requests spoiled without a fault to explain them", seed, n)
						}
					}
				}
				n := float64(rn.seeds)
				b.ReportMetric(float64(requests)/n, "requests/month")
				b.ReportMetric(float64(minimum)/n, "minimum/month")
				b.ReportMetric(float64(requests)/float64(minimum), "x-minimum")
				b.ReportMetric(worst, "worst-month-x-minimum")
				b.ReportMetric(float64(stored)/float64(minimum), "renewals-x-minimum")
				b.ReportMetric(float64(requests-stored)/n, "faulted/month")
				b.ReportMetric(float64(maxDay), "max/day")
				b.ReportMetric(float64(over), "days-over-limit")
				b.ReportMetric(float64(dead)/n, "dead-min/month")
				b.Logf("%s over %d month(s): %.1f requests/month, minimum %.1f, ratio %.3f (worst month %.3f), stored renewals %.3fx the minimum, %.1f faulted requests/month, max %d/day, %d days over the limit, %.0f dead minutes/month",
					rn.name, rn.seeds, float64(requests)/n, float64(minimum)/n, float64(requests)/float64(minimum), worst,
					float64(stored)/float64(minimum), float64(requests-stored)/n, maxDay, over, float64(dead)/n)
			})
		}
	}
}
