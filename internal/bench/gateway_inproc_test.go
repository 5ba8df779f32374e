package bench

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// BenchmarkGatewayHandler is BenchmarkGatewayProxy's gateway served inside the benchmark's own
// process (package gateway's handler and server, as the command builds them, with its access log
// written to a file at info level through a BatchWriter), so that a CPU profile shows where its time goes:
//
//	go test -run '^$' -bench GatewayHandler -benchtime 1x -cpuprofile cpu.out ./internal/bench
//	go tool pprof -top -nodecount 40 internal/bench/bench.test cpu.out   # (or the test binary go test leaves)
//
// The profile holds this process only: nginx and wrk run beside it, as in BenchmarkGatewayProxy.
// For scale it also measures, in the same process and run, the floor the gateway is built on: a
// bare httputil.ReverseProxy that sets the token header and nothing else, without and with a
// BufferPool (ReverseProxy otherwise allocates a 32 KiB copy buffer for every response).
func BenchmarkGatewayHandler(b *testing.B) {
	requireTools(b, "nginx", "wrk")
	connsList := envInts("BENCH_GATEWAY_CONNS", []int{8, 64})
	rounds := envInt("BENCH_GATEWAY_ROUNDS", 5)
	secs := envDuration("BENCH_GATEWAY_SECONDS", 5)
	const tok = "inproc-bench-token-0123456789abcdef0123456789abcdef"
	for range b.N {
		upstream := startNginx(b, "upstream", "1", "", upstreamServer)
		peer := startNginx(b, "peer", "auto", peerUpstream(upstream.Addr), peerServer(tok))

		logFile, err := os.Create(filepath.Join(b.TempDir(), "gateway.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer logFile.Close()
		// The access log goes through a BatchWriter, as `rotator gateway` writes it.
		batch := gateway.NewBatchWriter(logFile, 0, 0)
		defer batch.Close()
		holder := &gateway.Holder{}
		holder.Set(gateway.Token{Value: clear.NewAccessToken(tok), Version: "v1"})
		g, err := gateway.New(gateway.Options{
			Clients:   []gateway.Client{{Name: "erp", BaseURL: "http://" + upstream.Addr, Source: holder}},
			Keys:      gateway.NewKeys(gateway.NewKey(gwBenchKey), nil),
			Log:       slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
			AccessLog: slog.New(slog.NewJSONHandler(batch, &slog.HandlerOptions{Level: slog.LevelInfo})),
		})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := gateway.NewServer(g, gateway.DefaultLimits)
		go func() { _ = srv.Serve(gateway.LimitListener(ln, gateway.DefaultLimits.MaxConns)) }()
		defer srv.Close()

		bare := serveBare(b, "http://"+upstream.Addr, tok, nil)
		pooled := serveBare(b, "http://"+upstream.Addr, tok, &bufferPool{})

		key := gatewayKeyHeader + ": " + gwBenchKey
		targets := []target{
			{name: "nginx-static-header", url: "http://" + peer.Addr + "/api/ping", headers: []string{key}},
			{name: "gateway-in-process", url: "http://" + ln.Addr().String() + "/api/ping", headers: []string{key}},
			{name: "bare-reverseproxy", url: "http://" + bare + "/api/ping", headers: []string{key}},
			{name: "bare-rp-bufferpool", url: "http://" + pooled + "/api/ping", headers: []string{key}},
		}
		for _, conns := range connsList {
			figs := measure(b, targets, conns, rounds, secs)
			report(b, conns, targets, figs, "nginx-static-header", "gateway-in-process")
		}
	}
}

// serveBare serves a bare httputil.ReverseProxy to upstream that sets the token header, with
// pool as its BufferPool (nil: none), on a loopback port, and returns the address.
func serveBare(b *testing.B, upstream, tok string, pool httputil.BufferPool) string {
	b.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del(gatewayKeyHeader)
			pr.Out.Header.Set(clear.HeaderAuthToken, tok)
		},
		Transport:  &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
		BufferPool: pool,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// bufferPool is a ReverseProxy BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
