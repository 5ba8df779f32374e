package main

// Process tests of the Clear gateway (issue 17): `rotator gateway` and `rotator run` with
// ROTATOR_GATEWAY_ADDR, the built test binary against moto and the emulator. The ERP here holds no
// token: it calls the gateway, and every call must succeed across rotations. The worlds' leak scans
// cover the token, the client secret and the key in every process's output.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// echoPath is a business endpoint that records each body's digest and checks the token.
const echoPath = "/_rig/api/echo"

// echo records what reached Clear's business endpoint.
type echo struct {
	w       *rig.World
	mu      sync.Mutex
	digests [][32]byte
	lengths []int
	live    []bool
	delay   atomic.Int64
	status  atomic.Int32
}

func handleEcho(w *rig.World) *echo {
	e := &echo{w: w}
	w.Handle(echoPath, e)
	return e
}

func (e *echo) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	tok := r.Header.Get(clear.HeaderAuthToken)
	live := tok != "" && e.w.Emu.Live(tok)
	e.mu.Lock()
	e.digests = append(e.digests, sha256.Sum256(body))
	e.lengths = append(e.lengths, len(body))
	e.live = append(e.live, live)
	e.mu.Unlock()
	if d := time.Duration(e.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	rw.Header().Set("Content-Type", "application/json")
	if !live {
		rw.WriteHeader(http.StatusUnauthorized)
		io.WriteString(rw, `{"errors":[{"error_code":"CLI-TOK-002","error_message":"Invalid, revoked or expired auth token.","error_source":"CLEAR","error_id":null}]}`)
		return
	}
	if s := e.status.Load(); s != 0 {
		rw.WriteHeader(int(s))
		io.WriteString(rw, `{"errors":[{"error_code":"SRV-500","error_message":"upstream trouble","error_source":"CLEAR","error_id":null}]}`)
		return
	}
	fmt.Fprintf(rw, `{"ok":true,"bytes":%d}`, len(body))
}

func (e *echo) seen() (digests [][32]byte, lengths []int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][32]byte(nil), e.digests...), append([]int(nil), e.lengths...)
}

// gw is a gateway process and the ERP's view of it.
type gw struct {
	*rig.Proc
	addr   string
	key    string
	client *http.Client
	scheme string
}

// startGateway starts `rotator gateway` for w (standalone, read-only unless env sets a client
// secret) on a free loopback port, and waits for it to listen.
func startGateway(t *testing.T, w *rig.World, env ...string) *gw {
	t.Helper()
	base := []string{"CLEAR_CLIENT_SECRET=", "ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_POLL=1s", "LOG_LEVEL=debug"}
	p := w.Start(proctest.TestRotator(t), append(base, env...), "gateway")
	return awaitGateway(t, p)
}

func awaitGateway(t *testing.T, p *rig.Proc) *gw {
	t.Helper()
	g := &gw{Proc: p, client: &http.Client{Timeout: 30 * time.Second}, scheme: "http"}
	p.Await("the gateway's address", 15*time.Second, func() bool {
		g.addr = p.LoggedAttr("gateway started", "gateway_addr")
		return g.addr != ""
	})
	return g
}

// call sends one request through the gateway and returns the status and body.
func (g *gw) call(t *testing.T, method, path string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.scheme+"://"+g.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if g.key != "" {
		req.Header.Set(gateway.HeaderKey, g.key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// erpLoad calls the gateway as an ERP would (GETs, POSTs with bodies, chunked POSTs) from three
// goroutines until stop, and returns the failed calls.
func erpLoad(t *testing.T, g *gw, stop <-chan struct{}) (calls, failed *atomic.Int64, report func() string) {
	calls, failed = &atomic.Int64{}, &atomic.Int64{}
	var mu sync.Mutex
	var fails []string
	var wg sync.WaitGroup
	kinds := []func() (int, string){
		func() (int, string) { return g.call(t, http.MethodGet, rig.PingPath, nil) },
		func() (int, string) {
			return g.call(t, http.MethodPost, rig.InvoicePath, bytes.NewReader(bytes.Repeat([]byte("line of an invoice\n"), 200)))
		},
		func() (int, string) {
			// An io.Reader of unknown length: sent chunked.
			return g.call(t, http.MethodPost, rig.InvoicePath, io.MultiReader(strings.NewReader("chunk one;"), strings.NewReader("chunk two")))
		},
	}
	for _, k := range kinds {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body := k()
				calls.Add(1)
				if code != http.StatusOK {
					failed.Add(1)
					mu.Lock()
					fails = append(fails, fmt.Sprintf("%d %s", code, body))
					mu.Unlock()
				}
				// Paced: the package's other process tests share the machine.
				time.Sleep(150 * time.Millisecond)
			}
		})
	}
	t.Cleanup(wg.Wait)
	return calls, failed, func() string {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(fails, "\n")
	}
}

