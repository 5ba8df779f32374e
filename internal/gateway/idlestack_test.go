package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// deep uses about n KiB of stack, as a request's deepest call chain does.
//
//go:noinline
func deep(n int) byte {
	var buf [1000]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%len(buf)]
}

// An idle keep-alive connection does not keep the stack its request grew: the goroutine that
// served it hands the wait for the next request to a new one, whose stack starts small, once the
// connection has been idle for Limits.IdleHandoff. Of a gateway's thousands of idle connections
// that was most of their memory (BENCHMARKS.md 9: 12.7 kB a connection, then 16.5 kB once a
// request's frames grew by 128 bytes and its stack doubled to 16 KiB). The garbage collector,
// which would shrink the stacks at its own pace, is off for the measurement.
func TestIdleConnectionsGiveBackTheirStack(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	l := gateway.DefaultLimits
	l.IdleHandoff = 50 * time.Millisecond
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deep(64)
		io.WriteString(w, "ok")
	}), l)
	stacks := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.StackInuse
	}
	// Each connection's request grew its goroutine's stack to 128 KiB; once idle, its wait takes
	// a few KiB at most.
	if per := idleCost(t, srv, 100, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", stacks, 16<<10); per >= 16<<10 {
		t.Errorf("idle connections hold %d KiB of stack each, want less than 16", per>>10)
	}
}

// An idle keep-alive connection handed to a new goroutine does not keep its 4 KiB read buffer nor
// the last request it served (its headers, its URL): after the stack, the largest of what an idle
// connection held (BENCHMARKS.md 9). Both ends of each connection are in this process; what the
// caller's end takes (its descriptor) is a few hundred bytes.
func TestIdleConnectionsGiveBackTheirBuffers(t *testing.T) {
	l := gateway.DefaultLimits
	l.IdleHandoff = 50 * time.Millisecond
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), l)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	request := "GET /a/path?with=a&query=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: erp\r\nAccept: */*\r\n\r\n"
	if per := idleCost(t, srv, 500, request, heap, 5<<10); per >= 5<<10 {
		t.Errorf("idle connections hold %d bytes of heap each (both ends), want less than 5 KiB (about 2.5 KiB, and 8.7 kB with the reader kept)", per)
	}
}

// idleCost serves srv on loopback, leaves n keep-alive connections idle after one request each,
// and waits (10 s at most) for what each holds by measure, against its figure before, to fall below
// bound; it returns the last figure.
func idleCost(t *testing.T, srv *gateway.Server, n int, request string, measure func() uint64, bound uint64) uint64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	before := measure()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, request)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var per uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if per = (measure() - min(before, measure())) / uint64(n); per < bound {
			break
		}
	}
	return per
}

// A connection handed to a new goroutine while idle carries on as before, over TLS too (whose
// read timed out at the hand-off), and Shutdown still closes it.
func TestIdleHandoffKeepsTheConnection(t *testing.T) {
	dir := t.TempDir()
	cert := rig.SelfSigned(t, dir, 1)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, useTLS := range []bool{false, true} {
		l := gateway.DefaultLimits
		l.IdleHandoff = 20 * time.Millisecond
		srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }), l)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dial := func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }
		if useTLS {
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
			dial = func() (net.Conn, error) {
				return tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
			}
		}
		go srv.Serve(ln)
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for i, wait := range []time.Duration{0, 100 * time.Millisecond, 0, 100 * time.Millisecond} {
			time.Sleep(wait) // past the hand-off, or not
			path := "/call-" + strconv.Itoa(i)
			io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("tls %v, request %d: %v", useTLS, i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != path {
				t.Fatalf("tls %v, request %d: answered %q", useTLS, i, body)
			}
		}
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("tls %v: Shutdown with a handed-off idle connection: %v", useTLS, err)
		}
		cancel()
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("tls %v: the idle connection is still open after Shutdown", useTLS)
		}
		c.Close()
	}
}

// A request whose first byte wakes a connection that waits without its reader is read whole, in
// pieces too; and a request's headers are bounded alike however its connection waited for it:
// the bytes read while waiting (one, or a reader's worth) count.
func TestARequestWakingAHandedOffConnection(t *testing.T) {
	l := gateway.DefaultLimits
	l.IdleHandoff = 50 * time.Millisecond
	l.MaxHeaderBytes = 1 << 10 // plus the reader's 4 KiB of read-ahead
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }), l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var c net.Conn
	var br *bufio.Reader
	dial := func() {
		if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br = bufio.NewReader(c)
	}
	answer := func(idle time.Duration, parts ...string) (int, string) {
		t.Helper()
		time.Sleep(idle)
		for _, p := range parts {
			io.WriteString(c, p)
			time.Sleep(20 * time.Millisecond)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	const handedOff = 150 * time.Millisecond
	dial()
	for i, parts := range [][]string{{"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"}, {"G", "ET /second HTTP/1.1\r\n", "Host: x\r\n\r\n"},
		{"GET /third HTTP/1.1\r\nHost: x\r\n\r\nGET /fourth HTTP/1.1\r\nHost: x\r\n\r\n"}, {}} {
		want := []string{"/first", "/second", "/third", "/fourth"}[i]
		if code, body := answer(handedOff, parts...); code != 200 || body != want {
			t.Fatalf("request %d, after the hand-off: %d %q", i, code, body)
		}
	}
	big := "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 6<<10) + "\r\n\r\n"
	for _, idle := range []time.Duration{handedOff, 0} {
		dial()
		if code, _ := answer(0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); code != 200 {
			t.Fatalf("a first request: %d", code)
		}
		if code, _ := answer(idle, big); code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("headers of 6 KiB past a limit of 5 after %s idle: %d", idle, code)
		}
	}
}

// Plain HTTP sent to the gateway's TLS port is answered, as net/http's server answers it, with a
// 400 that says what is wrong, rather than a connection closed without a word ("Empty reply from
// server", which told an ERP's administrator nothing; an audit's walk-through).
func TestPlainHTTPToTheTLSPortIsTold(t *testing.T) {
	dir := t.TempDir()
	rig.SelfSigned(t, dir, 1)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), gateway.DefaultLimits)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}))
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	out, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(out), "HTTP/1.0 400 ") || !strings.Contains(string(out), "HTTPS") {
		t.Errorf("plain HTTP to the TLS port: %q", out)
	}
}
