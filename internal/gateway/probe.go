package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// The daemon and the Lambda never call Clear with the token they stored, so a token revoked outside
// the rotator (someone asked Clear for one with the same client secret) stays dead, unseen, until
// the next due rotation: hours with day-long tokens. Callers of the gateway find it, but only
// where ERPs call through a gateway. A probe is a caller the rotator brings itself: now and then it
// sends a client's ProbePath, a harmless GET the operator chose, through the gateway's own path, so
// that one judgement decides for probes and callers alike. Clear accepted the token on the probe,
// then refuses it while it is AWSCURRENT and unexpired: revoked outside, healed with one forced
// rotation where the gateway has the rotator's rights, reported where it has not. A probe Clear
// never accepted proves nothing and heals nothing (a wrong path, a product the API client lacks).

// ErrNoProbe is Probe's error for a client without a probe path, or one the gateway would refuse.
var ErrNoProbe = errors.New("gateway: no probe path for this client")

// Probe sends client name's probe, a GET of its ProbePath with its live token, exactly as a
// caller's request without a body is sent: held while no live token is there, a 401 judged,
// healed and replayed. It returns the status a caller would have seen.
func (g *Gateway) Probe(ctx context.Context, name string) (int, error) {
	rt := g.routes[name]
	if rt == nil || rt.ProbePath == "" {
		return 0, ErrNoProbe
	}
	if clear.CheckProbePath(rt.ProbePath) != nil {
		return 0, ErrNoProbe // config refuses these; the rule holds for probes given any other way too
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, rt.ProbePath, nil)
	if err != nil {
		return 0, ErrNoProbe
	}
	r.RequestURI = rt.ProbePath
	r.Header.Set("User-Agent", "clear-rotator-probe")
	rec := &recorder{ResponseWriter: &discard{h: http.Header{}}, probe: true}
	g.forward(rec, r, rt)
	code := rec.code()
	rt.m.probed(code)
	return code, nil
}

// confirmProbe sends the probe r once more, a fraction of the revocation's grace after its
// refusal. Callers' calls contradict a revocation when Clear accepts the token for one sent after
// the refusal (a passing fault at Clear, a call refused for a reason of its own); a probe alone has
// no such calls beside it, and a single refusal would cost a forced rotation, which revokes the
// token every ERP holds. If Clear accepts the second probe, the first refusal heals nothing; if it
// refuses it too, the second is held and replayed with the first.
func (g *Gateway) confirmProbe(r *http.Request, rt *route) {
	go func() {
		t := time.NewTimer(g.o.RevokeGrace / 5)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		g.forward(&recorder{ResponseWriter: &discard{h: http.Header{}}, probe: true, confirming: true}, r.Clone(r.Context()), rt)
	}()
}

// discard is the response writer of a probe: the answer's status is all it keeps.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// probes sends every client's probe each interval, one client after another (a probe held for a
// heal delays the others by as much), until ctx ends; and at once, within a second, when a client's
// token changed. A revocation is found only in a token Clear has accepted on an earlier probe, so
// a new token is probed before it can be revoked unseen, not up to an interval later. Each change
// of a client's answer between accepted (2xx) and anything else is logged once: a probe that keeps
// failing says so when it starts, not every interval.
func (s *Service) probes(ctx context.Context, every time.Duration) {
	t := time.NewTicker(min(every, time.Second))
	defer t.Stop()
	last := map[string]*probeState{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		set := s.set.Load()
		for _, name := range set.gw.names {
			st := last[name]
			if st == nil {
				st = &probeState{}
				last[name] = st
			}
			tok, _ := set.holders[name].Current()
			if time.Since(st.at) < every && tok.Version == st.version {
				continue
			}
			st.at, st.version = time.Now(), tok.Version
			if code, err := set.gw.Probe(ctx, name); err == nil {
				st.answered(s.log, name, code)
			}
		}
	}
}

// probeState is what the probe loop remembers of a client's probes.
type probeState struct {
	at         time.Time // of the last probe
	version    string    // the token it was sent with
	ok, before bool      // the last answer was accepted; there was one
}

// answered notes a probe's answer, logging a change between accepted and not.
func (st *probeState) answered(log *slog.Logger, name string, code int) {
	accepted := code >= 200 && code < 300
	switch {
	case !accepted && (!st.before || st.ok):
		log.Warn("gateway: the probe was not accepted; while Clear does not accept it, it cannot find a token revoked outside the rotator",
			"client", name, "status", code)
	case accepted && st.before && !st.ok:
		log.Info("gateway: the probe is accepted again", "client", name, "status", code)
	}
	st.ok, st.before = accepted, true
}
