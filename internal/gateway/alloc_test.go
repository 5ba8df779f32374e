package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The request path allocates little: before the gateway gave its ReverseProxy a BufferPool, every
// response cost a fresh 32 KiB copy buffer (80% of the bytes the benchmark's gateway allocated,
// BENCHMARKS.md 9). Not parallel: it reads the process's allocation counter.
func TestRequestPathAllocatesLittle(t *testing.T) {
	h := &gateway.Holder{}
	h.Set(gateway.Token{Value: clear.NewAccessToken("alloc-test-token-0123456789"), Version: "v1"})
	up := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
			Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}, nil
	})
	gw, err := gateway.New(gateway.Options{Clients: []gateway.Client{{Name: "erp", BaseURL: "https://clear.example", Source: h}},
		Transport: up})
	if err != nil {
		t.Fatal(err)
	}
	serve := func() {
		r := httptest.NewRequest(http.MethodGet, "/v1/ping", nil)
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	for range 50 {
		serve() // warm the pool
	}
	const n = 500
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		serve()
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per request (test request and recorder included)", per)
	// About 9 KiB without -race; with it, sync.Pool drops a quarter of what is put back, which
	// adds about 8 KiB. Without a pool it is over 40 KiB either way.
	if per > 24<<10 {
		t.Errorf("%d bytes allocated per request; want under 24 KiB (a 32 KiB copy buffer per response?)", per)
	}
}

// The ERP's Accept-Encoding reaches Clear as it sent it. (That the transport to Clear adds none of
// its own is TestUpstreamWritesTheRequestAsGiven.)
func TestAcceptEncodingAsTheERPSentIt(t *testing.T) {
	var got []string
	up := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.Header.Get("Accept-Encoding"))
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	})
	h := &gateway.Holder{}
	h.Set(gateway.Token{Value: clear.NewAccessToken("enc-test-token-0123456789"), Version: "v1"})
	gw, err := gateway.New(gateway.Options{Clients: []gateway.Client{{Name: "erp", BaseURL: "https://clear.example", Source: h}}, Transport: up})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/ping", nil)
	r.Header.Set("Accept-Encoding", "br")
	gw.ServeHTTP(httptest.NewRecorder(), r)
	if len(got) != 1 || got[0] != "br" {
		t.Fatalf("Clear saw Accept-Encoding %q, want br", got)
	}
}