// acrossRotations runs the ERP's load for a few rotations of the ERP world's fast tokens and
// requires every call to succeed.
func acrossRotations(t *testing.T, e *rig.ERP, g *gw, metricsOf *rig.Proc) {
	t.Helper()
	first := e.Emu.Issued(e.Secrets[0])
	stop := make(chan struct{})
	calls, failed, report := erpLoad(t, g, stop)
	e.Proc.Await("three rotations", 30*time.Second, func() bool { return e.Emu.Issued(e.Secrets[0]) >= first+3 })
	close(stop)
	fails := report()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls through the gateway failed across rotations:\n%s", failed.Load(), calls.Load(), fails)
	}
	if calls.Load() < 15 {
		t.Fatalf("only %d calls made", calls.Load())
	}
	_, metrics := metricsOf.Get("/metrics")
	if v := rig.Sample(metrics, `clear_rotator_gateway_requests_total{client="default",code="2xx"}`); v == "" || v == "0" {
		t.Errorf("requests_total 2xx = %q", v)
	}
	t.Logf("%d calls, 0 failed; replays %s", calls.Load(), rig.Sample(metrics, `clear_rotator_gateway_replays_total{client="default"}`))
}

func TestGatewayStandaloneAcrossRotations(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{})
	g := startGateway(t, e.World)
	if n := procsOf(g.Proc); n != 1 {
		t.Errorf("the gateway runs with GOMAXPROCS %v, want 1 when the environment does not set it", n)
	}
	acrossRotations(t, e, g, g.Proc)
}

// procsOf is the GOMAXPROCS the gateway said it runs with (gatewayProcs).
func procsOf(p *rig.Proc) any {
	var n any
	p.Await("the gateway's start line", 15*time.Second, func() bool {
		n = p.LoggedValue("gateway started", "gomaxprocs")
		return n != nil
	})
	if f, ok := n.(float64); ok {
		return int(f)
	}
	return n
}

func TestGatewayEmbeddedAcrossRotations(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{RotatorEnv: []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_POLL=1s", "GOMAXPROCS=2"}})
	g := awaitGateway(t, e.Proc)
	if n := procsOf(e.Proc); n != 2 {
		t.Errorf("the embedded gateway runs with GOMAXPROCS %v, want the environment's 2", n)
	}
	acrossRotations(t, e, g, e.Proc)
}

// steady is an ERP world whose tokens never expire (the daemon rotates only when asked), with a
// standalone gateway; the test revokes and stores tokens itself.
func steady(t *testing.T, env ...string) (*rig.ERP, *echo, *gw) {
	t.Helper()
	e := rig.NewERP(t, rig.ERPOptions{Lifetime: -1})
	ec := handleEcho(e.World)
	g := startGateway(t, e.World, env...)
	if code, body := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK {
		t.Fatalf("first call: %d %s", code, body)
	}
	return e, ec, g
}

// TestGatewayReplaysTheSameBytes revokes the token (a rotation whose token is stored half a second
// later), then POSTs: Clear refuses, the gateway waits for the stored token and sends the same
// bytes again.
func TestGatewayReplaysTheSameBytes(t *testing.T) {
	t.Parallel()
	e, ec, g := steady(t)
	tok := e.Issue()
	go func() { time.Sleep(500 * time.Millisecond); e.StoreToken(tok) }()
	body := bytes.Repeat([]byte{0, 1, 2, 3, 'x', '\n'}, 50_000) // 300 kB, binary
	code, resp := g.call(t, http.MethodPost, echoPath, bytes.NewReader(body))
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, resp)
	}
	digests, lengths := ec.seen()
	if len(digests) != 2 {
		t.Fatalf("Clear saw %d requests, want the refused one and its replay", len(digests))
	}
	want := sha256.Sum256(body)
	for i := range digests {
		if digests[i] != want || lengths[i] != len(body) {
			t.Errorf("attempt %d: %d bytes, digest differs: %v", i+1, lengths[i], digests[i] != want)
		}
	}
	if v := g.Metric(`clear_rotator_gateway_replays_total{client="default"}`); v != "1" {
		t.Errorf("replays_total = %q", v)
	}
}

