package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the gateway's port: HTTP/1.1 and 1.0, one request at a time on each connection.
//
// net/http's server is general: for every request it starts a goroutine that reads ahead on the
// connection (to notice a caller going away), builds a response with its own buffers and writer
// chain, and sets deadlines and a context around it all. On a gateway, where each request is a
// round trip to Clear and nothing more, that machinery cost as much CPU as the gateway's own work
// (BENCHMARKS.md 9). Server keeps what matters for a port an ERP reaches: requests are parsed by
// net/http's own parser (http.ReadRequest), headers are bounded in size and time, bodies in time,
// idle connections are closed, a panic ends only its connection, and Shutdown lets requests in
// flight finish. It does not speak HTTP/2 (TLS is offered with http/1.1 only) and does not notice
// a caller that goes away while its request waits; the gateway's waits are bounded instead.
type Server struct {
	Handler http.Handler
	Limits  Limits

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*serverConn]struct{}
	closing atomic.Bool
	ctx     context.Context
	cancel  context.CancelFunc
}

// NewServer returns the gateway's server for h with l's limits.
func NewServer(h http.Handler, l Limits) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{Handler: h, Limits: l, conns: map[*serverConn]struct{}{},
		ctx: ctx, cancel: cancel}
}

// Serve accepts connections on ln until Shutdown or Close; it then returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of descriptors, say: wait and try again rather than give up the port.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &serverConn{s: s, nc: nc}
		if !s.track(c) {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) track(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, and waits for the requests in flight to
// finish, or for ctx; then it closes what is left and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.cancel()
	return nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Swap(true) {
		return
	}
	if s.ln != nil {
		s.ln.Close()
	}
}

// closeIdle closes the connections waiting for a request, and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// serverConn is one caller's connection.
type serverConn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remain int64 // bytes the request's headers may still take; <0 while a body is read
	head   head  // the lines of the head being read
	idle   atomic.Bool
	tls    *tls.ConnectionState
	remote string
	w      *responseWriter
	// first is the first byte of a request that arrived while the connection held no reader
	// (idle, handed off); pending until the reader has read it.
	first   [1]byte
	pending bool
}

// errHeaderLimit ends a request whose headers exceed Limits.MaxHeaderBytes.
var errHeaderLimit = errors.New("gateway: request headers too large")

func (c *serverConn) Read(p []byte) (int, error) {
	if c.remain == 0 || c.head.lines > c.s.Limits.MaxHeaderLines+1 {
		return 0, errHeaderLimit
	}
	if c.remain > 0 && int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	var n int
	var err error
	if c.pending && len(p) > 0 {
		p[0], c.pending, n = c.first[0], false, 1
	} else {
		n, err = c.nc.Read(p)
	}
	if c.remain > 0 {
		// Past the limit's line the bytes are not given to the parser, which would hold each
		// line it reads: the next read refuses, and the connection ends.
		n = c.head.count(p[:n], c.s.Limits.MaxHeaderLines+1)
		c.remain -= int64(n)
	}
	return n, err
}

// head counts the lines of a request head as they are read, up to the blank line that ends it:
// the lines of a body read ahead with it are not the head's.
type head struct {
	lines int  // lines ended so far, the request line included
	cr    bool // the line under way is "\r" so far, which ends the head as an empty line does
	part  bool // the line under way has begun
	done  bool // the blank line was read
}

// count counts b's lines and returns how much of b is within max lines: all of it, or up to the
// end of the line past max.
func (h *head) count(b []byte, max int) int {
	n := 0
	for !h.done && n < len(b) {
		rest := b[n:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			h.cr = !h.part && len(rest) == 1 && rest[0] == '\r'
			h.part = true
			break
		}
		// The line is what came before (h.part) and rest[:i]: empty, or "\r" alone, ends the
		// head (bufio.Reader.ReadLine's rule, which net/http's parser follows).
		empty := !h.part && (i == 0 || i == 1 && rest[0] == '\r') || h.part && h.cr && i == 0
		n += i + 1
		if empty && h.lines > 0 {
			h.done = true
			break
		}
		h.lines++
		h.part, h.cr = false, false
		if h.lines > max {
			return n
		}
	}
	return len(b)
}

