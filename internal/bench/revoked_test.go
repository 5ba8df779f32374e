package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Parameters of BenchmarkRevokedOutside.
const (
	revokeReps = 3
	// The rows whose outage nothing but a due rotation ends: 18-second tokens the rotator renews
	// 3 s before their expiry, 15 s after their issue (Clear's valid_till has whole seconds:
	// 14.5–15.5 s).
	revokeDueLifetime    = 18 * time.Second
	revokeDueRenewBefore = 3 * time.Second
	// The rows a gateway heals: hour-long tokens, which no rotation renews during the run, so that
	// nothing but the heal ends the outage.
	revokeHealLifetime = time.Hour
	// revokeWait bounds one repetition: a live token in AWSCURRENT, and every ERP instance's
	// calls accepted again.
	revokeWait = 60 * time.Second
)

// revokePhases are when the outside request comes after the issue of the token it revokes, one
// per repetition, in the rows a due rotation ends: the time left to that rotation (15 s after
// the issue) is swept from about 11.5 s to 3.5 s. The first phase leaves the plain ERPs their
// 3-second re-read after the previous repetition's rotation.
var revokePhases = []time.Duration{3500 * time.Millisecond, 7500 * time.Millisecond, 11500 * time.Millisecond}

// revokeRow is one row of BENCHMARKS.md's section 7b.
type revokeRow struct {
	name       string
	erp        erpKind
	apiClients int
	// due: 18-second tokens, revoked at revokePhases; otherwise hour-long tokens revoked once the
	// ERPs' calls are accepted again after the previous repetition.
	due bool
	env []string // added to the rotator's environment
}

var revokeRows = []revokeRow{
	// (a) The daemon alone: nothing looks at whether Clear still accepts the stored token, so the
	// next due rotation ends the outage; the ERP re-reads AWSCURRENT every 3 s.
	{name: "a-daemon-alone-plain-reread", erp: erpPlain, due: true},
	// (b) The daemon's embedded gateway judges the refusal (5 s) and heals with one forced rotation.
	{name: "b-gateway-embedded", erp: erpEmbedded},
	// (c) A standalone `rotator gateway` given the client secret: the same heal.
	{name: "c-gateway-standalone-client-secret", erp: erpStandaloneRotator},
	// (d) A standalone gateway with read rights only: it reports, holds calls up to its 10 s hold,
	// and the daemon's next due rotation ends the outage.
	{name: "d-gateway-standalone-read-only", erp: erpStandalone, due: true},
	// (e) Two API clients, the embedded gateway; the outside request uses the secret of the API
	// client whose token is AWSCURRENT.
	{name: "e-two-clients-gateway-embedded", erp: erpEmbedded, apiClients: 2},
	// (f) The daemon alone, as (a), with a probe every 10 s (ROTATOR_PROBE_PATH): the probe that
	// meets the revocation is judged as a gateway's call (5 s) and healed; hour-long tokens, so
	// that nothing else ends the outage.
	{name: "f-daemon-probe-plain-reread", erp: erpPlain,
		env: []string{"ROTATOR_PROBE_PATH=" + rig.PingPath, "ROTATOR_PROBE_INTERVAL=" + revokeProbeInterval.String()}},
}

// revokeProbeInterval is row (f)'s ROTATOR_PROBE_INTERVAL.
const revokeProbeInterval = 10 * time.Second

// BenchmarkRevokedOutside measures the seconds without a live token after someone outside the
// rotator asks Clear for a token with the client secret of the token in AWSCURRENT (Clear revokes
// that token at once), and what ERP systems see of it. Each row builds an ERP's world
// (rig.NewERP: moto, the emulator, the real rotator as a daemon, and for the gateway rows the
// embedded or a standalone gateway), runs erpInstances ERP instances calling every erpPace as
// BenchmarkERPFailedCalls does, and revokes the stored token revokeReps times with the emulator
// (rig.World.IssueWith). Per repetition it reports the seconds from the outside request until
// AWSCURRENT holds a token Clear accepts, the calls Clear refused the ERPs from then until each
// instance has a call accepted again, the longest call meanwhile (a gateway holds refused calls),
// and the seconds until a gateway logged the revocation. It asserts no time.
func BenchmarkRevokedOutside(b *testing.B) {
	for _, row := range revokeRows {
		b.Run(row.name, func(b *testing.B) {
			for range b.N {
				runRevoked(b, row)
			}
		})
	}
}

