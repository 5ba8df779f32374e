package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// Upstream is the gateway's transport to Clear: HTTP/1.1 over kept-alive connections, each
// request written and its answer read on the goroutine that asked.
//
// http.Transport hands every request to a connection's writer goroutine and every answer back
// from its reader goroutine. On a gateway, whose every request is one round trip to Clear, those
// hand-offs and the reverse proxy's copies around them cost as much CPU as serving the caller
// (BENCHMARKS.md 9). Upstream does the one thing the gateway needs: write the request, read the
// answer, keep the connection for the next request.
//
// What it gives up, on purpose: HTTP/2 to Clear (one request per connection at a time, as nginx's
// proxy_pass does), and Expect: 100-continue (the body follows the headers at once). Requests to
// a host that Proxy sends through a proxy (HTTPS_PROXY, HTTP_PROXY) go through http.Transport,
// which speaks CONNECT.
//
// A request is never sent twice once it was written whole: Clear may have acted on it. A
// connection Clear closed while it was idle is found dead before it is used (see alive); a write
// that fails on a reused connection, the request not delivered, is retried once on a new
// connection when its body can be had again.
type Upstream struct {
	// Timeout bounds the wait for Clear's response headers, then, afresh, the reading of the
	// body. Zero means DefaultUpstreamTimeout.
	Timeout time.Duration
	// DialTimeout bounds a connection's dial and TLS handshake together; zero means 10 s.
	DialTimeout time.Duration
	// MaxIdle is the most idle connections kept per host; zero means 2.
	MaxIdle int
	// Idle is how long an idle connection is kept; zero means DefaultUpstreamIdle.
	Idle time.Duration
	// TLS is the client configuration for https; nil means the system's roots, TLS 1.2 or later.
	TLS *tls.Config
	// Proxy picks a proxy for a request, as http.Transport's does; nil means
	// http.ProxyFromEnvironment. It is asked once per scheme and host.
	Proxy func(*http.Request) (*url.URL, error)

	once     sync.Once
	proxy    func(*http.Request) (*url.URL, error) // Proxy, its errors told without a password
	fallback *http.Transport
	mu       sync.Mutex
	hosts    map[string]*upHost
}

// DefaultUpstreamIdle is how long an idle connection is kept: shorter than the idle timeouts of the
// load balancers and servers in front of an API (60 s for an AWS load balancer, 75 s for nginx),
// so that the gateway, not Clear, closes it.
const DefaultUpstreamIdle = 30 * time.Second

// upHost is one scheme and host: its idle connections, most recently used last, and whether its
// requests go through a proxy.
type upHost struct {
	scheme, addr, serverName string
	viaProxy                 bool
	idle                     []*upConn
}

// upConn is one connection to Clear.
type upConn struct {
	net.Conn
	tcp   net.Conn // the TCP connection under TLS, for alive
	br    *bufio.Reader
	bw    *bufio.Writer
	read  int64 // bytes read from the connection since the request began
	limit int64 // while reading headers, the most read may reach; 0 when no limit applies
	used  time.Time
}

// errHeaderTooLarge ends an answer whose headers exceed maxResponseHeader.
var errHeaderTooLarge = errors.New("gateway: Clear's response headers are too large")