func (c *serverConn) serve() {
	if !c.open() {
		c.close()
		return
	}
	c.run(time.Time{}, false)
}

// open starts the connection: its TLS handshake, if any, and its reader.
func (c *serverConn) open() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if tc, isTLS := c.nc.(*tls.Conn); isTLS {
		_ = tc.SetDeadline(time.Now().Add(c.s.Limits.ReadHeader))
		if err := tc.HandshakeContext(c.s.ctx); err != nil {
			// Plain HTTP on the TLS port: say so, as net/http's server does, rather than close
			// without a word.
			var re tls.RecordHeaderError
			if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader[:]) {
				_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			}
			return false
		}
		cs := tc.ConnectionState()
		c.tls = &cs
	}
	c.remote = c.nc.RemoteAddr().String()
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c)
	return true
}

// looksLikeHTTP reports whether a TLS record header is the start of a plain HTTP request.
func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH"} {
		if string(hdr) == m {
			return true
		}
	}
	return false
}

// close ends the connection. Its reader is not given back for another to use: a request that
// ended the connection may have left its body half read by a goroutine of the handler's, which
// would read from another connection's reader.
func (c *serverConn) close() {
	c.nc.Close()
	c.s.untrack(c)
}

// run serves the connection's requests, the first at once when idleUntil is zero, else the next
// one to arrive before idleUntil. A connection idle for Limits.IdleHandoff goes on waiting on a new
// goroutine (handed, so that it does not hand off again), and this one ends: the stack its requests
// grew is given back. The goroutine that ends the connection closes it.
func (c *serverConn) run(idleUntil time.Time, handed bool) {
	open := false // handed on to another goroutine
	defer func() {
		// A panic ends its connection and nothing else; ErrAbortHandler is the handler's way to
		// cut a response short (net/http's convention).
		_ = recover()
		if !open {
			c.close()
		}
	}()
	l := c.s.Limits
	for {
		if !idleUntil.IsZero() {
			switch c.await(idleUntil, handed) {
			case waitEnded:
				return
			case waitHandoff:
				open = true
				go c.run(idleUntil, true)
				return
			}
		}
		// The writer is the connection's only while it answers: an idle keep-alive connection,
		// of which a gateway may hold thousands, does not keep 4 KiB of it.
		c.bw = writers.Get().(*bufio.Writer)
		c.bw.Reset(c.nc)
		ok := c.one(l)
		c.bw.Reset(nil)
		writers.Put(c.bw)
		c.bw = nil
		if c.w != nil {
			// Nor does it keep the request it answered, nor the answer's headers.
			c.w.req = nil
			clear(c.w.header)
		}
		if !ok {
			return
		}
		idleUntil, handed = time.Now().Add(l.Idle), false
	}
}

var (
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
)

// What await saw.
type wait int

const (
	waitReady   wait = iota // the next request has begun
	waitEnded               // the connection is idle past its limit, closed, or the server is stopping
	waitHandoff             // idle for Limits.IdleHandoff: the wait goes on on a new goroutine
)

// await waits until idleUntil for the next request's first byte, as an idle connection that
// Shutdown may close; for Limits.IdleHandoff at most, unless handed. A handed connection waits
// without its reader (bare).
func (c *serverConn) await(idleUntil time.Time, handed bool) wait {
	if c.br.Buffered() > 0 {
		return waitReady
	}
	c.idle.Store(true)
	defer c.idle.Store(false)
	if c.s.closing.Load() {
		return waitEnded
	}
	c.remain = -1
	deadline, handoff := idleUntil, false
	if h := time.Now().Add(c.s.Limits.IdleHandoff); !handed && c.s.Limits.IdleHandoff > 0 && h.Before(idleUntil) {
		deadline, handoff = h, true
	}
	_ = c.nc.SetReadDeadline(deadline)
	var err error
	if handed {
		err = c.bare()
	} else {
		_, err = c.br.Peek(1)
	}
	var ne net.Error
	switch {
	case c.s.closing.Load():
		return waitEnded
	case err == nil:
		return waitReady
	case handoff && errors.As(err, &ne) && ne.Timeout():
		// The read timed out with nothing read: the connection and the reader are as they were.
		return waitHandoff
	}
	return waitEnded
}

