package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/apicall"
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

// Replay is the evidence about a held call that Clear refused again when the gateway replayed it
// with a newer token.
type Replay struct {
	Refused string // the version the call was refused with first
	Version string // the version the replay carried
	// VersionRefused: Clear refused Version before, for another call, and no judgement has since
	// cleared it (it is being judged, or was judged revoked or never accepted).
	VersionRefused bool
	ValidTill      *time.Time // the replayed token's expiry
	Now            time.Time
}

// RefusedWhateverTheToken decides whether a replay Clear refused says that Clear refuses the call
// itself, whatever the token (the API client lacks that API's product, say): the call was refused
// with two tokens, the second live and refused for no other call. A revoked token would explain
// one refusal, not two in a row with tokens issued apart. It is pure.
func RefusedWhateverTheToken(r Replay) bool {
	switch {
	case r.Version == "" || r.Version == r.Refused:
		return false // one token refused: that says nothing about the call
	case r.ValidTill != nil && !r.Now.Before(*r.ValidTill):
		return false // the newer token ran out under way
	case r.VersionRefused:
		return false // the newer token is refused for other calls too: the token, not the call
	}
	return true
}

// EventID is the event of the forced rotation asked for after version was found revoked: every
// gateway and daemon that finds the same version revoked asks with the same id, so the engine
// lets one request through between them and answers the others "duplicate". `rotator status`
// finds the last one in the state's events (rotation.RevokedEvent).
func EventID(version string) string { return rotation.RevokedEvent(version) }

// maxAccepted bounds the versions remembered as accepted per client.
const maxAccepted = 16

// maxRefusedCalls bounds the calls remembered as refused whatever the token, per client.
const maxRefusedCalls = 8

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
	// calls are the calls Clear refused whatever the token (RefusedWhateverTheToken), oldest
	// first: their refusals are passed on at once, never judged, until Clear accepts one of them.
	calls  map[string][]apicall.Call // client -> calls
	ncalls int                       // the calls remembered, all clients together
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
	return &refusals{g: g, ok: map[string][]acceptance{}, judging: map[string]map[string]judgement{},
		told: map[string]map[string]bool{}, calls: map[string][]apicall.Call{}}
}

// number gives a the next attempt number, as it is sent.
func (f *refusals) number(a *attempt) { a.seq = f.sent.Add(1) }

func (f *refusals) accepted(a *attempt) {
	client, version := a.route.Name, a.tok.Version
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ncalls > 0 {
		f.unlearn(client, a)
	}
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

// refusedCall reports whether Clear refuses a's call whatever the token (learnt from a replay it
// refused): its refusal is passed on at once, neither held nor judged.
func (f *refusals) refusedCall(a *attempt) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls[a.route.Name] {
		if c.Is(a.method, a.path) {
			return true
		}
	}
	return false
}

// learn remembers a's call as refused whatever the token when a is a replay whose refusal says so
// (RefusedWhateverTheToken), and reports whether it did. Called under f.mu.
func (f *refusals) learn(a *attempt) bool {
	if a.replayOf == "" {
		return false
	}
	client := a.route.Name
	r := Replay{Refused: a.replayOf, Version: a.tok.Version, VersionRefused: f.judging[client][a.tok.Version] != 0,
		ValidTill: a.tok.ValidTill, Now: f.g.o.Now()}
	if !RefusedWhateverTheToken(r) {
		return false
	}
	list := f.calls[client]
	for _, c := range list {
		if c.Is(a.method, a.path) {
			return true
		}
	}
	list = append(list, apicall.Call{Method: a.method, Path: a.path})
	if len(list) > maxRefusedCalls {
		list = list[len(list)-maxRefusedCalls:]
	}
	f.ncalls += len(list) - len(f.calls[client])
	f.calls[client] = list
	f.g.log.Warn("gateway: Clear refused a call again when it was replayed with a newer token: the call is refused whatever the token (the API client may lack that API's product), not revoked; its refusals (on any id in the path's place of an id) are passed on at once, never held, judged or rotated for, until Clear accepts it",
		"client", client, "method", a.method, "path", a.path, "version", a.replayOf, "replayed_version", a.tok.Version)
	return true
}

// unlearn forgets a's call, accepted now, as refused whatever the token: its next refusal is
// judged. Called under f.mu.
func (f *refusals) unlearn(client string, a *attempt) {
	list := f.calls[client]
	for i, c := range list {
		if c.Is(a.method, a.path) {
			f.calls[client] = append(list[:i:i], list[i+1:]...)
			f.ncalls--
			f.g.log.Info("gateway: Clear accepted a call it had refused whatever the token; its refusals are judged again",
				"client", client, "method", a.method, "path", a.path)
			return
		}
	}
}

// refused starts judging a's refusal, unless its version is already being judged or was judged,
// or a is a replay whose refusal shows that Clear refuses the call whatever the token (learn).
func (f *refusals) refused(a *attempt) {
	rt, tok := a.route, a.tok
	f.mu.Lock()
	if f.learn(a) {
		f.mu.Unlock()
		return
	}
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