func (c *upConn) Read(p []byte) (int, error) {
	if c.limit > 0 && c.read >= c.limit {
		return 0, errHeaderTooLarge
	}
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// NewTransport is the transport to Clear: an Upstream with upstreamTimeout, keeping up to
// maxConns idle connections per host (every caller's connection has at most one request in
// flight, so a steady load reuses connections instead of dialling). Redirects are never
// followed: a 3xx goes back to the caller as Clear sent it.
func NewTransport(upstreamTimeout time.Duration, maxConns int) *Upstream {
	return &Upstream{Timeout: upstreamTimeout, MaxIdle: max(maxConns, 2)}
}

func (u *Upstream) init() {
	u.once.Do(func() {
		if u.Timeout <= 0 {
			u.Timeout = DefaultUpstreamTimeout
		}
		if u.DialTimeout <= 0 {
			u.DialTimeout = 10 * time.Second
		}
		if u.MaxIdle <= 0 {
			u.MaxIdle = 2
		}
		if u.Idle <= 0 {
			u.Idle = DefaultUpstreamIdle
		}
		if u.Proxy == nil {
			u.Proxy = http.ProxyFromEnvironment
		}
		u.proxy = func(r *http.Request) (*url.URL, error) {
			p, err := u.Proxy(r)
			if err != nil {
				return nil, redactProxyError(err)
			}
			return p, nil
		}
		u.hosts = map[string]*upHost{}
		u.fallback = &http.Transport{
			Proxy:                  u.proxy,
			DialContext:            (&net.Dialer{Timeout: u.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:        u.TLS,
			MaxIdleConnsPerHost:    u.MaxIdle,
			IdleConnTimeout:        u.Idle,
			TLSHandshakeTimeout:    u.DialTimeout,
			DisableCompression:     true,
			ResponseHeaderTimeout:  u.Timeout,
			MaxResponseHeaderBytes: maxResponseHeader,
		}
	})
}

// maxResponseHeader bounds Clear's response headers.
const maxResponseHeader = 1 << 20

// errHeaderValue refuses a header that would split the request: net/http's server never hands the
// gateway one, but the token comes from Clear, and a guard holds for any input.
var errHeaderValue = errors.New("gateway: a header name or value is not valid HTTP")

// RoundTrip implements http.RoundTripper.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	u.init()
	h, err := u.host(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if h.viaProxy {
		return u.throughProxy(req)
	}
	ctx := req.Context()
	c, reused, err := u.conn(ctx, h)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	resp, err := u.exchange(c, req)
	if err != nil && reused && c.read == 0 && errors.Is(err, errNotDelivered) && rewindable(req) {
		// The connection died under a request it did not deliver whole: Clear never saw it.
		stop()
		c.Close()
		if req, err = rewind(req); err != nil {
			return nil, err
		}
		if c, _, err = u.dial(ctx, h); err != nil {
			closeBody(req)
			return nil, err
		}
		stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
		resp, err = u.exchange(c, req)
	}
	if err != nil {
		stop()
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gateway: request to Clear: %w", ctx.Err())
		}
		return nil, err
	}
	if resp.Body == http.NoBody {
		u.release(h, c, stop, !resp.Close)
		return resp, nil
	}
	resp.Body = &upBody{body: resp.Body, u: u, h: h, c: c, stop: stop, reuse: !resp.Close}
	return resp, nil
}

// errProxyTimeout ends a request through a proxy that took longer than its bound.
var errProxyTimeout = fmt.Errorf("gateway: request to Clear through the proxy: %w", context.DeadlineExceeded)

// throughProxy sends req through http.Transport with the bounds of a direct request: the request
// written and the answer's headers within twice Timeout (as a direct request's write, then its
// wait), then the body within Timeout, afresh. http.Transport bounds only the wait for the headers
// once the request is written; a proxy that stopped reading the request, or an answer's body that
// stalled, would hold the caller's request for ever.
func (u *Upstream) throughProxy(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	var late atomic.Bool
	timer := time.AfterFunc(2*u.Timeout, func() { late.Store(true); cancel() })
	resp, err := u.fallback.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timer.Stop()
		cancel()
		if late.Load() {
			return nil, errProxyTimeout
		}
		return nil, err
	}
	timer.Reset(u.Timeout)
	resp.Body = &proxyBody{ReadCloser: resp.Body, late: &late, stop: func() { timer.Stop(); cancel() }}
	return resp, nil
}

// proxyBody is an answer's body through a proxy, read within its bound.
type proxyBody struct {
	io.ReadCloser
	late *atomic.Bool
	stop func()
}

func (b *proxyBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.late.Load() {
		err = errProxyTimeout
	}
	return n, err
}

func (b *proxyBody) Close() error {
	b.stop()
	return b.ReadCloser.Close()
}

// host returns the pool of req's scheme and host.
func (u *Upstream) host(req *http.Request) (*upHost, error) {
	if req.URL == nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return nil, errors.New("gateway: an upstream URL needs http or https and a host")
	}
	key := req.URL.Scheme + "://" + req.URL.Host
	u.mu.Lock()
	h := u.hosts[key]
	u.mu.Unlock()
	if h != nil {
		return h, nil
	}
	h = &upHost{scheme: req.URL.Scheme, serverName: req.URL.Hostname()}
	port := req.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[req.URL.Scheme]
	}
	h.addr = net.JoinHostPort(h.serverName, port)
	p, err := u.proxy(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: choosing a proxy: %w", err)
	}
	h.viaProxy = p != nil
	u.mu.Lock()
	defer u.mu.Unlock()
	if prev := u.hosts[key]; prev != nil {
		return prev, nil
	}
	u.hosts[key] = h
	return h, nil
}