// bare waits for the next request's first byte without the connection's reader, which it gives
// back meanwhile: of an idle connection's memory, its 4 KiB were the most after its stack. The
// reader is taken again, the byte pending in front of it, when the request begins. It is safe to
// share: the request before has been read to its end (one's drained), and await has made sure the
// reader held nothing past it.
func (c *serverConn) bare() error {
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
	n, err := c.nc.Read(c.first[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	c.pending = true
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c)
	return nil
}

// one serves one request, and reports whether the connection may carry another.
func (c *serverConn) one(l Limits) bool {
	start := time.Now()
	_ = c.nc.SetReadDeadline(start.Add(l.ReadHeader))
	// The bufio reader may read ahead by its size; the bound is on what the headers take. What it
	// holds already (read while the connection waited, or after the request before) counts.
	c.remain = int64(l.MaxHeaderBytes) + int64(c.br.Size()-c.br.Buffered())
	c.head = head{}
	ahead, _ := c.br.Peek(c.br.Buffered())
	c.head.count(ahead, l.MaxHeaderLines+1)
	req, err := http.ReadRequest(c.br)
	c.remain = -1
	if err == nil && c.head.lines > l.MaxHeaderLines+1 {
		err = errHeaderLimit // read whole before a read past the limit, as one or pipelined
	}
	if err != nil {
		c.refuse(err)
		return false
	}
	if code := check(req); code != 0 {
		c.answerPlain(code)
		return false
	}
	// The request's context is Background: the gateway's waits are bounded by its own limits,
	// and a caller that leaves is noticed when its answer cannot be written.
	req.RemoteAddr, req.TLS = c.remote, c.tls
	_ = c.nc.SetReadDeadline(start.Add(l.Read))
	_ = c.nc.SetWriteDeadline(time.Now().Add(l.Write))
	w := c.writer(req)
	var cont *continueReader
	if expectsContinue(req) {
		cont = &continueReader{r: req.Body, w: w}
		req.Body = cont
	}
	c.s.Handler.ServeHTTP(w, req)
	if !w.finish() {
		return false
	}
	if cont != nil && !cont.sent {
		// The caller still holds its body back, waiting for a 100 Continue that will not come.
		return false
	}
	return !w.closeAfter && !c.s.closing.Load() && drained(req.Body)
}

// writer returns the connection's response writer, reset for req: one per connection, since
// a connection answers one request at a time.
func (c *serverConn) writer(req *http.Request) *responseWriter {
	w := c.w
	if w == nil {
		w = &responseWriter{c: c, header: make(http.Header, 8)}
		c.w = w
	}
	h := w.header
	clear(h)
	*w = responseWriter{c: c, req: req, header: h}
	return w
}

// check returns the status that refuses req before any handler sees it, or 0: what net/http's
// server refuses too.
func check(req *http.Request) int {
	switch {
	case req.ProtoMajor != 1:
		return http.StatusHTTPVersionNotSupported
	case req.ProtoMinor >= 1 && req.Host == "":
		// http.ReadRequest has taken the Host header out (into req.Host). Its value never
		// chooses anything here: every request goes to its client's base URL.
		return http.StatusBadRequest
	case req.Header.Get("Expect") != "" && !expectsContinue(req):
		return http.StatusExpectationFailed
	}
	for k, vs := range req.Header {
		if !isToken(k) {
			return http.StatusBadRequest
		}
		for _, v := range vs {
			if !validValue(v) {
				return http.StatusBadRequest
			}
		}
	}
	return 0
}

func expectsContinue(req *http.Request) bool {
	return req.ProtoAtLeast(1, 1) && strings.EqualFold(req.Header.Get("Expect"), "100-continue")
}

// refuse answers a request that could not be read, when there is anyone to tell.
func (c *serverConn) refuse(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne) && ne.Timeout(),
		errors.Is(err, net.ErrClosed):
		return // the caller left, or never finished its headers in time
	case errors.Is(err, errHeaderLimit):
		c.answerPlain(http.StatusRequestHeaderFieldsTooLarge)
	default:
		c.answerPlain(http.StatusBadRequest)
	}
}

