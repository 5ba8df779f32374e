package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// TestAProbeFindsATokenRevokedOutside: with no ERP calling through the gateway, the probe alone
// finds the revocation (Clear accepted the token on an earlier probe, then refused it while it is
// still the current one) and heals it once; its own held call goes out again with the new token.
// Probes in between ask Clear for nothing.
func TestAProbeFindsATokenRevokedOutside(t *testing.T) {
	t.Parallel()
	f, _ := healingFixture(t, 5*time.Second, func(o *gateway.Options) { o.Clients[0].ProbePath = "/v1/x?probe=1" })
	ctx := context.Background()
	for range 3 {
		if code, err := f.gw.Probe(ctx, "erp"); err != nil || code != http.StatusOK {
			t.Fatalf("probe: %d %v", code, err)
		}
	}
	issued := f.w.ClearRequests()
	if n := f.heal.Load(); n != 0 {
		t.Fatalf("%d heals with the token live", n)
	}
	f.w.Issue() // outside the rotator
	if code, err := f.gw.Probe(ctx, "erp"); err != nil || code != http.StatusOK {
		t.Fatalf("the probe after the revocation: %d %v; want it replayed with the healed token", code, err)
	}
	if n := f.heal.Load(); n != 1 {
		t.Fatalf("healed %d times, want 1", n)
	}
	if n := f.w.ClearRequests() - issued; n != 2 {
		t.Errorf("%d token requests, want 2: the outside one and the heal", n)
	}
	got := f.up.requests()
	if last := got[len(got)-1]; last.Method != http.MethodGet || last.Path != "/base/v1/x" || last.Query != "probe=1" || last.Header.Get("User-Agent") != "clear-rotator-probe" {
		t.Errorf("the probe reached Clear as %s %s?%s (%q)", last.Method, last.Path, last.Query, last.Header.Get("User-Agent"))
	}
	f.wantMetric(`clear_rotator_gateway_probes_total{client="erp",code="2xx"}`, "4")
	f.wantMetric(`clear_rotator_gateway_revoked_outside_total{client="erp"}`, "1")
	f.wantMetric(`clear_rotator_gateway_requests_total{client="erp",code="2xx"}`, "0") // probes are not callers
}

// A probe Clear never accepted (a path the API client has no product for) proves nothing: it is
// never taken for a revocation, and asks Clear for no token however often it is refused.
func TestAProbeNeverAcceptedNeverHeals(t *testing.T) {
	t.Parallel()
	f, p := healingFixture(t, 300*time.Millisecond, func(o *gateway.Options) { o.Clients[0].ProbePath = "/v1/no-product" })
	issued := f.w.ClearRequests()
	for range 3 {
		if code, err := f.gw.Probe(context.Background(), "erp"); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("probe: %d %v, want Clear's 401", code, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // past the judgement's grace (100 ms)
	if n := f.heal.Load(); n != 0 {
		t.Errorf("healed %d times for a probe Clear never accepted", n)
	}
	if n := f.w.ClearRequests() - issued; n != 0 {
		t.Errorf("%d token requests", n)
	}
	if n := p.n.Load(); n != 3 {
		t.Errorf("the probe reached Clear %d times, want 3", n)
	}
	f.wantMetric(`clear_rotator_gateway_probes_total{client="erp",code="4xx"}`, "3")
	// A probe is not a caller: its refusals are not ERP-visible failures (ClearGatewayRefusalsPassed).
	for _, why := range []string{"not_replayable", "no_newer_token", "replay_refused", "call"} {
		f.wantMetric(`clear_rotator_gateway_refusals_passed_total{client="erp",reason="`+why+`"}`, "0")
	}
}

func TestAClientWithoutAProbePathIsNotProbed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if _, err := f.gw.Probe(context.Background(), "erp"); !errors.Is(err, gateway.ErrNoProbe) {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.gw.Probe(context.Background(), "nobody"); !errors.Is(err, gateway.ErrNoProbe) {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.up.requests()); n != 0 {
		t.Fatalf("%d requests reached Clear", n)
	}
	// Without a live token a probe gets the gateway's 503, which no ERP call got.
	g := newFixture(t, func(o *gateway.Options) { o.Clients[0].ProbePath = "/v1/x"; o.Hold = time.Millisecond })
	if code, err := g.gw.Probe(context.Background(), "erp"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("a probe without a token: %d %v", code, err)
	}
	g.wantMetric(`clear_rotator_gateway_no_token_total{client="erp"}`, "0")
	// The configuration's rule (clear.CheckProbePath) holds for a probe path given any other way.
	for _, path := range []string{"/integration/v1/authz/token", "/v1/../integration/v1/authz/token", "//evil.example/x", "https://evil.example/x",
		"/v1/x y", "/v1/x#frag", "/" + strings.Repeat("a", 1024)} {
		f := newFixture(t, func(o *gateway.Options) { o.Clients[0].ProbePath = path })
		f.h.Set(f.rotate())
		issued := f.w.ClearRequests()
		if _, err := f.gw.Probe(context.Background(), "erp"); !errors.Is(err, gateway.ErrNoProbe) {
			t.Errorf("%.40q: err = %v", path, err)
		}
		if n := len(f.up.requests()) + f.w.ClearRequests() - issued; n != 0 {
			t.Errorf("%.40q: %d requests reached Clear", path, n)
		}
	}
}

// TestAPassingRefusalOfAProbeHealsNothing: Clear refuses one probe of a token it accepted, then
// accepts the next (a passing fault). A caller's refusal has other calls beside it to contradict a
// revocation; a probe sends its own: the second probe, accepted within the grace, says the token
// lives, and no forced rotation revokes it.
func TestAPassingRefusalOfAProbeHealsNothing(t *testing.T) {
	t.Parallel()
	var refuse atomic.Int32
	f, _ := healingFixture(t, 4*time.Second, func(o *gateway.Options) {
		o.Clients[0].ProbePath = "/v1/flaky"
		o.RevokeGrace = 2 * time.Second
	})
	var n atomic.Int32
	f.w.Handle("/base/v1/flaky", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if refuse.Add(-1) >= 0 {
			rw.WriteHeader(http.StatusUnauthorized)
			io.WriteString(rw, `{"errors":[{"error_code":"CLI-TOK-002"}]}`)
			return
		}
		io.WriteString(rw, `{"ok":true}`)
	}))
	ctx := context.Background()
	if code, err := f.gw.Probe(ctx, "erp"); err != nil || code != http.StatusOK {
		t.Fatalf("probe: %d %v", code, err)
	}
	issued := f.w.ClearRequests()
	refuse.Store(1)
	if code, err := f.gw.Probe(ctx, "erp"); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("the refused probe: %d %v, want Clear's 401 after the hold", code, err)
	}
	if h := f.heal.Load(); h != 0 {
		t.Errorf("healed %d times after one passing refusal", h)
	}
	if d := f.w.ClearRequests() - issued; d != 0 {
		t.Errorf("%d token requests", d)
	}
	if got := n.Load(); got != 3 {
		t.Errorf("the probe reached Clear %d times, want 3: accepted, refused, confirmed", got)
	}
}