// TestGatewayBodyOverTheReplayLimit: a body larger than the limit is streamed, and a 401 passes
// through; nothing is sent twice.
func TestGatewayBodyOverTheReplayLimit(t *testing.T) {
	t.Parallel()
	e, ec, g := steady(t, "ROTATOR_GATEWAY_REPLAY_LIMIT=1024")
	tok := e.Issue()
	defer e.StoreToken(tok)
	code, resp := g.call(t, http.MethodPost, echoPath, bytes.NewReader(make([]byte, 4096)))
	if code != http.StatusUnauthorized || !strings.Contains(resp, `"error_source":"CLEAR"`) {
		t.Fatalf("%d %s; want Clear's 401", code, resp)
	}
	if _, lengths := ec.seen(); len(lengths) != 1 || lengths[0] != 4096 {
		t.Fatalf("Clear saw %v", lengths)
	}
}

// TestGatewaySlowAnd5xx: a slow Clear is waited for; a timeout and a 5xx are passed back, once.
func TestGatewaySlowAnd5xx(t *testing.T) {
	t.Parallel()
	_, ec, g := steady(t, "ROTATOR_GATEWAY_UPSTREAM_TIMEOUT=2s")
	ec.delay.Store(int64(1200 * time.Millisecond))
	if code, resp := g.call(t, http.MethodPost, echoPath, strings.NewReader(`{"slow":true}`)); code != http.StatusOK {
		t.Fatalf("slow upstream: %d %s", code, resp)
	}
	ec.delay.Store(int64(3 * time.Second))
	code, resp := g.call(t, http.MethodGet, echoPath, nil)
	if code != http.StatusGatewayTimeout || !strings.Contains(resp, gateway.CodeTimeout) || !strings.Contains(resp, `"error_source":"CLEAR-ROTATOR"`) {
		t.Fatalf("timeout: %d %s", code, resp)
	}
	ec.delay.Store(0)
	ec.status.Store(http.StatusServiceUnavailable)
	before, _ := ec.seen()
	if code, resp := g.call(t, http.MethodPost, echoPath, strings.NewReader("{}")); code != http.StatusServiceUnavailable || !strings.Contains(resp, "SRV-500") {
		t.Fatalf("5xx: %d %s", code, resp)
	}
	if after, _ := ec.seen(); len(after) != len(before)+1 {
		t.Fatalf("a 5xx was sent %d times", len(after)-len(before))
	}
}

// TestGatewayIsNotAnOpenProxy sends absolute-form targets, CONNECT, and Host and X-Forwarded-Host
// naming another server: nothing reaches that server.
func TestGatewayIsNotAnOpenProxy(t *testing.T) {
	t.Parallel()
	e, ec, g := steady(t)
	var hits atomic.Int64
	other := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go other.Serve(ln)
	t.Cleanup(func() { other.Close() })
	target := ln.Addr().String()

	raw := func(request string) string {
		c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, request)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	for _, req := range []string{
		"GET http://" + target + "/steal HTTP/1.1\r\nHost: " + target + "\r\n\r\n",
		"CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n",
	} {
		if line := raw(req); !strings.Contains(line, " 400 ") {
			t.Errorf("%q answered %q, want 400", strings.SplitN(req, "\r\n", 2)[0], line)
		}
	}
	before, _ := ec.seen()
	if line := raw("GET " + echoPath + " HTTP/1.1\r\nHost: " + target + "\r\nX-Forwarded-Host: " + target + "\r\n\r\n"); !strings.Contains(line, " 200 ") {
		t.Errorf("Host naming another server: %q; want it sent to Clear, 200", line)
	}
	if after, _ := ec.seen(); len(after) != len(before)+1 {
		t.Error("the request with a foreign Host did not reach Clear")
	}
	if hits.Load() != 0 {
		t.Fatalf("the other server was reached %d times", hits.Load())
	}
	// An ERP that still fetches its own token, through the gateway: Clear must not see it (a
	// token issued would revoke the gateway's), with or without the client secret.
	asked := e.Emu.Requests(e.Secrets[0])
	for _, hdr := range [][]string{{clear.HeaderClientSecret, e.Secrets[0]}, nil} {
		if code, resp := g.call(t, http.MethodGet, clear.TokenPath, nil, hdr...); code != http.StatusForbidden || !strings.Contains(resp, gateway.CodeTokenAPI) {
			t.Errorf("the token API through the gateway: %d %s", code, resp)
		}
	}
	if line := raw("GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.Contains(line, " 400 ") {
		t.Errorf("a dot segment: %q, want 400", line)
	}
	if n := e.Emu.Requests(e.Secrets[0]) - asked; n != 0 {
		t.Fatalf("Clear was asked for %d tokens through the gateway", n)
	}
}

