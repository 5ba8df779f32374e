package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// connCounter counts the connections a test server accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

func get(t *testing.T, rt http.RoundTripper, method, u string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// One connection carries request after request, whatever their bodies and answers.
func TestUpstreamKeepsConnectionsAlive(t *testing.T) {
	var cc connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part one,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Write(append([]byte(r.Method+" "), b...))
		}
	}))
	srv.Config.ConnState = cc.hook
	srv.Start()
	defer srv.Close()
	up := gateway.NewTransport(time.Minute, 4)
	defer up.CloseIdleConnections()
	for range 3 {
		if code, b := get(t, up, "GET", srv.URL+"/x", nil); code != 200 || b != "GET " {
			t.Fatalf("GET: %d %q", code, b)
		}
		if code, b := get(t, up, "POST", srv.URL+"/x", strings.NewReader("a body")); code != 200 || b != "POST a body" {
			t.Fatalf("POST: %d %q", code, b)
		}
		// A body of unknown length goes chunked.
		if code, b := get(t, up, "POST", srv.URL+"/x", io.MultiReader(strings.NewReader("chun"), strings.NewReader("ked"))); code != 200 || b != "POST chunked" {
			t.Fatalf("chunked POST: %d %q", code, b)
		}
		if code, b := get(t, up, "GET", srv.URL+"/chunked", nil); code != 200 || b != "part one,part two" {
			t.Fatalf("chunked answer: %d %q", code, b)
		}
		if code, _ := get(t, up, "HEAD", srv.URL+"/x", nil); code != 200 {
			t.Fatalf("HEAD: %d", code)
		}
		if code, _ := get(t, up, "GET", srv.URL+"/empty", nil); code != 204 {
			t.Fatalf("204: %d", code)
		}
	}
	if n := cc.n.Load(); n != 1 {
		t.Errorf("%d connections for 18 requests in turn, want 1", n)
	}
}

// The request goes out as the gateway built it: no header of the transport's own (no gzip asked
// for on the ERP's behalf, no Go User-Agent), and a header that would split the request is
// refused before anything is sent.
func TestUpstreamWritesTheRequestAsGiven(t *testing.T) {
	var got http.Header
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		got = r.Header.Clone()
	}))
	defer srv.Close()
	up := gateway.NewTransport(time.Minute, 4)
	defer up.CloseIdleConnections()
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	req.Header["User-Agent"] = []string{""}
	req.Header.Set("X-Erp", "1")
	resp, err := up.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Get("Accept-Encoding") != "" || got.Get("User-Agent") != "" || got.Get("X-Erp") != "1" {
		t.Errorf("Clear saw %v; want X-Erp only", got)
	}
	for _, h := range []http.Header{{"X-Bad": {"a\r\nX-Injected: 1"}}, {"X-Bad\r\nX": {"1"}}, {"X-Bad": {"a\nb"}}} {
		req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
		req.Header = h
		if resp, err := up.RoundTrip(req); err == nil {
			resp.Body.Close()
			t.Errorf("header %q was sent", h)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("Clear saw %d requests, want 1", n)
	}
}

// A connection Clear closed while it sat idle is found dead before a request is written on it,
// whatever the method: the POST goes out once, on a new connection, and is answered.
func TestUpstreamIdleConnectionClosedByClear(t *testing.T) {
	var cc connCounter
	var posts atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = cc.hook
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	up := gateway.NewTransport(time.Minute, 4)
	defer up.CloseIdleConnections()
	get(t, up, "GET", srv.URL+"/x", nil)
	time.Sleep(300 * time.Millisecond) // the server closes the idle connection
	if code, b := get(t, up, "POST", srv.URL+"/x", strings.NewReader("once")); code != 200 || b != "ok" {
		t.Fatalf("POST after the idle close: %d %q", code, b)
	}
	if posts.Load() != 1 || cc.n.Load() != 2 {
		t.Errorf("%d POSTs on %d connections, want 1 on 2", posts.Load(), cc.n.Load())
	}
}

