package bench

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// Gateway benchmark parameters. BENCH_GATEWAY_CONNS (a comma-separated list, default "8,64")
// gives the wrk connection counts; BENCH_GATEWAY_ROUNDS (default 5) how many times each target
// is measured, interleaved; BENCH_GATEWAY_SECONDS (default 5) the length of one wrk run;
// BENCH_GATEWAY_IDLE (default 10000) the idle keep-alive connections of the memory benchmark.
const (
	gwBenchKey = "bench-gateway-key-0123456789abcdef" // the inbound key (ROTATOR_GATEWAY_KEY)
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, defSeconds int) time.Duration {
	return time.Duration(envInt(name, defSeconds)) * time.Second
}

func envInts(name string, def []int) []int {
	var out []int
	for f := range strings.SplitSeq(os.Getenv(name), ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// target is one thing wrk measures.
type target struct {
	name    string
	url     string
	headers []string
}

// proxyFigures are one target's figures over the rounds: the median of each.
type proxyFigures struct {
	rps            []float64
	p50, p90, p99  []time.Duration
	requests, errs int
}

func (f *proxyFigures) add(r wrkResult) {
	f.rps = append(f.rps, r.RPS)
	f.p50 = append(f.p50, r.P50)
	f.p90 = append(f.p90, r.P90)
	f.p99 = append(f.p99, r.P99)
	f.requests += r.Requests
	f.errs += r.Errors
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianD(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// measure runs wrk against every target in turn, rounds times, so that each target meets the
// machine's load as the others do, and returns each target's figures.
func measure(b *testing.B, targets []target, conns, rounds int, d time.Duration) map[string]*proxyFigures {
	b.Helper()
	figs := map[string]*proxyFigures{}
	for _, t := range targets {
		figs[t.name] = &proxyFigures{}
		runWrk(b, t.url, 1, conns, time.Second, t.headers...) // warm-up: connections, pools, caches
	}
	for range rounds {
		for _, t := range targets {
			figs[t.name].add(runWrk(b, t.url, 1, conns, d, t.headers...))
		}
	}
	return figs
}

// report prints one connection count's table and reports the ratios as metrics.
func report(b *testing.B, conns int, targets []target, figs map[string]*proxyFigures, peer, subject string) {
	b.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "wrk -t1 -c%d, median of %d runs:\n", conns, len(figs[peer].rps))
	fmt.Fprintf(&sb, "  %-22s %10s %9s %9s %9s %9s %7s\n", "target", "req/s", "p50", "p90", "p99", "requests", "errors")
	for _, t := range targets {
		f := figs[t.name]
		fmt.Fprintf(&sb, "  %-22s %10.0f %9s %9s %9s %9d %7d\n", t.name, medianF(f.rps),
			medianD(f.p50).Round(time.Microsecond), medianD(f.p90).Round(time.Microsecond), medianD(f.p99).Round(time.Microsecond), f.requests, f.errs)
	}
	p, s := figs[peer], figs[subject]
	rps := medianF(s.rps) / medianF(p.rps)
	p99 := float64(medianD(s.p99)) / float64(medianD(p.p99))
	// Per-round ratios show how much of the spread is the machine's.
	var rr []float64
	for i := range p.rps {
		rr = append(rr, s.rps[i]/p.rps[i])
	}
	fmt.Fprintf(&sb, "  %s / %s: throughput %.2fx (per round %s), p99 %.2fx", subject, peer, rps, fmtRatios(rr), p99)
	b.Log(sb.String())
	b.ReportMetric(rps, fmt.Sprintf("c%d-throughput-ratio", conns))
	b.ReportMetric(p99, fmt.Sprintf("c%d-p99-ratio", conns))
	b.ReportMetric(medianF(s.rps), fmt.Sprintf("c%d-%s-req/s", conns, subject))
	b.ReportMetric(medianF(p.rps), fmt.Sprintf("c%d-%s-req/s", conns, peer))
	if s.errs > 0 || p.errs > 0 {
		b.Errorf("-c%d: %s answered %d errors, %s %d: the figures measure failures, not proxying", conns, subject, s.errs, peer, p.errs)
	}
}

func fmtRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// upstreamServer is nginx's fast upstream: Clear answering at once.
const upstreamServer = `    location / { return 200 "ok"; }`

// peerUpstream and peerServer are nginx injecting a static token header into every request to
// the upstream over kept-alive connections, and dropping the gateway's inbound key as the gateway
// does: what a credential-injecting proxy costs at its cheapest.
func peerUpstream(upstream string) string {
	return fmt.Sprintf("  upstream clear {\n    server %s;\n    keepalive 64;\n  }\n", upstream)
}

func peerServer(token string) string {
	return fmt.Sprintf(`    location / {
      proxy_pass http://clear;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-clear-rotator-key "";
      proxy_set_header x-cleartax-auth-token "%s";
    }`, token)
}

// startGateway starts `rotator gateway` (bin) standalone for w's client, with upstream as its
// CLEAR_BASE_URL, on a free loopback port with the benchmark's inbound key, reading the token from
// w's token secret with read rights only (no client secret). Its log (an access log line per
// request at the default level, info) goes to a file, as a production log would go to a
// collector, and is scanned for leaks when the benchmark ends. extra is added to its environment.
// It waits until the gateway answers a request with 200. With addr "" it binds port 0 and reads
// the address from its "gateway started" line; a gateway whose log level hides that line needs
// an address.
func startGateway(b *testing.B, w *rig.World, bin, upstream, addr string, extra ...string) (pid int, _ string) {
	b.Helper()
	logPath := filepath.Join(b.TempDir(), "gateway.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "gateway")
	cmd.Env = w.Env(append([]string{
		"CLEAR_BASE_URL=" + upstream,
		"CLEAR_CLIENT_SECRET=",
		"ROTATOR_GATEWAY_ADDR=" + cmp.Or(addr, "127.0.0.1:0"),
		"ROTATOR_GATEWAY_KEY=" + gwBenchKey,
		"ROTATOR_HTTP_ADDR=",
	}, extra...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w.Hide(gwBenchKey)
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		out, _ := os.ReadFile(logPath)
		w.Record(string(out))
	})
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		out, _ := os.ReadFile(logPath)
		if addr = loggedAttr(string(out), "gateway started", "gateway_addr"); addr == "" && time.Now().After(deadline) {
			b.Fatalf("the gateway did not say where it listens within 30 s:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rig.Await(b, "the gateway's first 200", 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ready", nil)
		req.Header.Set(gatewayKeyHeader, gwBenchKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return cmd.Process.Pid, addr
}

// loggedAttr returns the string attribute key of the first JSON log line whose message is msg.
func loggedAttr(log, msg, key string) string {
	for line := range strings.SplitSeq(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			v, _ := rec[key].(string)
			return v
		}
	}
	return ""
}

// gatewayKeyHeader carries the inbound key (issue 17).
const gatewayKeyHeader = "x-clear-rotator-key"

// BenchmarkGatewayProxy measures the gateway's cost against nginx on loopback, side by side in
// one run: wrk (one thread; 8 and 64 connections by default) against nginx answering 200 "ok"
// itself (the upstream, for reference), nginx injecting a static x-cleartax-auth-token into
// every request to that upstream over kept-alive connections (the peer), and `rotator gateway`
// (the release build, standalone, its token read from moto through the rig) to the same
// upstream, once with its access log (info, the default level, written to a file), once at
// LOG_LEVEL=warn without it, to show what the log line costs, and once with GOMAXPROCS=2 instead
// of the gateway's default of one processor, to show what that default gives. Each target is
// measured BENCH_GATEWAY_ROUNDS times, interleaved; the figures are medians. The issue's goals:
// throughput at least 0.5x the peer's, p99 at most 3x.
func BenchmarkGatewayProxy(b *testing.B) {
	requireTools(b, "nginx", "wrk")
	connsList := envInts("BENCH_GATEWAY_CONNS", []int{8, 64})
	rounds := envInt("BENCH_GATEWAY_ROUNDS", 5)
	secs := envDuration("BENCH_GATEWAY_SECONDS", 5)
	for range b.N {
		w, upstream, peer, bin := benchPeers(b)
		_, gw := startGateway(b, w, bin, "http://"+upstream.Addr, "")
		_, quiet := startGateway(b, w, bin, "http://"+upstream.Addr, listenAddr(b), "LOG_LEVEL=warn")
		_, twoProcs := startGateway(b, w, bin, "http://"+upstream.Addr, "", "GOMAXPROCS=2")
		key := gatewayKeyHeader + ": " + gwBenchKey
		targets := []target{
			{name: "nginx-upstream", url: "http://" + upstream.Addr + "/api/ping"},
			{name: "nginx-static-header", url: "http://" + peer.Addr + "/api/ping", headers: []string{key}},
			{name: "rotator-gateway", url: "http://" + gw + "/api/ping", headers: []string{key}},
			{name: "gateway-no-access-log", url: "http://" + quiet + "/api/ping", headers: []string{key}},
			{name: "gateway-gomaxprocs-2", url: "http://" + twoProcs + "/api/ping", headers: []string{key}},
		}
		for _, conns := range connsList {
			figs := measure(b, targets, conns, rounds, secs)
			report(b, conns, targets, figs, "nginx-static-header", "rotator-gateway")
		}
	}
}

// benchPeers sets up what both gateway benchmarks compare against: a world whose token secret
// holds a live token, nginx as Clear (the upstream), nginx injecting that token (the peer), and
// the release build of the rotator.
func benchPeers(b *testing.B) (w *rig.World, upstream, peer *nginx, bin string) {
	b.Helper()
	w = rig.New(b, rig.Options{})
	tok := w.Issue()
	w.StoreToken(tok)
	upstream = startNginx(b, "upstream", "1", "", upstreamServer)
	peer = startNginx(b, "peer", "auto", peerUpstream(upstream.Addr), peerServer(tok))
	return w, upstream, peer, proctest.Build(b, "./cmd/rotator", "ROTATOR_BIN")
}

// BenchmarkGatewayIdleConnections measures the gateway's resident memory with
// BENCH_GATEWAY_IDLE (default 10,000) idle keep-alive connections: each connection sends one
// request through the gateway to nginx's fast upstream, reads the answer and stays open, as an
// ERP's pooled connection does. It reports VmRSS before and after, the cost per connection, how
// many connections were answered, and nginx (the static-header peer, two workers) under the same
// load for scale.
func BenchmarkGatewayIdleConnections(b *testing.B) {
	requireTools(b, "nginx")
	n := envInt("BENCH_GATEWAY_IDLE", 10000)
	for range b.N {
		w, upstream, peer, bin := benchPeers(b)
		pid, gw := startGateway(b, w, bin, "http://"+upstream.Addr, "")
		key := []string{gatewayKeyHeader + ": " + gwBenchKey}
		for _, s := range []struct {
			name, addr string
			rss        func() int
		}{
			{"rotator-gateway", gw, func() int { return procStatus(b, pid, "VmRSS") }},
			{"nginx-static-header", peer.Addr, func() int { return peer.RSS(b) }},
		} {
			name := s.name
			before := s.rss()
			conns, ok := openIdle(b, s.addr, n, key)
			time.Sleep(2 * time.Second) // let the process settle (a collection, if one comes)
			after := s.rss()
			// Still open after the settling time: a connection closed by the server reads EOF.
			open := stillOpen(conns)
			for _, c := range conns {
				c.Close()
			}
			perConn := float64(after-before) / float64(max(ok, 1))
			b.Logf("%s: %d idle keep-alive connections opened, %d answered 200, %d still open after 2 s; VmRSS %d kB before, %d kB after (%.1f MiB), %.1f kB per connection",
				name, len(conns), ok, open, before, after, float64(after)/1024, perConn)
			b.ReportMetric(float64(after)/1024, name+"-RSS-MiB")
			b.ReportMetric(perConn, name+"-kB/conn")
			if name == "rotator-gateway" {
				b.ReportMetric(float64(ok), "gateway-answered")
			}
			time.Sleep(time.Second)
		}
	}
}

// stillOpen counts the connections the server has not closed: a read with a short deadline
// times out on an open idle connection and returns EOF on a closed one.
func stillOpen(conns []net.Conn) int {
	open := 0
	var buf [1]byte
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(buf[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	return open
}
