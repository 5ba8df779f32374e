package gateway_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// The listener holds at most MaxConns connections, and headers beyond MaxHeaderBytes are refused.
func TestServerLimits(t *testing.T) {
	t.Parallel()
	l := gateway.DefaultLimits
	l.MaxConns, l.MaxHeaderBytes = 2, 1024
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(gateway.LimitListener(ln, l.MaxConns))
	t.Cleanup(func() { srv.Close() })
	get := func(c net.Conn, extra string) string {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if line := get(c, ""); !strings.Contains(line, " 200 ") {
			t.Fatalf("within the limit: %q", line)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line := get(c, ""); line != "" {
		t.Fatalf("a third connection was served: %q", line)
	}
	held[0].Close()
	time.Sleep(100 * time.Millisecond)
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if line := get(c2, "X-Big: "+strings.Repeat("a", 8192)+"\r\n"); !strings.Contains(line, " 431 ") {
		t.Fatalf("oversized headers: %q", line)
	}
}

// serveRaw starts the gateway's server for h on loopback with l, and returns its address.
func serveRaw(t *testing.T, h http.Handler, l gateway.Limits) (*gateway.Server, string) {
	t.Helper()
	srv := gateway.NewServer(h, l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return srv, ln.Addr().String()
}

// exchange writes raw on a new connection and returns everything the server sent until it closed
// the connection or fell silent for wait.
func exchange(t *testing.T, addr, raw string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, raw)
	var out strings.Builder
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

// The server's framing: keep-alive and pipelining in order, chunked bodies both ways with
// trailers, Content-Length as declared, HEAD and 204 without a body, HTTP/1.0 closed after its
// answer, a Date on every answer.
func TestServerFraming(t *testing.T) {
	t.Parallel()
	_, addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/len":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "fixed")
		case "/chunked":
			io.WriteString(w, "one,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
			w.Header().Set(http.TrailerPrefix+"X-Sum", "7")
		case "/none":
			w.WriteHeader(http.StatusNoContent)
			io.WriteString(w, "dropped")
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(b)+len(r.Method)+1))
			io.WriteString(w, r.Method+" "+string(b))
		}
	}), gateway.DefaultLimits)
	out := exchange(t, addr, "GET /len HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"+
		"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"+
		"HEAD /len HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /none HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond)
	br := bufio.NewReader(strings.NewReader(out))
	for _, want := range []struct {
		method, body string
		code         int
		trailer      string
	}{{"GET", "fixed", 200, ""}, {"POST", "POST abcde", 200, ""}, {"GET", "one,two", 200, "7"}, {"HEAD", "", 200, ""}, {"GET", "", 204, ""}} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("reading the answers %q: %v", out, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want.code || string(b) != want.body || resp.Trailer.Get("X-Sum") != want.trailer || resp.Header.Get("Date") == "" {
			t.Errorf("%s: %d %q trailer %q date %q; want %d %q %q", want.method, resp.StatusCode, b, resp.Trailer.Get("X-Sum"), resp.Header.Get("Date"), want.code, want.body, want.trailer)
		}
	}
	if out := exchange(t, addr, "GET /len HTTP/1.0\r\n\r\n", 5*time.Second); !strings.HasSuffix(out, "fixed") || !strings.Contains(out, "Connection: close") {
		t.Errorf("HTTP/1.0: %q, want one answer and the connection closed", out)
	}
}

// What net/http's server refuses, this one refuses, and a request it cannot read ends the
// connection: malformed, no Host, an Expect it does not meet, headers beyond the limit.
func TestServerRefusals(t *testing.T) {
	t.Parallel()
	l := gateway.DefaultLimits
	l.MaxHeaderBytes = 1024
	_, addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), l)
	for raw, want := range map[string]string{
		"GET / HTTP/1.1\r\n\r\n":                                       "400",
		"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n":           "400",
		"NOT A REQUEST\r\n\r\n":                                        "400",
		"GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n":           "417",
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 8192): "431",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n":                             "505",
	} {
		out := exchange(t, addr, raw, 5*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 "+want+" ") || !strings.Contains(out, "Connection: close") {
			t.Errorf("%.40q: %q, want %s and the connection closed", raw, out, want)
		}
	}
}

// Expect: 100-continue gets its 100 when the handler reads the body; when the handler answers
// without reading it, the connection is closed rather than left waiting for a body that will not
// come.
func TestServerExpectContinue(t *testing.T) {
	t.Parallel()
	_, addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
			return
		}
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "no")
	}), gateway.DefaultLimits)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("first line %q, want 100 Continue", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "body")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "body" {
		t.Fatalf("echo %q", b)
	}
	begin := time.Now()
	out := exchange(t, addr, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", 5*time.Second)
	if !strings.HasSuffix(out, "no") || time.Since(begin) > 3*time.Second {
		t.Errorf("unread body: %q after %v, want the answer and the connection closed at once", out, time.Since(begin))
	}
}

// A handler that aborts (http.ErrAbortHandler) or panics ends its connection and nothing else: the
// caller sees a cut answer, not a complete one, and the server serves the next connection.
func TestServerAbort(t *testing.T) {
	t.Parallel()
	_, addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abort":
			io.WriteString(w, "half")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/panic":
			panic("a bug")
		}
		io.WriteString(w, "ok")
	}), gateway.DefaultLimits)
	for _, p := range []string{"/abort", "/panic"} {
		resp, err := http.Get("http://" + addr + p)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Errorf("%s: a complete answer", p)
		}
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// Shutdown lets a request in flight finish, closes idle connections, and stops accepting; a
// connection that sends nothing is closed after ReadHeader, an idle one after Idle.
func TestServerShutdownAndTimeouts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	l := gateway.DefaultLimits
	l.ReadHeader, l.Idle = 300*time.Millisecond, 300*time.Millisecond
	srv, addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}), l)
	begin := time.Now()
	if out := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n", 5*time.Second); out != "" || time.Since(begin) > 3*time.Second {
		t.Errorf("a request that never ends its headers: %q after %v", out, time.Since(begin))
	}
	begin = time.Now()
	if out := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second); !strings.HasSuffix(out, "ok") || time.Since(begin) > 3*time.Second {
		t.Errorf("an idle connection: %q after %v", out, time.Since(begin))
	}
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	got := make(chan string, 1)
	go func() { got <- exchange(t, addr, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second) }()
	time.Sleep(100 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("a connection was accepted after Shutdown")
	}
	close(release)
	if out := <-got; !strings.HasSuffix(out, "ok") || !strings.Contains(out, "Connection: close") {
		t.Errorf("the request in flight: %q, want its answer, the connection then closed", out)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// The server's write limit outlasts a call's longest course at every setting: two holds (no live
// token at first, then a 401) and two attempts. It was one hold, so that with a long hold and a
// short upstream timeout (60 s and 1 s) a call held twice was cut off at 92 s, 30 s short.
func TestWriteLimitOutlastsTheLongestCall(t *testing.T) {
	for _, hold := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		for _, upstream := range []time.Duration{time.Second, 2 * time.Minute, 10 * time.Minute} {
			if got, course := gateway.WriteLimit(hold, upstream), 2*hold+2*upstream; got < course+10*time.Second {
				t.Errorf("hold %s, upstream %s: write limit %s, the longest call %s", hold, upstream, got, course)
			}
		}
	}
}
