package gateway

import (
	"context"
	"sync"
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
	// NeverAccepted: Clear never accepted the token through this gateway (the API client lacks the
	// product, say). Reported; rotating would not help and would spend the budget.
	NeverAccepted Verdict = "never-accepted"
	// Revoked: Clear accepted the token, then refused it while it is still AWSCURRENT and
	// unexpired: someone asked Clear for a token with the same client secret, outside the rotator.
	Revoked Verdict = "revoked"
)

// Refusal is the evidence about one refused token.
type Refusal struct {
	Version   string     // the refused token's version
	Accepted  bool       // Clear accepted this version through the gateway before
	Current   string     // AWSCURRENT's version, read after the grace
	ValidTill *time.Time // the refused token's expiry
	Now       time.Time
}

// Judge decides what a refusal means. It is pure; the order of the rules is their priority.
func Judge(r Refusal) Verdict {
	switch {
	case r.Current != r.Version:
		return Replaced
	case r.ValidTill != nil && !r.Now.Before(*r.ValidTill):
		return Expired
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

// refusals tracks which token versions Clear accepted and judges the ones it refused, once per
// version.
type refusals struct {
	g       *Gateway
	mu      sync.Mutex
	ok      map[string][]string        // client -> versions accepted, oldest first
	judging map[string]map[string]bool // client -> versions judged or being judged
}

func newRefusals(g *Gateway) *refusals {
	return &refusals{g: g, ok: map[string][]string{}, judging: map[string]map[string]bool{}}
}

func (f *refusals) accepted(rt *route, version string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.ok[rt.Name]
	if n := len(list); n > 0 && list[n-1] == version {
		return
	}
	// A version refused before and accepted now (an allowlist fixed, say) may be judged again.
	delete(f.judging[rt.Name], version)
	for _, v := range list {
		if v == version {
			return
		}
	}
	list = append(list, version)
	if len(list) > maxAccepted {
		list = list[len(list)-maxAccepted:]
	}
	f.ok[rt.Name] = list
}

func (f *refusals) wasAccepted(client, version string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.ok[client] {
		if v == version {
			return true
		}
	}
	return false
}

// refused starts judging tok's refusal, unless it is already being judged or was judged.
func (f *refusals) refused(rt *route, tok Token) {
	f.mu.Lock()
	seen := f.judging[rt.Name]
	if seen == nil {
		seen = map[string]bool{}
		f.judging[rt.Name] = seen
	}
	if seen[tok.Version] {
		f.mu.Unlock()
		return
	}
	if len(seen) > 4*maxAccepted {
		clear(seen)
	}
	seen[tok.Version] = true
	f.mu.Unlock()
	go f.judge(rt, tok)
}

// judge waits the grace for a newer token; if none comes, it reads AWSCURRENT and decides.
func (f *refusals) judge(rt *route, tok Token) {
	g := f.g
	ctx, cancel := context.WithTimeout(context.Background(), g.o.RevokeGrace)
	_, newer := rt.Source.Newer(ctx, tok.Version)
	cancel()
	if newer {
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
	v := Judge(Refusal{Version: tok.Version, Accepted: f.wasAccepted(rt.Name, tok.Version), Current: current,
		ValidTill: tok.ValidTill, Now: g.o.Now()})
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
	case NeverAccepted:
		g.log.Error("gateway: Clear refuses the token in AWSCURRENT and never accepted it through the gateway (the API client may lack the product or the IP allowlist); no rotation is asked for",
			"client", rt.Name, "version", tok.Version)
	case Replaced, Expired:
		f.forget(rt.Name, tok.Version)
	}
}

// forget lets a later refusal of version be judged again.
func (f *refusals) forget(client, version string) {
	f.mu.Lock()
	delete(f.judging[client], version)
	f.mu.Unlock()
}

// Revocations returns, per client, how many tokens were found revoked outside the rotator.
func (g *Gateway) Revocations() map[string]uint64 { return g.metrics.revokedOutside() }
