package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	var f *fixture
	f = newFixture(t, func(o *gateway.Options) {
		o.Hold = 300 * time.Millisecond
		o.Clients[0].Confirm = func(ctx context.Context) (string, error) {
			tok, _ := f.h.Current()
			return tok.Version, nil
		}
		o.Clients[0].Heal = func(ctx context.Context, version string) {
			f.heal.Add(1)
			f.h.Set(f.rotate())
		}
	})
	f.w.Handle("/base/v1/no-product", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusUnauthorized)
		io.WriteString(rw, `{"errors":[{"error_code":"CLI-AUTH-001","error_message":"Not authorised for this product.","error_source":"CLEAR","error_id":null}]}`)
	}))
	f.h.Set(f.rotate())
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
