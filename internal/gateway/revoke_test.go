package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// A token Clear accepted, then refused while still current: judged revoked once, healed once, and
// the held requests go out with the healed token.
func TestARevocationOutsideIsHealedOnce(t *testing.T) {
	t.Parallel()
	var f *fixture
	var heals sync.Map
	f = newFixture(t, func(o *gateway.Options) {
		o.Hold = 5 * time.Second
		o.Clients[0].Confirm = func(ctx context.Context) (string, error) {
			tok, _ := f.h.Current()
			return tok.Version, nil
		}
		o.Clients[0].Heal = func(ctx context.Context, version string) {
			f.heal.Add(1)
			heals.Store(version, true)
			f.h.Set(f.rotate())
		}
	})
	tok := f.rotate()
	f.h.Set(tok)
	if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusOK {
		t.Fatalf("first call: %d", rec.Code)
	}
	f.w.Issue() // someone asks Clear with the same client secret: tok is revoked
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		wg.Go(func() {
			codes[i] = f.do(httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader(`{"n":1}`))).Code
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("held request %d: %d", i, c)
		}
	}
	if n := f.heal.Load(); n != 1 {
		t.Fatalf("healed %d times, want 1", n)
	}
	if _, ok := heals.Load(tok.Version); !ok {
		t.Error("the heal was not for the refused version")
	}
	var b strings.Builder
	f.gw.WriteMetrics(&b)
	if v := rig.Sample(b.String(), `clear_rotator_gateway_revoked_outside_total{client="erp"}`); v != "1" {
		t.Errorf("revoked_outside_total = %q", v)
	}
	if !strings.Contains(f.logs.String(), "revoked outside the rotator") {
		t.Error("the revocation was not logged")
	}
}

// A token Clear never accepted is reported, never rotated for.
func TestANeverAcceptedTokenIsNotRotatedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *gateway.Options) { o.Hold = 500 * time.Millisecond })
	f.h.Set(gateway.Token{Value: clear.NewAccessToken("1.never-accepted-token-0123456789"), Version: "bad"})
	f.w.Hide("1.never-accepted-token-0123456789")
	for range 3 {
		if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("%d, want Clear's 401", rec.Code)
		}
	}
	rig.Await(t, "the judgement", 5*time.Second, func() bool { return strings.Contains(f.logs.String(), "never accepted it") })
	if n := f.heal.Load(); n != 0 {
		t.Fatalf("healed %d times for a token Clear never accepted", n)
	}
	if strings.Count(f.logs.String(), "never accepted it") != 1 {
		t.Error("the never-accepted token was reported more than once")
	}
}

// A 401 for one call while Clear accepts the same token for others (the API client lacks that
// product, say) is not a revocation: a token revoked outside is refused for every call. Judged as
// one, each token version it happened with was rotated for once, a forced rotation per version for
// as long as the ERP made both kinds of call, until Clear's daily budget ran out.
func TestACallRefusedWhileOthersAreAcceptedIsNotRotatedFor(t *testing.T) {
	t.Parallel()
	f, _ := healingFixture(t, 300*time.Millisecond)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the ERP's ordinary calls, accepted all along
		for {
			select {
			case <-stop:
				return
			default:
			}
			if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusOK {
				t.Errorf("an ordinary call: %d", rec.Code)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	for range 6 { // six refusals, each judged after the 100 ms grace: none is a revocation
		if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/no-product", nil)); rec.Code != http.StatusUnauthorized {
			t.Errorf("the refused call: %d, want Clear's 401", rec.Code)
		}
	}
	time.Sleep(500 * time.Millisecond) // the last judgement's grace, and more
	close(stop)
	wg.Wait()
	if n := f.heal.Load(); n != 0 {
		t.Fatalf("rotated %d times for a call Clear refuses with a token it accepts", n)
	}
	if n := strings.Count(f.logs.String(), "accepts it for other calls"); n != 1 {
		t.Errorf("reported %d times, want once for the version", n)
	}
	var b strings.Builder
	f.gw.WriteMetrics(&b)
	if v := rig.Sample(b.String(), `clear_rotator_gateway_revoked_outside_total{client="erp"}`); v != "0" {
		t.Errorf("revoked_outside_total = %q, want 0", v)
	}
}

// noProduct is a call Clear refuses with 401 whatever the token (the API client lacks that API's
// product) until enable is set, and counts the requests it received.
type noProduct struct {
	enable atomic.Bool
	n      atomic.Int64
}

func (p *noProduct) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	p.n.Add(1)
	if p.enable.Load() {
		io.WriteString(rw, `{"ok":true}`)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusUnauthorized)
	io.WriteString(rw, `{"errors":[{"error_code":"CLI-AUTH-001","error_message":"Not authorised for this product.","error_source":"CLEAR","error_id":null}]}`)
}