// revokeRep is one repetition's figures.
type revokeRep struct {
	live     time.Duration // the outside request to a live token in AWSCURRENT
	erp      time.Duration // the outside request to every ERP instance's calls accepted again
	failed   int
	longest  time.Duration // the longest ERP call started in that time
	reported time.Duration // to the gateway's log line; -1 when none
	ended    string        // what ended the outage
}

func runRevoked(b *testing.B, row revokeRow) {
	o := rig.ERPOptions{Lifetime: revokeHealLifetime, APIClients: row.apiClients, RotatorEnv: row.env}
	if row.due {
		o.Lifetime, o.RenewBefore = revokeDueLifetime, revokeDueRenewBefore
	}
	erp, gw, p := newERPGateway(b, o, row.erp)
	calls := startERPCalls(erp, row.erp, gw)
	defer calls.stop() // before the world's cleanups: a call may be held by a gateway
	erp.Proc.Await("every ERP instance's first accepted call", revokeWait, func() bool {
		_, ok := calls.since(time.Time{})
		return ok
	})

	if slices.ContainsFunc(row.env, func(kv string) bool { return strings.HasPrefix(kv, "ROTATOR_PROBE_PATH=") }) {
		// A probe finds a revocation only in a token Clear accepted on an earlier probe (each new
		// token is probed within a second).
		erp.Proc.Await("an accepted probe", revokeWait, func() bool {
			v := erp.Proc.Metric(`clear_rotator_gateway_probes_total{client="default",code="2xx"}`)
			return v != "" && v != "0"
		})
	}
	var reps []revokeRep
	for rep := range revokeReps {
		tok, version := erp.MustCurrent()
		if row.due {
			tok, version = awaitPhase(b, erp, revokePhases[rep])
		}
		slot := max(tok.APIClient, 1)
		asked := clearRequests(erp)
		t0 := time.Now()
		erp.IssueWith(slot) // outside the rotator: Clear revokes the token in AWSCURRENT
		var r revokeRep
		erp.Proc.Await("a live token in AWSCURRENT", revokeWait, erp.Live)
		r.live = time.Since(t0)
		var outcome erpOutcome
		erp.Proc.Await("every ERP instance's calls accepted again", revokeWait, func() bool {
			var ok bool
			outcome, ok = calls.since(t0)
			return ok
		})
		r.erp, r.failed, r.longest = outcome.until.Sub(t0), outcome.failed, outcome.longest
		after := clearRequests(erp)
		var rotators []string
		for i := range after {
			n := after[i] - asked[i]
			if i == slot-1 {
				n-- // the outside request
			}
			if n != 0 {
				rotators = append(rotators, fmt.Sprintf("API client %d: %d", i+1, n))
			}
		}
		_, now := erp.MustCurrent()
		r.ended = "a due rotation"
		if now == rotation.HealVersion(version) {
			r.ended = "the gateway's forced rotation"
		}
		if p == nil {
			p = erp.Proc // a probe's report is the daemon's
		}
		r.ended += fmt.Sprintf(" (rotators' Clear requests: %s)", strings.Join(rotators, ", "))
		r.reported = -1
		if p != nil {
			if at, ok := loggedAfter(p.Output(), revokedOutsideMsg, t0); ok {
				r.reported = at.Sub(t0)
			}
		}
		phase := ""
		if row.due {
			phase = fmt.Sprintf(" %.1f s after its issue", revokePhases[rep].Seconds())
		}
		reported := "no gateway report"
		if r.reported >= 0 {
			reported = fmt.Sprintf("the gateway reported it after %.2f s", r.reported.Seconds())
		}
		b.Logf("%s rep %d: token of API client %d revoked outside%s; live token in AWSCURRENT after %.2f s, ended by %s; ERPs: %d calls refused, all accepted again after %.2f s, longest call %.2f s; %s",
			row.name, rep+1, slot, phase, r.live.Seconds(), r.ended, r.failed, r.erp.Seconds(), r.longest.Seconds(), reported)
		reps = append(reps, r)
		time.Sleep(500 * time.Millisecond)
	}
	reportRevoked(b, reps)
}

// revokedOutsideMsg starts the gateway's log line for a token revoked outside the rotator.
const revokedOutsideMsg = "gateway: the token was revoked outside the rotator"

