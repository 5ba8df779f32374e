package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Verdict is what a 401 for a token says, once the dust has settled.
type Verdict string

const (
	// Replaced: AWSCURRENT moved on; the refusal was an ordinary rotation.
	Replaced Verdict = "replaced"
	// Expired: the token ran out while the request was under way.
	Expired Verdict = "expired"
	// CallRefused: Clear refused this call, but accepted the same token for a call sent after it
	// (the API client lacks this call's product, say). A revoked token is refused for every call:
	// this one is not revoked. Reported; rotating would not help and would spend the budget.
	CallRefused Verdict = "call-refused"
	// NeverAccepted: Clear never accepted the token through this gateway (the API client lacks the
	// product, say). Reported; rotating would not help and would spend the budget.
	NeverAccepted Verdict = "never-accepted"
	// Revoked: Clear accepted the token, then refused it while it is still AWSCURRENT and
	// unexpired: someone asked Clear for a token with the same client secret, outside the rotator.
	Revoked Verdict = "revoked"
)

// Refusal is the evidence about one refused token.
type Refusal struct {
	Version  string // the refused token's version
	Accepted bool   // Clear accepted this version through the gateway before
	// AcceptedAfter: Clear accepted this version for a call the gateway sent after the refused
	// one.
	AcceptedAfter bool
	Current       string     // AWSCURRENT's version, read after the grace
	ValidTill     *time.Time // the refused token's expiry
	Now           time.Time
}

// Judge decides what a refusal means. It is pure; the order of the rules is their priority.
func Judge(r Refusal) Verdict {
	switch {
	case r.Current != r.Version:
		return Replaced
	case r.ValidTill != nil && !r.Now.Before(*r.ValidTill):
		return Expired
	case r.AcceptedAfter:
		return CallRefused
	case !r.Accepted:
		return NeverAccepted
	}
	return Revoked
}

// EventID is the event of the forced rotation asked for after version was found revoked: every
// gateway and daemon that finds the same version revoked asks with the same id, so the engine
// lets one request through between them and answers the others "duplicate". `rotator status`
// finds the last one in the state's events (rotation.RevokedEvent).
func EventID(version string) string { return rotation.RevokedEvent(version) }

// maxAccepted bounds the versions remembered as accepted per client.
const maxAccepted = 16

// refusals tracks which token versions Clear accepted, and for which calls, and judges the ones it
// refused: one judgement at a time per version.
type refusals struct {
	g *Gateway
	// sent numbers the attempts in the order they are sent, so that an acceptance can be told to
	// come from a call sent after a refusal.
	sent    atomic.Uint64
	mu      sync.Mutex
	ok      map[string][]acceptance         // client -> versions accepted, oldest first
	judging map[string]map[string]judgement // client -> versions being judged, or judged
	told    map[string]map[string]bool      // client -> versions reported as CallRefused
}

// acceptance is a version Clear accepted, and the number of the last attempt it accepted.
type acceptance struct {
	version string
	last    uint64
}

type judgement uint8

const (
	judgingNow judgement = iota + 1 // a judge runs: a refusal waits for its verdict
	judged                          // decided; judged again only after Clear accepts the version
)

func newRefusals(g *Gateway) *refusals {
	return &refusals{g: g, ok: map[string][]acceptance{}, judging: map[string]map[string]judgement{}, told: map[string]map[string]bool{}}
}

// number gives a the next attempt number, as it is sent.
func (f *refusals) number(a *attempt) { a.seq = f.sent.Add(1) }

func (f *refusals) accepted(a *attempt) {
	client, version := a.route.Name, a.tok.Version
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.ok[client]
	if n := len(list); n > 0 && list[n-1].version == version {
		list[n-1].last = max(list[n-1].last, a.seq) // the common case: the version in use
		return
	}
	f.rejudge(client, version)
	for i := range list {
		if list[i].version == version {
			list[i].last = max(list[i].last, a.seq)
			return
		}
	}
	list = append(list, acceptance{version: version, last: a.seq})
	if len(list) > maxAccepted {
		list = list[len(list)-maxAccepted:]
	}
	f.ok[client] = list
}

// rejudge lets a version refused before and accepted now (an allowlist fixed, say) be judged
// again; not while it is being judged, so that calls accepted and refused in turn do not start a
// judge each. Called under f.mu.
func (f *refusals) rejudge(client, version string) {
	if f.judging[client][version] == judged {
		delete(f.judging[client], version)
	}
}

