package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// An ERP that still asks Clear for a token, now through the gateway (the step that fetched the
// token was not removed, or a library does it by itself): with the client secret, every token
// Clear issues revokes the one the gateway sends to every ERP; without it, Clear's 401 (the client
// secret is missing) was held and judged as a refusal of the gateway's token, which Clear accepted
// before and which is still AWSCURRENT: "revoked outside", healed with a forced rotation that
// revokes the token in use. Neither may reach Clear, in any spelling a server could take for the
// token API's path; and the client secret never leaves with any other call either.
func TestTheTokenAPIIsNeverCalledThroughTheGateway(t *testing.T) {
	t.Parallel()
	var f *fixture
	f = newFixture(t, func(o *gateway.Options) {
		// The base URL of Clear itself: the token API is below it, as at Clear.
		o.Clients[0].BaseURL = strings.TrimSuffix(o.Clients[0].BaseURL, "/base")
		o.Clients[0].Confirm = func(context.Context) (string, error) { tok, _ := f.h.Current(); return tok.Version, nil }
	})
	f.h.Set(f.rotate())
	before := f.w.Emu.Requests(f.w.Secrets[0])
	call := func(method, target string, secret bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/", nil)
		u, err := url.ParseRequestURI(target) // as the server reads a request line
		if err != nil {
			t.Fatal(err)
		}
		r.RequestURI, r.URL = target, u
		if secret {
			r.Header.Set(clear.HeaderClientSecret, f.w.Secrets[0])
		}
		return f.do(r)
	}
	// The gateway's token is in use: Clear accepted it.
	if rec := call(http.MethodGet, "/base/v1/x", false); rec.Code != http.StatusOK {
		t.Fatalf("first call: %d %s", rec.Code, rec.Body)
	}
	for _, target := range []string{
		clear.TokenPath,
		clear.TokenPath + "/",
		clear.TokenPath + "?x=1",
		"//integration//v1/authz/token",
		"/Integration/V1/AUTHZ/Token",
		"/integration/v1/authz/%74oken",
		"/integration/v1/authz%2Ftoken",
		"/integration/v1/authz/token;jsessionid=1",
		"/integration;a=b/v1\\authz/token",
	} {
		for _, secret := range []bool{true, false} {
			rec := call(http.MethodGet, target, secret)
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s (client secret sent: %v): %d %s; want the gateway's 403", target, secret, rec.Code, rec.Body)
				continue
			}
			if code, src := clearError(t, rec); code != gateway.CodeTokenAPI || src != gateway.ErrorSource {
				t.Errorf("%s: code %s source %s", target, code, src)
			}
		}
	}
	if n := f.w.Emu.Requests(f.w.Secrets[0]) - before; n != 0 {
		t.Errorf("Clear was asked for %d tokens through the gateway", n)
	}
	// Paths that only look like it go through, without the client secret.
	for _, target := range []string{"/base/integration/v1/authz/token", "/base/v1/authz/tokens", "/base/token", "/base/integration/v1/authz/token/x"} {
		if rec := call(http.MethodGet, target, true); rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", target, rec.Code, rec.Body)
		}
	}
	for _, s := range f.up.requests() {
		if v := s.Header.Get(clear.HeaderClientSecret); v != "" {
			t.Errorf("%s reached Clear with the ERP's client secret", s.Path)
		}
	}
	if n := f.heal.Load(); n != 0 {
		t.Errorf("a forced rotation was asked for %d times", n)
	}
}

// The gateway's own refusals are counted with the requests it answers, as the metric's help says
// ("its own answers included"): an ERP that still asks the token API through the gateway, the
// mistake the docs warn of most, showed only in the access log (an audit's walk-through). With one
// client they count as its requests.
func TestTheGatewaysOwnRefusalsAreCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.h.Set(f.rotate())
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/integration/v1/authz/token", nil),
		httptest.NewRequest("TRACE", "/v1/x", nil),
		httptest.NewRequest(http.MethodGet, "/v1/../x", nil),
	} {
		f.do(r)
	}
	f.wantMetric(`clear_rotator_gateway_requests_total{client="erp",code="4xx"}`, "3")
}