// A request Clear may have acted on is never sent twice: Clear reads it and drops the
// connection without an answer, and the caller gets an error, not a second delivery.
func TestUpstreamNeverSendsARequestTwice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var seen atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if seen.Add(1) > 1 {
						return // the second request on this server: read whole, never answered
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	up := gateway.NewTransport(time.Minute, 4)
	defer up.CloseIdleConnections()
	get(t, up, "GET", "http://"+ln.Addr().String()+"/x", nil)
	for _, method := range []string{"GET", "POST"} {
		seen.Store(1)
		req, _ := http.NewRequest(method, "http://"+ln.Addr().String()+"/x", strings.NewReader("body"))
		if resp, err := up.RoundTrip(req); err == nil {
			resp.Body.Close()
			t.Fatalf("%s: answered without an answer", method)
		}
		if n := seen.Load() - 1; n != 1 {
			t.Errorf("%s was delivered %d times, want 1", method, n)
		}
	}
}

// Clear's response headers are awaited Timeout at most; the caller going away ends the wait at
// once.
func TestUpstreamTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	up := &gateway.Upstream{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("GET", srv.URL+"/slow", nil)
	begin := time.Now()
	_, err := up.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("the timeout took %v", d)
	}
	up = &gateway.Upstream{Timeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow", nil)
	time.AfterFunc(100*time.Millisecond, cancel)
	begin = time.Now()
	if _, err := up.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("the cancel took %v", d)
	}
}

// Response headers beyond the bound end the answer instead of growing without end.
func TestUpstreamBoundsResponseHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Long: ")
		chunk := strings.Repeat("a", 64<<10)
		for range 40 { // 2.5 MiB of one header
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	}()
	up := gateway.NewTransport(time.Minute, 4)
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/x", nil)
	if resp, err := up.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("an answer with 2.5 MiB of headers was taken")
	}
}

// Informational answers (1xx) count against the same bound as the headers of the answer they
// precede: an endless run of them, each small, ends the answer instead of being read until the
// timeout. The bound used to start afresh with each one.
func TestUpstreamBoundsInformationalAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		early := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n", 1000)
		for range 40 { // 2 MiB of informational answers
			if _, err := io.WriteString(c, early); err != nil {
				return
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}()
	up := gateway.NewTransport(time.Minute, 4)
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/x", nil)
	if resp, err := up.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("an answer behind 2 MiB of informational answers was taken")
	}
}

// https: the handshake checks Clear's certificate, and the connection is kept as over http.
func TestUpstreamTLS(t *testing.T) {
	var cc connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	}))
	srv.Config.ConnState = cc.hook
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	if code, b := tryGet(&gateway.Upstream{}, srv.URL); code != 0 || !strings.Contains(b, "certificate") {
		t.Fatalf("an unknown certificate was accepted: %d %q", code, b)
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	up := &gateway.Upstream{TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	defer up.CloseIdleConnections()
	for range 3 {
		if code, b := get(t, up, "GET", srv.URL+"/x", nil); code != 200 || b != "HTTP/1.1" {
			t.Fatalf("GET over TLS: %d %q", code, b)
		}
	}
	if n := cc.n.Load(); n != 2 { // the refused handshake, then one connection
		t.Errorf("%d connections, want 2", n)
	}
}

func tryGet(rt http.RoundTripper, u string) (int, string) {
	req, _ := http.NewRequest("GET", u, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A host that Proxy sends through a proxy goes through http.Transport, which speaks to the proxy.
func TestUpstreamThroughAProxy(t *testing.T) {
	var mu sync.Mutex
	var via []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		via = append(via, r.URL.String())
		mu.Unlock()
		w.Write([]byte("via proxy"))
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	up := &gateway.Upstream{Proxy: http.ProxyURL(pu)}
	defer up.CloseIdleConnections()
	if code, b := get(t, up, "GET", "http://clear.invalid/x", nil); code != 200 || b != "via proxy" {
		t.Fatalf("%d %q", code, b)
	}
	if len(via) != 1 || via[0] != "http://clear.invalid/x" {
		t.Errorf("the proxy saw %q", via)
	}
}

// A body read only in part closes its connection (the rest of the answer is still on it); read
// to its end, the connection serves the next request.
func TestUpstreamBodyClosedEarly(t *testing.T) {
	var cc connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100<<10)))
	}))
	srv.Config.ConnState = cc.hook
	srv.Start()
	defer srv.Close()
	up := gateway.NewTransport(time.Minute, 4)
	defer up.CloseIdleConnections()
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	resp, err := up.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close()
	if code, b := get(t, up, "GET", srv.URL+"/x", nil); code != 200 || len(b) != 100<<10 {
		t.Fatalf("%d, %d bytes", code, len(b))
	}
	get(t, up, "GET", srv.URL+"/x", nil)
	if n := cc.n.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// The connections a burst opened are closed once they have been idle for Idle, while a steady