// acceptedAt reports whether Clear accepted version for client, and the number of the last
// attempt it accepted.
func (f *refusals) acceptedAt(client, version string) (bool, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.ok[client] {
		if v.version == version {
			return true, v.last
		}
	}
	return false, 0
}

// refused starts judging a's refusal, unless its version is already being judged or was judged.
func (f *refusals) refused(a *attempt) {
	rt, tok := a.route, a.tok
	f.mu.Lock()
	seen := f.judging[rt.Name]
	if seen == nil {
		seen = map[string]judgement{}
		f.judging[rt.Name] = seen
	}
	if seen[tok.Version] != 0 {
		f.mu.Unlock()
		return
	}
	if len(seen) > 4*maxAccepted {
		clear(seen)
	}
	seen[tok.Version] = judgingNow
	f.mu.Unlock()
	go f.judge(rt, tok, a.seq)
}

// judge waits the grace for a newer token; if none comes, it reads AWSCURRENT and decides. seq is
// the number of the refused attempt.
func (f *refusals) judge(rt *route, tok Token, seq uint64) {
	g := f.g
	ctx, cancel := context.WithTimeout(context.Background(), g.o.RevokeGrace)
	_, newer := rt.Source.Newer(ctx, tok.Version)
	cancel()
	if newer {
		f.done(rt.Name, tok.Version)
		return // replaced: the ordinary case
	}
	current := tok.Version
	if rt.Confirm != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		v, err := rt.Confirm(cctx)
		cancel()
		if err != nil {
			g.log.Warn("gateway: Clear refused the token, and AWSCURRENT could not be read to tell why", "client", rt.Name, "version", tok.Version)
			f.forget(rt.Name, tok.Version)
			return
		}
		current = v
	} else if t, ok := rt.Source.Current(); ok {
		current = t.Version
	}
	accepted, last := f.acceptedAt(rt.Name, tok.Version)
	v := Judge(Refusal{Version: tok.Version, Accepted: accepted, AcceptedAfter: last > seq, Current: current,
		ValidTill: tok.ValidTill, Now: g.o.Now()})
	f.settle(rt.Name, tok.Version, v)
	switch v {
	case Revoked:
		rt.m.revokedOutside()
		g.log.Error("gateway: the token was revoked outside the rotator: Clear accepted it, then refused it while it is AWSCURRENT and unexpired (someone asked Clear for a token with the same client secret)",
			"client", rt.Name, "version", tok.Version, "heal", rt.Heal != nil)
		if rt.Heal != nil {
			hctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			rt.Heal(hctx, tok.Version)
			cancel()
		}
	case CallRefused:
		if f.tell(rt.Name, tok.Version) {
			g.log.Warn("gateway: Clear refused a call with the token in AWSCURRENT but accepts it for other calls (the API client may lack that call's product); not a revocation, no rotation is asked for",
				"client", rt.Name, "version", tok.Version)
		}
	case NeverAccepted:
		g.log.Error("gateway: Clear refuses the token in AWSCURRENT and never accepted it through the gateway (the API client may lack the product or the IP allowlist); no rotation is asked for",
			"client", rt.Name, "version", tok.Version)
	}
}

// settle records verdict v for version: Revoked and NeverAccepted stay judged (until Clear
// accepts the version again); after any other, the next refusal is judged afresh. A call refused
// while others are accepted is judged again at its next refusal, so that a revocation that came
// after it is still found, one judge at a time.
func (f *refusals) settle(client, version string, v Verdict) {
	switch v {
	case Revoked, NeverAccepted:
		f.done(client, version)
	default:
		f.forget(client, version)
	}
}

// done marks version judged.
func (f *refusals) done(client, version string) {
	f.mu.Lock()
	if f.judging[client] != nil {
		f.judging[client][version] = judged
	}
	f.mu.Unlock()
}

// tell reports whether version's CallRefused is news, and remembers that it was told.
func (f *refusals) tell(client, version string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	told := f.told[client]
	if told == nil {
		told = map[string]bool{}
		f.told[client] = told
	}
	if told[version] {
		return false
	}
	if len(told) > 4*maxAccepted {
		clear(told)
	}
	told[version] = true
	return true
}

// forget lets a later refusal of version be judged again.
func (f *refusals) forget(client, version string) {
	f.mu.Lock()
	delete(f.judging[client], version)
	f.mu.Unlock()
}

// Revocations returns, per client, how many tokens were found revoked outside the rotator.
func (g *Gateway) Revocations() map[string]uint64 { return g.metrics.revokedOutside() }
