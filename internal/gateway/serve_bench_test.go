package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/logging"
)

// BenchmarkServeHTTP is the gateway's own cost per request, without sockets: its handler against
// an in-memory upstream, beside a bare httputil.ReverseProxy (with a BufferPool) that sets the
// token header and nothing else. What the gateway adds is the difference.
func BenchmarkServeHTTP(b *testing.B) {
	up := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
			Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}, nil
	})
	h := &gateway.Holder{}
	h.Set(gateway.Token{Value: clear.NewAccessToken("bench-token-0123456789"), Version: "v1"})
	const key = "bench-key-0123456789abcdef"
	run := func(b *testing.B, handler http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			r := httptest.NewRequest(http.MethodGet, "/v1/ping", nil)
			r.Header.Set(gateway.HeaderKey, key)
			r.Header.Set("User-Agent", "erp/1.0")
			r.Header.Set("Accept", "application/json")
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, r)
			if rec.Code != 200 {
				b.Fatalf("status %d", rec.Code)
			}
		}
	}
	for _, lc := range []struct {
		name  string
		level slog.Level
	}{{"gateway", slog.LevelInfo}, {"gateway-no-access-log", slog.LevelWarn}} {
		b.Run(lc.name, func(b *testing.B) {
			gw, err := gateway.New(gateway.Options{Clients: []gateway.Client{{Name: "erp", BaseURL: "https://clear.example", Source: h}},
				Transport: up, Keys: gateway.NewKeys(gateway.NewKey(key), nil),
				AccessLog: logging.New(io.Discard, lc.level, logging.FormatJSON)})
			if err != nil {
				b.Fatal(err)
			}
			run(b, gw)
		})
	}
	b.Run("bare-reverseproxy", func(b *testing.B) {
		u, _ := url.Parse("https://clear.example")
		rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del(gateway.HeaderKey)
			pr.Out.Header.Set(clear.HeaderAuthToken, "bench-token-0123456789")
		}, Transport: up, BufferPool: newPool()}
		run(b, rp)
	})
}

// pool is a BufferPool of 32 KiB buffers.
type pool struct{ p *sync.Pool }

func newPool() pool {
	return pool{&sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}
func (p pool) Get() []byte  { return *p.p.Get().(*[]byte) }
func (p pool) Put(b []byte) { p.p.Put(&b) }