// TestGatewayAccessLog reads the access lines of a standalone gateway logging JSON, as it does
// to a log collector: a plain line, which the gateway encodes itself, and one whose path needs
// escaping, which goes through slog. Both are one JSON object with the documented keys and
// nothing else.
func TestGatewayAccessLog(t *testing.T) {
	t.Parallel()
	_, _, g := steady(t)
	if code, body := g.call(t, http.MethodPost, echoPath, strings.NewReader(`{"x":1}`)); code != http.StatusOK {
		t.Fatalf("POST: %d %s", code, body)
	}
	odd := "/a\"b\\\u00fc" // sent escaped: /a%22b%5C%C3%BC
	g.call(t, http.MethodGet, "/a%22b%5C%C3%BC", nil)
	lines := map[string]map[string]any{}
	g.Await("the two access lines", 15*time.Second, func() bool {
		for line := range strings.SplitSeq(g.Output(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "gateway request" {
				p, _ := rec["path"].(string)
				lines[p] = rec
			}
		}
		return lines[echoPath] != nil && lines[odd] != nil
	})
	for path, method := range map[string]string{echoPath: http.MethodPost, odd: http.MethodGet} {
		rec := lines[path]
		var keys []string
		for k := range rec {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if got := strings.Join(keys, " "); got != "client duration level method msg path replayed status time" {
			t.Errorf("%s: keys %s", path, got)
		}
		at, _ := rec["time"].(string)
		took, _ := rec["duration"].(string)
		if _, err := time.Parse(time.RFC3339Nano, at); err != nil || !strings.HasSuffix(at, "Z") {
			t.Errorf("%s: time %q is not RFC 3339 in UTC", path, at)
		}
		if _, err := time.ParseDuration(took); err != nil {
			t.Errorf("%s: duration %q", path, took)
		}
		if rec["level"] != "INFO" || rec["method"] != method || rec["client"] != config.DefaultClientName || rec["replayed"] != false {
			t.Errorf("%s: %v", path, rec)
		}
	}
	if lines[echoPath]["status"] != float64(http.StatusOK) {
		t.Errorf("status %v, want 200", lines[echoPath]["status"])
	}
}

// TestGatewayKey: a key from Secrets Manager, missing, wrong, then rotated with a grace for the
// previous one; and a listener on every interface without a key refused at start-up.
func TestGatewayKey(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{Lifetime: -1})
	keyID := e.TokenID + "-gateway-key"
	first, second := "gw-key-first-0123456789abcdef", "gw-key-second-0123456789abcdef"
	e.Hide(first, second)
	e.CreateSecret(keyID, first)
	g := startGateway(t, e.World, "ROTATOR_GATEWAY_KEY_ID="+keyID, "ROTATOR_GATEWAY_KEY_GRACE=3s", "ROTATOR_GATEWAY_ADDR=0.0.0.0:0")
	g.addr = strings.Replace(g.addr, "[::]", "127.0.0.1", 1)
	g.addr = strings.Replace(g.addr, "0.0.0.0", "127.0.0.1", 1)
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusUnauthorized || !strings.Contains(resp, gateway.CodeKeyMissing) {
		t.Fatalf("no key: %d %s", code, resp)
	}
	g.key = "wrong-key-0123456789"
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusForbidden || !strings.Contains(resp, gateway.CodeKeyWrong) {
		t.Fatalf("wrong key: %d %s", code, resp)
	}
	g.key = first
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK {
		t.Fatalf("right key: %d %s", code, resp)
	}
	if _, err := e.SM.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(keyID), SecretString: aws.String(second)}); err != nil {
		t.Fatal(err)
	}
	g.key = second
	g.Await("the new key", 10*time.Second, func() bool { code, _ := g.call(t, http.MethodGet, rig.PingPath, nil); return code == http.StatusOK })
	g.key = first
	if code, _ := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK {
		t.Errorf("the previous key within its grace: %d", code)
	}
	g.Await("the previous key's grace to end", 10*time.Second, func() bool {
		code, _ := g.call(t, http.MethodGet, rig.PingPath, nil)
		return code == http.StatusForbidden
	})
	if v := g.Metric("clear_rotator_gateway_key_refusals_total"); v == "" || v == "0" {
		t.Errorf("key_refusals_total = %q", v)
	}
	if strings.Contains(g.Output(), "gw-key-") {
		t.Fatal("a key reached the log")
	}

	r := rotatorEnv(e.World, []string{"CLEAR_CLIENT_SECRET=", "ROTATOR_GATEWAY_ADDR=0.0.0.0:0", "ROTATOR_HTTP_ADDR="}, "gateway")
	wantCode(t, r, 2, "not a loopback address, and no key")

	// A key's secret that holds no usable key (too short, a control character) is no key: off
	// loopback the gateway would serve anyone, so it does not start.
	e.Hide("gw-key-with-a-newline")
	for i, bad := range []string{"short", "gw-key-with-a-newline\n-0123456789"} {
		badID := fmt.Sprintf("%s-bad-%d", keyID, i)
		e.CreateSecret(badID, bad)
		r = rotatorEnv(e.World, []string{"CLEAR_CLIENT_SECRET=", "ROTATOR_GATEWAY_ADDR=0.0.0.0:0", "ROTATOR_HTTP_ADDR=",
			"ROTATOR_GATEWAY_KEY_ID=" + badID}, "gateway")
		if r.Code == 0 || !strings.Contains(r.Output(), "holds no key") || strings.Contains(r.Output(), "gateway started") {
			t.Fatalf("a key's secret holding %q: exit %d\n%s", bad, r.Code, r.Output())
		}
	}
}