// reportRevoked prints a row's best and worst figures.
func reportRevoked(b *testing.B, reps []revokeRep) {
	field := func(f func(revokeRep) float64) (lo, hi float64) {
		vs := make([]float64, len(reps))
		for i, r := range reps {
			vs[i] = f(r)
		}
		return slices.Min(vs), slices.Max(vs)
	}
	lo, hi := field(func(r revokeRep) float64 { return r.live.Seconds() })
	b.ReportMetric(lo, "live-s-best")
	b.ReportMetric(hi, "live-s-worst")
	lo, hi = field(func(r revokeRep) float64 { return float64(r.failed) })
	b.ReportMetric(lo, "failed-best")
	b.ReportMetric(hi, "failed-worst")
	_, hi = field(func(r revokeRep) float64 { return r.erp.Seconds() })
	b.ReportMetric(hi, "erp-s-worst")
	_, hi = field(func(r revokeRep) float64 { return r.longest.Seconds() })
	b.ReportMetric(hi, "longest-call-s")
}

// awaitPhase waits until phase after the issue of the token in AWSCURRENT, and returns that
// token and its version. When that moment has passed already, it waits for the next token.
func awaitPhase(tb testing.TB, erp *rig.ERP, phase time.Duration) (tok document.Token, version string) {
	tb.Helper()
	for {
		tok, version = erp.MustCurrent()
		at := tok.IssuedAt.Add(phase)
		if time.Until(at) > 100*time.Millisecond {
			time.Sleep(time.Until(at))
			if _, now := erp.MustCurrent(); now == version {
				return tok, version
			}
			continue
		}
		erp.Proc.Await("the next rotation", revokeWait, func() bool {
			_, now := erp.MustCurrent()
			return now != version
		})
	}
}

// clearRequests is the token requests Clear received per API client, from anyone.
func clearRequests(erp *rig.ERP) []int {
	n := make([]int, len(erp.Secrets))
	for i, s := range erp.Secrets {
		n[i] = erp.Emu.Requests(s)
	}
	return n
}

// loggedAfter returns the time of the first JSON log line at or after t whose message starts
// with msg.
func loggedAfter(out, msg string, t time.Time) (time.Time, bool) {
	for line := range strings.SplitSeq(out, "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Msg, msg) {
			continue
		}
		if !rec.Time.Before(t) {
			return rec.Time, true
		}
	}
	return time.Time{}, false
}

// erpCalls records every call of the ERP instances: when it started and ended, and whether Clear
// accepted it.
type erpCalls struct {
	mu    sync.Mutex
	calls [][]erpCall // per instance, in order
	stop  func()
}

type erpCall struct {
	start, end time.Time
	ok         bool
}

// startERPCalls starts erpInstances ERP instances of kind calling every erpPace until stop.
func startERPCalls(erp *rig.ERP, kind erpKind, gw string) *erpCalls {
	c := &erpCalls{calls: make([][]erpCall, erpInstances)}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range erpInstances {
		call := erpCaller(erp, kind, gw, i)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				start := time.Now()
				err := call(n)
				c.mu.Lock()
				c.calls[i] = append(c.calls[i], erpCall{start: start, end: time.Now(), ok: err == nil})
				c.mu.Unlock()
				time.Sleep(erpPace)
			}
		})
	}
	c.stop = sync.OnceFunc(func() { close(done); wg.Wait() })
	return c
}

// erpOutcome is what the ERP instances saw from a moment on.
type erpOutcome struct {
	failed  int           // calls refused
	until   time.Time     // when the last instance's first call started since was accepted
	longest time.Duration // the longest of those calls
}

// since reports the calls refused from t on, until each instance's first call started at or after
// t was accepted; ok is false while some instance has had none accepted yet. A call started
// before t and refused after it counts too (it met the revoked token).
func (c *erpCalls) since(t time.Time) (o erpOutcome, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, calls := range c.calls {
		accepted := false
		for _, call := range calls {
			if call.end.Before(t) {
				continue
			}
			if !call.ok {
				o.failed++
				o.longest = max(o.longest, call.end.Sub(call.start))
				continue
			}
			if call.start.Before(t) {
				continue
			}
			o.longest = max(o.longest, call.end.Sub(call.start))
			if call.end.After(o.until) {
				o.until = call.end
			}
			accepted = true
			break
		}
		if !accepted {
			return o, false
		}
	}
	return o, true
}