// trickle of requests keeps using one, rather than held open until the next burst.
func TestUpstreamClosesWhatABurstLeft(t *testing.T) {
	var open atomic.Int64
	arrived := make(chan struct{}, 3)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/burst" {
			arrived <- struct{}{}
			<-release
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	up := &gateway.Upstream{Idle: 200 * time.Millisecond, MaxIdle: 8}
	defer up.CloseIdleConnections()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { get(t, up, "GET", srv.URL+"/burst", nil) })
	}
	for range 3 {
		<-arrived
	}
	close(release)
	wg.Wait()
	if n := open.Load(); n != 3 {
		t.Fatalf("%d connections open after the burst, want 3", n)
	}
	// A request every 100 ms keeps one connection in use; the other two are idle for longer.
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		get(t, up, "GET", srv.URL+"/x", nil)
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n != 1 {
		t.Errorf("%d connections open after the next request, want 1", n)
	}
}

// stallServer accepts connections and, for each, reads the request's headers and writes answer
// (when read is set), then holds the connection open without a word more until the test ends.
// Through a proxy it is the proxy: for an http:// target the transport sends it the request.
func stallServer(t *testing.T, read bool, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if read {
					br := bufio.NewReader(c)
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, answer)
				}
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// endless is a request body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// Every wait on Clear is bounded by Timeout, through a proxy (HTTPS_PROXY, HTTP_PROXY) as well
// as directly: writing the request, and reading the answer's body after its headers came. Through
// a proxy, http.Transport bounds only the wait for the headers, after the request was written:
// a body that stalled, or a request the proxy stopped reading, held the gateway's handler (and the
// ERP's connection) for ever.
func TestUpstreamBoundsEveryWaitThroughAProxy(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	for _, via := range []string{"direct", "proxy"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			transport := func(addr string) (*gateway.Upstream, string) {
				if via == "direct" {
					return &gateway.Upstream{Timeout: timeout}, "http://" + addr + "/x"
				}
				pu := &url.URL{Scheme: "http", Host: addr}
				return &gateway.Upstream{Timeout: timeout, Proxy: http.ProxyURL(pu)}, "http://clear.invalid/x"
			}

			// The answer's body stalls after its first bytes.
			up, u := transport(stallServer(t, true, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst"))
			defer up.CloseIdleConnections()
			req, _ := http.NewRequest("GET", u, nil)
			type result struct {
				body []byte
				err  error
			}
			got := within(t, 10*time.Second, "reading a stalled body", func() result {
				resp, err := up.RoundTrip(req)
				if err != nil {
					return result{err: err}
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return result{b, err}
			})
			if got.err == nil || string(got.body) != "first" {
				t.Errorf("stalled body: %q, %v; want the first bytes, then an error", got.body, got.err)
			}

			// The request's body is never read.
			up, u = transport(stallServer(t, false, ""))
			defer up.CloseIdleConnections()
			req, _ = http.NewRequest("POST", u, io.NopCloser(endless{}))
			err := within(t, 10*time.Second, "writing a request nobody reads", func() error {
				resp, err := up.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				return err
			})
			var ne net.Error
			if err == nil || !(errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)) {
				t.Errorf("a request nobody reads: %v, want a timeout", err)
			}
		})
	}
}