// TestGatewayRevokedOutsideHealedOnce: two daemons with embedded gateways; a person asks Clear for
// a token with the same client secret. Both gateways find the token revoked and ask for a forced
// rotation with the same event: Clear sees exactly one request between them, and the held calls go
// out with the new token.
func TestGatewayRevokedOutsideHealedOnce(t *testing.T) {
	t.Parallel()
	// The hold is the longest allowed, so that a loaded machine's slow Secrets Manager does not
	// outlast it; on an idle one the calls are held about three seconds.
	env := []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_POLL=1s", "ROTATOR_GATEWAY_HOLD=60s"}
	e := rig.NewERP(t, rig.ERPOptions{Lifetime: -1, RotatorEnv: env})
	g1 := awaitGateway(t, e.Proc)
	d2 := e.Daemon(env...)
	g2 := awaitGateway(t, d2)
	for _, g := range []*gw{g1, g2} {
		if code, body := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK {
			t.Fatalf("first call: %d %s", code, body)
		}
	}
	_, version, _ := e.Current()
	before := e.Emu.Requests(e.Secrets[0])
	e.Issue() // outside the rotator: the stored token is revoked
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		g := []*gw{g1, g2}[i%2]
		wg.Go(func() { codes[i], _ = g.call(t, http.MethodPost, rig.InvoicePath, strings.NewReader(`{"invoice":1}`)) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("held call %d: %d", i, c)
		}
	}
	// One request by the person, one by the rotators between them.
	if got := e.Emu.Requests(e.Secrets[0]) - before; got != 2 {
		t.Fatalf("Clear saw %d token requests, want 2 (the outside one and one rotation)", got)
	}
	if _, now, _ := e.Current(); now == version {
		t.Fatal("AWSCURRENT did not move on")
	}
	revoked := 0
	for _, p := range []*rig.Proc{e.Proc, d2} {
		if v := p.Metric(`clear_rotator_gateway_revoked_outside_total{client="default"}`); v == "1" {
			revoked++
		}
	}
	if revoked == 0 {
		t.Error("no gateway counted the revocation")
	}
	if !e.Proc.Logged("gateway: the token was revoked outside the rotator: Clear accepted it, then refused it while it is AWSCURRENT and unexpired (someone asked Clear for a token with the same client secret)") &&
		!d2.Logged("gateway: the token was revoked outside the rotator: Clear accepted it, then refused it while it is AWSCURRENT and unexpired (someone asked Clear for a token with the same client secret)") {
		t.Error("the revocation was not logged")
	}
	// status shows it (item 2 of the gateway's follow-up): the revoked version, and when the
	// forced rotation stored the token that replaced it.
	st := statusOf(t, e.World)
	if st.RevokedOutside == nil || st.RevokedOutside.Version != version || st.RevokedOutside.At == nil {
		t.Errorf("status --json revoked_outside = %+v, want version %s with a time", st.RevokedOutside, version)
	}
	wantCode(t, e.World.Rotator("status"), 0, "default: last token revoked outside the rotator: version "+version+"; a forced rotation stored a new token")
}

// TestGatewayNeverAcceptedTokenNotRotatedFor: a token Clear never accepted (the API client lacks
// the product, say) is reported, and no rotation is asked for, even with the rotator's rights.
func TestGatewayNeverAcceptedTokenNotRotatedFor(t *testing.T) {
	w := world(t, rig.Options{})
	w.StoreToken("1.0f0f0f0f-never-accepted-by-clear-0123456789")
	g := startGateway(t, w, "CLEAR_CLIENT_SECRET="+w.Secrets[0], "ROTATOR_GATEWAY_HOLD=1s")
	for range 3 {
		if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusUnauthorized {
			t.Fatalf("%d %s, want Clear's 401", code, resp)
		}
	}
	g.Await("the report", 10*time.Second, func() bool {
		return strings.Contains(g.Output(), "never accepted it through the gateway")
	})
	time.Sleep(time.Second)
	if n := w.Emu.Requests(w.Secrets[0]); n != 0 {
		t.Fatalf("Clear was asked for %d tokens for a token it never accepted", n)
	}
}