// redactProxyError is err told by secret.RedactProxyText, to be logged.
func redactProxyError(err error) error { return errors.New(secret.RedactProxyText(err.Error())) }

// conn returns an idle connection that is still open, or a new one.
func (u *Upstream) conn(ctx context.Context, h *upHost) (c *upConn, reused bool, err error) {
	now := time.Now()
	for {
		u.mu.Lock()
		n := len(h.idle)
		if n == 0 {
			u.mu.Unlock()
			return u.dial(ctx, h)
		}
		c = h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		u.mu.Unlock()
		if now.Sub(c.used) < u.Idle && alive(c.tcp) {
			c.read = 0
			return c, true, nil
		}
		c.Close()
	}
}

// dial opens a connection to h, with TLS for https.
func (u *Upstream) dial(ctx context.Context, h *upHost) (*upConn, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, u.DialTimeout)
	defer cancel()
	tcp, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, false, err
	}
	conn := tcp
	if h.scheme == "https" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if u.TLS != nil {
			cfg = u.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = h.serverName
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(tcp, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			tcp.Close()
			return nil, false, err
		}
		conn = tc
	}
	c := &upConn{Conn: conn, tcp: tcp}
	c.br = bufio.NewReaderSize(c, 4<<10)
	c.bw = bufio.NewWriterSize(c.Conn, 4<<10)
	return c, false, nil
}

// errNotDelivered marks a request that was not written whole.
var errNotDelivered = errors.New("gateway: the request was not delivered to Clear")

// exchange writes req on c and reads the answer's headers.
func (u *Upstream) exchange(c *upConn, req *http.Request) (*http.Response, error) {
	if err := c.SetWriteDeadline(time.Now().Add(u.Timeout)); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotDelivered, err)
	}
	if err := writeRequest(c.bw, req); err != nil {
		if errors.Is(err, errHeaderValue) {
			return nil, err
		}
		// Clear may have answered before it read the whole body (a 401 first of all: the token
		// is checked before the body is read) and closed the connection, which is why the rest
		// could not be written. That answer is on the connection already, and it is Clear's:
		// passed on, a 401 is held and replayed like any other. The connection is not reused.
		if resp, rerr := u.answer(c, req, min(earlyAnswerWait, u.Timeout)); rerr == nil {
			resp.Close = true
			return resp, nil
		}
		return nil, fmt.Errorf("%w: %w", errNotDelivered, err)
	}
	return u.answer(c, req, u.Timeout)
}

// earlyAnswerWait bounds the look for an answer Clear sent before the request was written whole:
// such an answer came before the connection failed, so it is there at once, unless Clear did not
// answer at all.
const earlyAnswerWait = time.Second

// answer reads the answer's headers on c within wait, skipping informational answers.
func (u *Upstream) answer(c *upConn, req *http.Request, wait time.Duration) (*http.Response, error) {
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	// One bound for the answer's headers and any informational answers before them, as
	// http.Transport has: a run of 1xx answers must not read on without end.
	c.limit = c.read + int64(c.br.Buffered()) + maxResponseHeader
	defer func() { c.limit = 0 }() // the body is not bounded
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			resp.Body.Close()
			return nil, errors.New("gateway: Clear switched protocols, which the gateway never asks for")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // informational: the answer follows
		}
		// The body has its own time, from now.
		if err := c.SetReadDeadline(time.Now().Add(u.Timeout)); err != nil {
			resp.Body.Close()
			return nil, err
		}
		return resp, nil
	}
}