// healingFixture is a fixture holding refused calls for hold, whose heal rotates (a token request
// to Clear) and hands the new token to the holder, as the embedded engine does, with a call Clear
// refuses whatever the token at /v1/no-product.
func healingFixture(t *testing.T, hold time.Duration, tune ...func(o *gateway.Options)) (*fixture, *noProduct) {
	var f *fixture
	f = newFixture(t, func(o *gateway.Options) {
		for _, tn := range tune {
			tn(o)
		}
		o.Hold = hold
		o.Clients[0].Confirm = func(ctx context.Context) (string, error) {
			tok, _ := f.h.Current()
			return tok.Version, nil
		}
		o.Clients[0].Heal = func(ctx context.Context, version string) {
			f.heal.Add(1)
			f.h.Set(f.rotate())
		}
	})
	p := &noProduct{}
	f.w.Handle("/base/v1/no-product", p)
	f.h.Set(f.rotate())
	return f, p
}

// An ERP that calls rarely: a call Clear accepts, later one Clear refuses for a reason of its own
// (the API client lacks that API's product), then nothing. Nothing contradicts "revoked", so the
// first such episode heals; but the held call, replayed with the token the heal brought, is
// refused again: the call is refused, not the token. Before the gateway learnt that, every such
// episode was one more forced rotation (a needless token request, and the token every ERP held
// revoked): three pairs, three forced rotations.
func TestACallRefusedAgainAfterAHealIsNeverHealedAgain(t *testing.T) {
	t.Parallel()
	f, p := healingFixture(t, 5*time.Second)
	episode := func() int {
		if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusOK {
			t.Fatalf("an ordinary call: %d", rec.Code)
		}
		return f.do(httptest.NewRequest(http.MethodGet, "/v1/no-product", nil)).Code
	}
	if c := episode(); c != http.StatusUnauthorized {
		t.Fatalf("the refused call: %d, want Clear's 401", c)
	}
	if n := f.heal.Load(); n != 1 {
		t.Fatalf("the first episode healed %d times, want 1 (nothing contradicts a revocation yet)", n)
	}
	if n := p.n.Load(); n != 2 {
		t.Fatalf("the refused call reached Clear %d times, want 2 (once, then replayed after the heal)", n)
	}
	issued := f.w.ClearRequests()
	for i := range 3 {
		if c := episode(); c != http.StatusUnauthorized {
			t.Fatalf("episode %d: the refused call: %d, want Clear's 401", i+2, c)
		}
	}
	time.Sleep(500 * time.Millisecond) // a judgement's grace (100 ms), and more
	if n := f.heal.Load(); n != 1 {
		t.Errorf("healed %d times, want 1: the call's route was refused with two tokens", n)
	}
	if n := f.w.ClearRequests() - issued; n != 0 {
		t.Errorf("%d token requests to Clear after the route was learnt", n)
	}
	if n := p.n.Load(); n != 5 {
		t.Errorf("the refused call reached Clear %d times, want 5: once per later episode, neither held nor replayed", n)
	}
	if n := strings.Count(f.logs.String(), "refused whatever the token"); n != 1 {
		t.Errorf("the route was reported %d times, want once", n)
	}
	// A real revocation, on another route, is still healed.
	f.w.Issue()
	if rec := f.do(httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader(`{"n":1}`))); rec.Code != http.StatusOK {
		t.Fatalf("a call held across a real revocation: %d", rec.Code)
	}
	if n := f.heal.Load(); n != 2 {
		t.Errorf("healed %d times, want 2: a real revocation on another route is healed", n)
	}
	// The first episode's replay was refused too; the later three were passed on as the call's.
	f.wantMetric(`clear_rotator_gateway_refusals_passed_total{client="erp",reason="replay_refused"}`, "1")
	f.wantMetric(`clear_rotator_gateway_refusals_passed_total{client="erp",reason="call"}`, "3")
	var b strings.Builder
	f.gw.WriteMetrics(&b)
	if v := rig.Sample(b.String(), `clear_rotator_gateway_revoked_outside_total{client="erp"}`); v != "2" {
		t.Errorf("revoked_outside_total = %q, want 2", v)
	}
}