// TestGatewaySeveralClients: `rotator run` with a YAML file of two clients serves both through one
// gateway, chosen by x-clear-rotator-client; the second puts its token in another header.
func TestGatewaySeveralClients(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	second := w.Secrets[0] + "-2"
	w.Emu.AddSecret(second)
	w.Hide(second)
	var glsLive atomic.Int64
	w.Handle("GET /_rig/api/gls", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if tok := r.Header.Get("x-clear-auth-token"); tok != "" && w.Emu.Live(tok) && r.Header.Get(clear.HeaderAuthToken) == "" {
			glsLive.Add(1)
			io.WriteString(rw, `{"ok":true}`)
			return
		}
		rw.WriteHeader(http.StatusUnauthorized)
	}))
	path := t.TempDir() + "/clients.yaml"
	yaml := "clients:\n" +
		"  - name: erp-a\n    client_secret: " + w.Secrets[0] + "\n    token_secret_id: " + w.TokenID + "\n" +
		"  - name: erp-b\n    client_secret: " + second + "\n    token_secret_id: " + w.TokenID + "-b\n    gateway_token_header: X-Clear-Auth-Token\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := w.Daemon("ROTATOR_CONFIG="+path, "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID=", "ROTATOR_GATEWAY_ADDR=127.0.0.1:0")
	g := awaitGateway(t, d)
	d.Await("both clients' tokens", 30*time.Second, func() bool {
		_, ready := d.Get("/readyz")
		return strings.Contains(ready, "ok") && w.Emu.Issued(second) > 0 && w.Emu.Issued(w.Secrets[0]) > 0
	})
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusBadRequest || !strings.Contains(resp, gateway.CodeClientNeeded) {
		t.Fatalf("no client named: %d %s", code, resp)
	}
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-c"); code != http.StatusBadRequest || !strings.Contains(resp, gateway.CodeClientUnknown) {
		t.Fatalf("unknown client: %d %s", code, resp)
	}
	g.Await("erp-a through the gateway", 10*time.Second, func() bool {
		code, _ := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-a")
		return code == http.StatusOK
	})
	g.Await("erp-b through the gateway, in its own header", 10*time.Second, func() bool {
		code, _ := g.call(t, http.MethodGet, "/_rig/api/gls", nil, gateway.HeaderClient, "erp-b")
		return code == http.StatusOK
	})
	if v := d.Metric(`clear_rotator_gateway_requests_total{client="erp-b",code="2xx"}`); v == "" || v == "0" {
		t.Errorf("erp-b's requests_total 2xx = %q", v)
	}
}

// TestGatewayStandaloneSeveralClientsWithoutClientSecrets: `rotator gateway` with a YAML file of
// two clients that name only their base URL and token secret (read-only rights, item 4 of the
// gateway's follow-up) serves both; before, the entries' missing secrets counted as one shared
// client secret and the gateway refused to start. The second client comes with a SIGHUP, which
// `rotator gateway` follows (before, SIGHUP ended it).
func TestGatewayStandaloneSeveralClientsWithoutClientSecrets(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	second := w.Secrets[0] + "-2"
	w.Emu.AddSecret(second)
	w.Hide(second)
	w.StoreToken(w.Issue())
	g2, err := w.Client().Clear.Token(context.Background(), clear.NewClientSecret(second))
	if err != nil {
		t.Fatal(err)
	}
	tokB := g2.AccessToken.Reveal()
	w.Hide(tokB)
	doc, err := document.MarshalToken(document.Token{AccessToken: g2.AccessToken, IssuedAt: time.Now(), Client: "erp-b"})
	if err != nil {
		t.Fatal(err)
	}
	w.CreateSecret(w.TokenID+"-b", string(doc))
	path := t.TempDir() + "/clients.yaml"
	entryA := "  - name: erp-a\n    base_url: " + w.ClearURL + "\n    token_secret_id: " + w.TokenID + "\n"
	entryB := "  - name: erp-b\n    base_url: " + w.ClearURL + "\n    token_secret_id: " + w.TokenID + "-b\n"
	if err := os.WriteFile(path, []byte("clients:\n"+entryA), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, w, "ROTATOR_CONFIG="+path, "ROTATOR_TOKEN_SECRET_ID=", "CLEAR_BASE_URL=")
	g.Await("erp-a through the gateway", 15*time.Second, func() bool {
		code, _ := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-a")
		return code == http.StatusOK
	})
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-b"); code != http.StatusBadRequest || !strings.Contains(resp, gateway.CodeClientUnknown) {
		t.Fatalf("erp-b before it is configured: %d %s", code, resp)
	}
	// The second client comes with a SIGHUP, as it would to a gateway beside a running ERP.
	if err := os.WriteFile(path, []byte("clients:\n"+entryA+entryB), 0o600); err != nil {
		t.Fatal(err)
	}
	g.Signal(syscall.SIGHUP)
	g.Await("the gateway's reload", 15*time.Second, func() bool { return g.Logged("the gateway serves the reloaded clients") })
	for _, name := range []string{"erp-a", "erp-b"} {
		g.Await(name+" through the gateway", 15*time.Second, func() bool {
			code, _ := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, name)
			return code == http.StatusOK
		})
	}
	if n := w.Emu.Requests(w.Secrets[0]) + w.Emu.Requests(second); n != 2 {
		t.Errorf("Clear was asked for %d tokens; want the test's 2: a read-only gateway asks for none", n)
	}
}

