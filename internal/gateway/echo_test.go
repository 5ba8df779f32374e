package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// The caller holds no token by design, and must not be shown one: a server in front of Clear that
// echoes the request's headers in its answer's (a debugging filter, a header copied back by a load
// balancer) would hand the caller the token the gateway added. Such headers are dropped from the
// answer, a 2xx or a 401 passed through after the hold alike; the others pass.
func TestAnAnswerNeverEchoesTheToken(t *testing.T) {
	t.Parallel()
	f := echoingFixture(t, func(r *http.Request, resp *http.Response) {
		tok := r.Header.Get(clear.HeaderAuthToken)
		resp.Header.Set(clear.HeaderAuthToken, tok)
		resp.Header.Set("X-Clear-Auth-Token", tok)
		resp.Header.Set("X-Debug-Request", "GET "+r.URL.Path+" token="+tok)
		resp.Header.Set("X-Kept", "yes")
	})
	tok := f.rotate()
	f.h.Set(tok)
	check := func(what string, rec *httptest.ResponseRecorder, code int) {
		t.Helper()
		if rec.Code != code {
			t.Fatalf("%s: %d %s", what, rec.Code, rec.Body)
		}
		for k, vs := range rec.Header() {
			for _, v := range vs {
				if strings.Contains(v, tok.Value.Reveal()) {
					t.Errorf("%s: the answer's %s shows the token", what, k)
				}
			}
		}
		if rec.Header().Get("X-Kept") != "yes" {
			t.Errorf("%s: an ordinary header was dropped", what)
		}
	}
	check("accepted", f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)), http.StatusOK)
	f.w.Issue() // revoked, and no newer token comes: Clear's 401 passes through after the hold
	check("refused", f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)), http.StatusUnauthorized)
}

// A 401 held and then passed through is buffered whole: a body that quotes the token refused (an
// error message naming it) would show the caller a token, which Clear may still accept for other
// calls (a call refused for a product the API client lacks). The token is blanked in it.
func TestARefusalPassedThroughNeverQuotesTheToken(t *testing.T) {
	t.Parallel()
	f := echoingFixture(t, func(r *http.Request, resp *http.Response) {
		if resp.StatusCode == http.StatusUnauthorized {
			resp.Body.Close()
			body := `{"errors":[{"error_code":"CLI-TOK-002","error_message":"token ` + r.Header.Get(clear.HeaderAuthToken) + ` is not valid"}]}`
			resp.Body, resp.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
			resp.Header.Del("Content-Length")
		}
	})
	tok := f.rotate()
	f.h.Set(tok)
	f.w.Issue() // revoked, and no newer token comes: Clear's 401 passes through after the hold
	rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "CLI-TOK-002") {
		t.Fatalf("%d %s; want Clear's 401 passed through", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), tok.Value.Reveal()) {
		t.Errorf("the refusal passed through quotes the token: %s", rec.Body)
	}
}

// echoingFixture is a fixture with a short hold whose Clear answers pass through echo first: a
// server in front of Clear that copies something of the request into its answer.
func echoingFixture(t *testing.T, echo func(r *http.Request, resp *http.Response)) *fixture {
	return newFixture(t, func(o *gateway.Options) {
		o.Hold = 100 * time.Millisecond
		next := o.Transport
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(r)
			if err == nil {
				echo(r, resp)
			}
			return resp, err
		})
	})
}