// answerPlain writes a bare answer and the end of the connection.
func (c *serverConn) answerPlain(code int) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	text := strconv.Itoa(code) + " " + http.StatusText(code)
	c.bw.WriteString("HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(text)) + "\r\n\r\n" + text)
	_ = c.bw.Flush()
}

// drained reports whether the request's body was read to its end, reading what is left of a
// small one: its bytes stand between this request and the next on the connection.
func drained(body io.ReadCloser) bool {
	if body == nil || body == http.NoBody {
		return true
	}
	n, err := io.CopyN(io.Discard, body, 256<<10)
	return err == io.EOF || (err == nil && n == 0)
}

// continueReader sends "100 Continue" when the handler first reads a body the caller holds back
// until asked.
type continueReader struct {
	r    io.ReadCloser
	w    *responseWriter
	sent bool
}

func (r *continueReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		if !r.w.wroteHeader {
			r.w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := r.w.c.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return r.r.Read(p)
}

func (r *continueReader) Close() error { return r.r.Close() }

// responseWriter writes one answer: Content-Length when the handler set it, else chunked (or, for
// HTTP/1.0, up to the connection's end).
type responseWriter struct {
	c           *serverConn
	req         *http.Request
	header      http.Header
	wroteHeader bool
	status      int
	length      int64 // declared Content-Length; -1 when none
	written     int64
	chunked     bool
	noBody      bool
	closeAfter  bool
	failed      bool
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader || code < 200 || code > 999 {
		return // informational answers are not sent (the gateway sends none)
	}
	w.wroteHeader, w.status = true, code
	w.frame(code)
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
	if _, ok := w.header["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	for k, vs := range w.header {
		if k == "Transfer-Encoding" || k == "Connection" || strings.HasPrefix(k, http.TrailerPrefix) || !isToken(k) {
			continue
		}
		for _, v := range vs {
			if validValue(v) {
				bw.WriteString(k)
				bw.WriteString(": ")
				bw.WriteString(v)
				bw.WriteString("\r\n")
			}
		}
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// frame decides how the answer's body is delimited: by the Content-Length the handler set, by
// chunks, or (HTTP/1.0, length unknown) by the connection's end; and whether the connection
// closes after it.
func (w *responseWriter) frame(code int) {
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	w.length = -1
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.length = n
		} else {
			w.header.Del("Content-Length")
		}
	}
	w.closeAfter = w.req.Close || w.c.s.closing.Load() || !w.req.ProtoAtLeast(1, 1)
	switch {
	case w.noBody:
		if code == http.StatusNoContent {
			w.header.Del("Content-Length")
		}
	case w.length < 0 && w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	case w.length < 0:
		w.closeAfter = true // an HTTP/1.0 body of unknown length ends with the connection
	}
}

// errTooLong refuses bytes beyond the declared Content-Length.
var errTooLong = errors.New("gateway: more body than the declared Content-Length")

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		w.closeAfter = true
		n, _ := w.Write(p[:w.length-w.written])
		return n, errTooLong
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.failed = true
	}
	return n, err
}

// Flush sends what is buffered: the headers, at least.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.c.bw.Flush(); err != nil {
		w.failed = true
	}
}

// finish ends the answer (the chunked body's last chunk and trailers) and sends it; it reports
// whether the connection is still usable.
func (w *responseWriter) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vs := range w.header {
			name, ok := strings.CutPrefix(k, http.TrailerPrefix)
			if !ok || !isToken(name) {
				continue
			}
			for _, v := range vs {
				if validValue(v) {
					bw.WriteString(name + ": " + v + "\r\n")
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if w.length >= 0 && !w.noBody && w.written < w.length {
		// The body fell short of what was declared: the caller would wait for the rest.
		w.closeAfter = true
	}
	if err := bw.Flush(); err != nil {
		return false
	}
	return !w.failed
}

// httpDate is the Date header, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &cachedDate{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	unix int64
	text string
}

var dateCache atomic.Pointer[cachedDate]

// isToken reports whether s is an RFC 9110 token, what a header's name must be; textproto lets
// some others through, and net/http's server refuses them after it, as this one does. It is the
// gateway's one rule for a header's name, both ways (validValue for its value).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether a header's value holds no control character but tab.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