// Issue 19 item 11 holds for the standalone gateway's ops port too: a crowd of idle, silent and
// slow connections must not starve its probes, or the liveness probe restarts a healthy gateway.
func TestGatewayOpsProbesUnderConnectionPressure(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	g := startGateway(t, w)
	g.Await("readiness", 15*time.Second, func() bool { code, _ := g.Get("/readyz"); return code == http.StatusOK })

	probesSurvivePressure(t, g.Addr)
}

// TestGatewayEmbeddedFollowsReload: a SIGHUP that adds a client to the YAML file gives the
// embedded gateway that client too, while the one it already served keeps its token and its
// counters. Before, the gateway kept the clients it started with until a restart.
func TestGatewayEmbeddedFollowsReload(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	second := w.Secrets[0] + "-2"
	w.Emu.AddSecret(second)
	w.Hide(second)
	entryA := "  - name: erp-a\n    client_secret: " + w.Secrets[0] + "\n    token_secret_id: " + w.TokenID + "\n"
	entryB := "  - name: erp-b\n    client_secret: " + second + "\n    token_secret_id: " + w.TokenID + "-b\n"
	path := t.TempDir() + "/clients.yaml"
	if err := os.WriteFile(path, []byte("clients:\n"+entryA), 0o600); err != nil {
		t.Fatal(err)
	}
	d := w.Daemon("ROTATOR_CONFIG="+path, "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID=", "ROTATOR_GATEWAY_ADDR=127.0.0.1:0")
	g := awaitGateway(t, d)
	callA := func() bool {
		code, _ := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-a")
		return code == http.StatusOK
	}
	g.Await("erp-a through the gateway", 15*time.Second, callA)
	if code, resp := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-b"); code != http.StatusBadRequest || !strings.Contains(resp, gateway.CodeClientUnknown) {
		t.Fatalf("erp-b before the reload: %d %s", code, resp)
	}
	before := d.Metric(`clear_rotator_gateway_requests_total{client="erp-a",code="2xx"}`)

	if err := os.WriteFile(path, []byte("clients:\n"+entryA+entryB), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Signal(syscall.SIGHUP)
	d.Await("the gateway's reload", 15*time.Second, func() bool { return d.Logged("the gateway serves the reloaded clients") })
	g.Await("erp-b through the gateway", 15*time.Second, func() bool {
		code, _ := g.call(t, http.MethodGet, rig.PingPath, nil, gateway.HeaderClient, "erp-b")
		return code == http.StatusOK
	})
	if !callA() {
		t.Error("erp-a failed after the reload")
	}
	if n := w.Emu.Issued(w.Secrets[0]); n != 1 {
		t.Errorf("erp-a's API client was asked %d times, want 1: the reload must not rotate an unchanged client", n)
	}
	after := d.Metric(`clear_rotator_gateway_requests_total{client="erp-a",code="2xx"}`)
	if b, _ := strconv.Atoi(before); b < 1 {
		t.Fatalf("erp-a's 2xx before the reload = %q", before)
	} else if a, _ := strconv.Atoi(after); a <= b {
		t.Errorf("erp-a's 2xx went from %q to %q across the reload: counters must carry on", before, after)
	}
}

