package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// A base URL with a path (a corporate egress that routes /clear/ to Clear, say) bounds what the
// gateway reaches with its token: every request goes below that path. A ".." segment in the
// caller's path, in any spelling a server resolves (escaped, with an escaped slash, with ";"
// parameters as Tomcat reads them), was forwarded as it came, and the server resolved it above
// the base URL's path. The gateway refuses such a path itself; nothing reaches the server.
func TestDotSegmentsNeverLeaveTheBasePath(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sent []string
	f := newFixture(t, func(o *gateway.Options) {
		next := o.Transport
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			sent = append(sent, r.URL.RequestURI())
			mu.Unlock()
			return next.RoundTrip(r)
		})
	})
	f.h.Set(f.rotate())
	for _, target := range []string{
		"/../secret/x",
		"/v1/../../secret/x",
		"/%2e%2e/secret/x",
		"/%2E%2E/secret/x",
		"/..%2fsecret/x",
		"/..;/secret/x",
		"/..\\secret/x",
		"/./v1/x",
		"/v1/..",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		u, err := url.ParseRequestURI(target) // as the server reads a request line
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		r.RequestURI, r.URL = target, u
		rec := f.do(r)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s; want the gateway's 400", target, rec.Code, rec.Body)
			continue
		}
		if code, _ := clearError(t, rec); code != gateway.CodeBadTarget {
			t.Errorf("%s: code %s", target, code)
		}
	}
	mu.Lock()
	if len(sent) != 0 {
		t.Errorf("sent to Clear: %q", sent)
	}
	mu.Unlock()
	// Dots inside a segment are an ordinary path.
	if rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/file..name/.x/x.", nil)); rec.Code != http.StatusOK {
		t.Errorf("dots inside segments: %d %s", rec.Code, rec.Body)
	}
}