// writeRequest writes req in HTTP/1.1 origin form: the request line, Host, req's headers as
// given (the gateway has already removed what must not pass), and the body, its length known
// or chunked.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	uri := req.URL.RequestURI()
	if bad(req.Method) || bad(host) || bad(uri) || badHeader(req.Header) {
		return errHeaderValue
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			continue // written from the request's fields
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue // "no User-Agent", as httputil.ReverseProxy marks it
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	if err := writeBody(w, req); err != nil {
		return err
	}
	return w.Flush()
}

// badHeader reports whether a header name or value of h is not one the gateway's server would
// take (isToken, validValue): one that could split the request never leaves.
func badHeader(h http.Header) bool {
	for k, vs := range h {
		if !isToken(k) {
			return true
		}
		for _, v := range vs {
			if !validValue(v) {
				return true
			}
		}
	}
	return false
}

// writeBody ends the header block with the body's framing, and writes the body.
func writeBody(w *bufio.Writer, req *http.Request) error {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	defer closeBody(req)
	switch {
	case body == nil && req.ContentLength <= 0:
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			w.WriteString("Content-Length: 0\r\n")
		}
		w.WriteString("\r\n")
		return nil
	case body == nil:
		return errors.New("gateway: a request with a length but no body")
	case req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n\r\n")
		n, err := io.Copy(w, io.LimitReader(body, req.ContentLength))
		if err == nil && n < req.ContentLength {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(cw, body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	w.WriteString("\r\n")
	return nil
}

// bad reports whether s holds a byte that would end a line or the header block.
func bad(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// rewindable reports whether req's body can be had again for a second delivery.
func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func rewind(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil {
		return req, nil
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	out := *req
	out.Body = b
	return &out, nil
}

// release returns c to h's idle connections, or closes it.
func (u *Upstream) release(h *upHost, c *upConn, stop func() bool, reuse bool) {
	if !stop() {
		reuse = false // the caller went away meanwhile: c's deadline is in the past
	}
	if !reuse || c.br.Buffered() > 0 {
		c.Close()
		return
	}
	c.used = time.Now()
	u.mu.Lock()
	stale := h.expired(c.used, u.Idle)
	full := len(h.idle) >= u.MaxIdle
	if !full {
		h.idle = append(h.idle, c)
	}
	u.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
	if full {
		c.Close()
	}
}

// expired takes the idle connections unused for idle out of h, for the caller to close:
// after a burst, the connections it opened do not stay open until the next burst. They are the
// first ones, since connections are put back at the end.
func (h *upHost) expired(now time.Time, idle time.Duration) []*upConn {
	n := 0
	for n < len(h.idle) && now.Sub(h.idle[n].used) >= idle {
		n++
	}
	if n == 0 {
		return nil
	}
	stale := append([]*upConn(nil), h.idle[:n]...)
	rest := copy(h.idle, h.idle[n:])
	clear(h.idle[rest:])
	h.idle = h.idle[:rest]
	return stale
}

// CloseIdleConnections closes the connections not in use.
func (u *Upstream) CloseIdleConnections() {
	u.init()
	u.mu.Lock()
	var idle []*upConn
	for _, h := range u.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	u.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	u.fallback.CloseIdleConnections()
}

// upBody is an answer's body: read to its end, its connection goes back to the pool; closed
// before, the connection is closed, since the rest of the answer is still on it.
type upBody struct {
	body  io.ReadCloser
	u     *Upstream
	h     *upHost
	c     *upConn
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("gateway: read of a closed body")
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *upBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	if !b.eof {
		b.stop()
		b.c.Close()
		return nil
	}
	b.u.release(b.h, b.c, b.stop, b.reuse)
	return nil
}