// TestProbeFindsATokenRevokedOutside: `rotator run` with no gateway listener and no ERP calling
// through one, only ROTATOR_PROBE_PATH. A person asks Clear for a token with the client secret;
// the probe finds the token refused while it is AWSCURRENT, one forced rotation replaces it, and
// status remembers it. Before the probe, the token stayed dead until its next due rotation (an hour
// here) while status said ok (BENCHMARKS.md 7b).
func TestProbeFindsATokenRevokedOutside(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{Lifetime: time.Hour,
		RotatorEnv: []string{"ROTATOR_PROBE_PATH=" + rig.PingPath, "ROTATOR_PROBE_INTERVAL=1s"}})
	if !e.Proc.Logged("probes started") || e.Proc.Logged("gateway started") {
		t.Fatal("the daemon did not start its probes, or started a gateway listener")
	}
	e.Proc.Await("an accepted probe", 20*time.Second, func() bool {
		v := e.Proc.Metric(`clear_rotator_gateway_probes_total{client="default",code="2xx"}`)
		return v != "" && v != "0"
	})
	_, version, _ := e.Current()
	before := e.Emu.Requests(e.Secrets[0])
	e.Issue() // outside the rotator: the stored token is revoked
	e.Proc.Await("the revoked token replaced", 30*time.Second, func() bool {
		_, now, _ := e.Current()
		return now != version && e.Live()
	})
	if got := e.Emu.Requests(e.Secrets[0]) - before; got != 2 {
		t.Fatalf("Clear saw %d token requests, want 2 (the outside one and one rotation)", got)
	}
	if v := e.Proc.Metric(`clear_rotator_gateway_revoked_outside_total{client="default"}`); v != "1" {
		t.Errorf("revoked_outside_total = %q, want 1", v)
	}
	st := statusOf(t, e.World)
	if st.RevokedOutside == nil || st.RevokedOutside.Version != version {
		t.Errorf("status --json revoked_outside = %+v, want version %s", st.RevokedOutside, version)
	}
	// Probes of the new token ask Clear for nothing more.
	time.Sleep(3 * time.Second)
	if got := e.Emu.Requests(e.Secrets[0]) - before; got != 2 {
		t.Fatalf("Clear saw %d token requests after the heal, want 2", got)
	}
}

// TestProbeFollowsEveryNewToken: a revocation is found only in a token Clear has accepted on an
// earlier probe, so each new token is probed within a second of its storing, whatever the
// interval: here rotations every 2 s against an interval of an hour.
func TestProbeFollowsEveryNewToken(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{RotatorEnv: []string{"ROTATOR_PROBE_PATH=" + rig.PingPath, "ROTATOR_PROBE_INTERVAL=1h"}})
	issued := e.Issued()
	e.Proc.Await("three more rotations", 30*time.Second, func() bool { return e.Issued() >= issued+3 })
	time.Sleep(1500 * time.Millisecond) // the last one's probe
	n, _ := strconv.Atoi(e.Proc.Metric(`clear_rotator_gateway_probes_total{client="default",code="2xx"}`))
	if n < 3 {
		t.Fatalf("%d accepted probes over at least three new tokens, want one per token", n)
	}
	if v := e.Proc.Metric(`clear_rotator_gateway_revoked_outside_total{client="default"}`); v != "0" {
		t.Errorf("revoked_outside_total = %q over ordinary rotations", v)
	}
}

// TestGatewayHealIsDelivered: a token the gateway's heal stores after a revocation outside the
// rotator is push-delivered like every other stored token: by `rotator gateway` within the heal,
// and by `rotator run`'s embedded gateway through the daemon's push delivery. Before, the heal
// handed the token to the gateway's callers only, and the ERP's webhook never heard of it.
func TestGatewayHealIsDelivered(t *testing.T) {
	for _, cmd := range []string{"gateway", "run"} {
		t.Run(cmd, func(t *testing.T) {
			w := world(t, rig.Options{Lifetime: -1})
			rc := w.Receiver()
			wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: rotated")
			env := append(rc.Env(), "ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_POLL=1s",
				"ROTATOR_GATEWAY_HOLD=60s", "ROTATOR_HTTP_ADDR=")
			g := awaitGateway(t, w.Start(proctest.TestRotator(t), env, cmd))
			if code, body := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK {
				t.Fatalf("first call: %d %s", code, body)
			}
			_, before := w.MustCurrent()
			w.Issue() // outside the rotator: the stored token is revoked
			if code, body := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK {
				t.Fatalf("held call: %d %s", code, body)
			}
			_, healed := w.MustCurrent()
			if healed == before {
				t.Fatal("AWSCURRENT did not move on")
			}
			g.Await("the heal's delivery", 30*time.Second, func() bool {
				got := rc.Deliveries()
				return len(got) == 2 && got[1].Verified && decodeBody(t, got[1]).VersionID == healed
			})
		})
	}
}