// A route learnt as refused whatever the token is forgotten when Clear accepts a call on it (the
// product was enabled): its next refusal is judged again, and a revocation found through it is
// healed.
func TestARouteAcceptedAgainIsJudgedAgain(t *testing.T) {
	t.Parallel()
	f, p := healingFixture(t, 5*time.Second)
	if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusOK {
		t.Fatalf("an ordinary call: %d", rec.Code)
	}
	if c := f.do(httptest.NewRequest(http.MethodGet, "/v1/no-product", nil)).Code; c != http.StatusUnauthorized {
		t.Fatalf("the refused call: %d", c)
	}
	rig.Await(t, "the route learnt", 5*time.Second, func() bool { return strings.Contains(f.logs.String(), "refused whatever the token") })
	p.enable.Store(true) // the product is enabled
	if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/no-product", nil)); rec.Code != http.StatusOK {
		t.Fatalf("the call, its product enabled: %d", rec.Code)
	}
	p.enable.Store(false)
	f.w.Issue() // and the token is revoked outside
	heals := f.heal.Load()
	if c := f.do(httptest.NewRequest(http.MethodGet, "/v1/no-product", nil)).Code; c != http.StatusUnauthorized {
		t.Fatalf("the refused call: %d", c)
	}
	if n := f.heal.Load() - heals; n != 1 {
		t.Errorf("healed %d times after the route was accepted again and its token revoked, want 1", n)
	}
}

// The same, for a call whose path carries an id: each episode names another invoice, and the call
// learnt from the first one is the call of the next ones, whatever their id. Learnt by its exact
// path, every episode with a new id was one more forced rotation. A call that differs in a segment
// that is not an id is another call: its refusal is still judged, and a revocation found through
// it healed.
func TestACallRefusedAgainIsLearntWhateverItsIDs(t *testing.T) {
	t.Parallel()
	f, p := healingFixture(t, 5*time.Second)
	f.w.Handle("/base/v1/no-product/", p)
	episode := func(path string) int {
		if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusOK {
			t.Fatalf("an ordinary call: %d", rec.Code)
		}
		return f.do(httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{}`))).Code
	}
	if c := episode("/v1/no-product/1001/cancel"); c != http.StatusUnauthorized {
		t.Fatalf("the refused call: %d, want Clear's 401", c)
	}
	if n := f.heal.Load(); n != 1 {
		t.Fatalf("the first episode healed %d times, want 1", n)
	}
	for _, id := range []string{"1002", "1003", "29AAACB1234C1Z5"} {
		if c := episode("/v1/no-product/" + id + "/cancel"); c != http.StatusUnauthorized {
			t.Fatalf("invoice %s: %d, want Clear's 401", id, c)
		}
	}
	time.Sleep(500 * time.Millisecond) // a judgement's grace (100 ms), and more
	if n := f.heal.Load(); n != 1 {
		t.Errorf("healed %d times, want 1: the call was refused with two tokens, whatever its id", n)
	}
	if n := p.n.Load(); n != 5 {
		t.Errorf("the refused call reached Clear %d times, want 5: once per later episode, neither held nor replayed", n)
	}
	// Another call under the same prefix: judged, and its token, revoked outside, healed.
	if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)); rec.Code != http.StatusOK {
		t.Fatalf("an ordinary call: %d", rec.Code)
	}
	f.w.Issue()
	if c := f.do(httptest.NewRequest(http.MethodPost, "/v1/no-product/1004/print", strings.NewReader(`{}`))).Code; c != http.StatusUnauthorized {
		t.Fatalf("another call: %d", c)
	}
	if n := f.heal.Load(); n != 2 {
		t.Errorf("healed %d times, want 2: a revocation found through another call is healed", n)
	}
}
