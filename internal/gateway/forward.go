package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/apicall"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// The gateway forwards each request itself rather than through httputil.ReverseProxy: it needs
// one target, one header rule and a 401 it can hold back, and the general proxy's hooks, context
// values and header clones around them were a large part of its cost per request
// (BENCHMARKS.md 9). What ReverseProxy does for correctness, it does too: hop-by-hop headers
// (and those a Connection header names) are dropped both ways, trailers pass, an answer of
// unknown length is flushed as it comes, and a body broken half-way aborts the caller's
// response instead of ending it as if complete.

// send runs one attempt with body b: the request to Clear, then Clear's answer to w, unless it is
// a 401 held back for a replay (a.refused).
func (g *Gateway) send(w http.ResponseWriter, r *http.Request, a *attempt, b body) {
	out := g.outbound(r, a, b)
	g.refusals.number(a)
	begin := time.Now()
	resp, err := g.upstream.RoundTrip(out)
	a.route.m.upstreamTook(time.Since(begin))
	if err != nil {
		g.upstreamError(w, r, a, err)
		return
	}
	if g.held(resp, a) {
		return
	}
	g.copyResponse(w, resp, a)
}

// outbound is the request to Clear: always to the client's base URL, whatever the caller's
// target, Host or forwarding headers said, with the gateway's token as the only token.
func (g *Gateway) outbound(r *http.Request, a *attempt, b body) *http.Request {
	t := a.route.target
	u := &url.URL{Scheme: t.Scheme, Host: t.Host, RawQuery: r.URL.RawQuery}
	u.Path, u.RawPath = joinPath(t, r.URL)
	out := r.WithContext(r.Context()) // a shallow copy: one allocation, the caller's context
	out.URL, out.Host, out.RequestURI = u, t.Host, ""
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Header, out.Trailer, out.TransferEncoding, out.Close = outHeader(r.Header, a), nil, nil, false
	out.GetBody = nil
	switch {
	case b.stream != nil:
		out.Body, out.ContentLength = io.NopCloser(b.stream), -1
		if r.ContentLength > 0 {
			out.ContentLength = r.ContentLength
		}
	case b.whole != nil:
		// A reader of its own for each attempt: the first attempt's body may still be in use when
		// Clear's 401 arrives, so a replay must not share it.
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b.whole)), int64(len(b.whole))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.whole)), nil }
	default:
		out.Body = http.NoBody
	}
	return out
}

// joinPath puts the caller's path under the base URL's, with one slash between them, keeping an
// escaped form when either has one.
func joinPath(base, in *url.URL) (path, rawPath string) {
	if base.RawPath == "" && in.RawPath == "" {
		return joinSlash(base.Path, in.Path), ""
	}
	ep := joinSlash(base.EscapedPath(), in.EscapedPath())
	p, err := url.PathUnescape(ep)
	if err != nil {
		return joinSlash(base.Path, in.Path), ""
	}
	return p, ep
}

func joinSlash(a, b string) string {
	switch as, bs := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/"); {
	case as && bs:
		return a + b[1:]
	case !as && !bs && b != "":
		return a + "/" + b
	}
	return a + b
}

// hopHeaders concern one connection, not the request: they are never passed on, either way.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// isHop reports whether the canonical header k is hop-by-hop, or named by the message's
// Connection headers (named).
func isHop(k string, named hops) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return named.has(k)
}

// hops are the headers a message's Connection headers name, read once per message: read again for
// each header, a Connection header of thousands of names made a message's cost quadratic in its
// size (two seconds of CPU for a request head under 64 KiB).
type hops struct {
	few  []string
	many map[string]struct{} // past a few names, looked up at a constant cost
}

// connectionNames reads the Connection header values vs, canonical.
func connectionNames(vs []string) hops {
	var h hops
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			if f == "" || strings.EqualFold(f, "close") || strings.EqualFold(f, "keep-alive") {
				continue // the usual values: no header, or one hop-by-hop already
			}
			k := textproto.CanonicalMIMEHeaderKey(f)
			switch {
			case h.many != nil:
				h.many[k] = struct{}{}
			case len(h.few) < 8:
				h.few = append(h.few, k)
			default:
				h.many = make(map[string]struct{}, 2*len(h.few))
				for _, n := range append(h.few, k) {
					h.many[n] = struct{}{}
				}
				h.few = nil
			}
		}
	}
	return h
}

func (h hops) has(k string) bool {
	if h.many != nil {
		_, ok := h.many[k]
		return ok
	}
	for _, n := range h.few {
		if n == k {
			return true
		}
	}
	return false
}

// outHeader is in without hop-by-hop headers, the gateway's own, any token, forwarding headers
// and Expect (the body follows at once), with the attempt's token.
func outHeader(in http.Header, a *attempt) http.Header {
	named := connectionNames(in["Connection"])
	h := make(http.Header, len(in)+1)
	for k, v := range in {
		if k == "Expect" || isHop(k, named) || dropped(k) {
			continue
		}
		h[k] = v // the caller's slices: neither side changes them
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // none, rather than Go's own
	}
	h[a.route.header] = []string{a.tok.Value.Reveal()}
	return h
}

func dropped(k string) bool {
	for _, d := range droppedHeaders {
		if k == d {
			return true
		}
	}
	return false
}

// held holds back a 401 that may be replayed, and notes which tokens Clear accepted. It reports
// whether it held resp back (its body then read and closed).
func (g *Gateway) held(resp *http.Response, a *attempt) bool {
	switch {
	case resp.StatusCode != http.StatusUnauthorized:
		if apicall.TokenAccepted(resp.StatusCode) {
			g.refusals.accepted(a)
		}
		return false
	}
	// A call Clear refuses whatever the token says nothing about the token: its 401 is passed on
	// at once, never judged.
	call := g.refusals.refusedCall(a)
	if !a.intercept {
		// A 401 that will not be replayed still says something about the token.
		passedOn(a, call)
		if !call {
			g.refusals.refused(a)
		}
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody+1))
	if err != nil || len(body) > maxRefusalBody {
		// Too large (or broken) to keep: pass it through as it comes.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		passedOn(a, call)
		if !call {
			g.refusals.refused(a)
		}
		return false
	}
	resp.Body.Close()
	a.refused, a.refusedCode, a.refusedHdr, a.refusedBody = true, resp.StatusCode, resp.Header, body
	a.refusedCall = call
	return true
}

// passedOn counts a 401 of attempt a that goes to the caller as it comes: a call's, a replay's, or
// one that could not be replayed.
func passedOn(a *attempt, call bool) {
	switch {
	case call:
		countPassed(a, passCall)
	case a.replayOf != "":
		countPassed(a, passReplayRefused)
	default:
		countPassed(a, passNotReplayable)
	}
}

// countPassed counts a 401 that reached a caller; a probe's reached none.
func countPassed(a *attempt, why passReason) {
	if !a.probe {
		a.route.m.passedOn(why)
	}
}

// passes reports whether the answer's header k (canonical) with values vs reaches the caller of
// attempt a: not hop-by-hop (nor named by the answer's Connection headers, named), and not showing the
// token a carried, by its name (a token header) or in its value (a header that echoes the
// request's). The caller holds no token by design, and is never shown one.
func passes(k string, vs []string, named hops, a *attempt) bool {
	if isHop(k, named) || k == a.route.header {
		return false
	}
	for _, t := range tokenHeaders {
		if k == t {
			return false
		}
	}
	tok := a.tok.Value.Reveal()
	for _, v := range vs {
		if tok != "" && strings.Contains(v, tok) {
			return false
		}
	}
	return true
}

// copyResponse passes Clear's answer to a's caller: status, end-to-end headers, body, trailers.
func (g *Gateway) copyResponse(w http.ResponseWriter, resp *http.Response, a *attempt) {
	defer resp.Body.Close()
	h := w.Header()
	named := connectionNames(resp.Header["Connection"])
	for k, v := range resp.Header {
		if passes(k, v, named, a) {
			h[k] = v
		}
	}
	var body io.Reader = resp.Body
	if tok := a.tok.Value.Reveal(); resp.StatusCode >= 400 && tok != "" && a.method != http.MethodHead {
		body = blanked(h, resp.Body, []byte(tok))
	}
	w.WriteHeader(resp.StatusCode)
	buf := bufferPool.Get()
	defer bufferPool.Put(buf)
	// An answer of unknown length may be a stream whose parts the caller wants as they come.
	flush := resp.ContentLength < 0
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the caller went away; closing the body closes the connection to Clear
			}
			if f, ok := w.(http.Flusher); ok && flush {
				f.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			g.log.Warn("gateway: Clear's answer broke off", "client", a.route.Name, "error", a.told(rerr))
			// The status and part of the body are out: abort the caller's response, so that it
			// cannot pass for a complete one.
			panic(http.ErrAbortHandler)
		}
	}
	for k, v := range resp.Trailer {
		if passes(k, v, named, a) {
			h[http.TrailerPrefix+k] = v
		}
	}
}

// blanked returns an error answer's body with the token tok blanked (secret.Marker), as passRefusal
// does for a 401 held: any error answer may quote the token its call carried (Clear's message
// naming the token it refused, a replay's 401 naming the newer token, which Clear may still accept
// for other calls). A body of at most maxRefusalBody is read whole and its Content-Length set
// (h); a larger one is blanked as it streams, and its length, which blanking changes, left out.
// Error answers are rare and small, so this costs the calls that succeed nothing.
func blanked(h http.Header, r io.Reader, tok []byte) io.Reader {
	head, err := io.ReadAll(io.LimitReader(r, maxRefusalBody+1))
	if err == nil && len(head) <= maxRefusalBody {
		whole := bytes.ReplaceAll(head, tok, []byte(secret.Marker))
		h.Set("Content-Length", strconv.Itoa(len(whole)))
		return bytes.NewReader(whole)
	}
	h.Del("Content-Length")
	// A read error comes again from r, after head: copyResponse aborts the answer then.
	return &blanking{r: io.MultiReader(bytes.NewReader(head), r), tok: tok}
}

// blanking reads r with every occurrence of tok replaced by secret.Marker, one spanning two reads
// too: the last len(tok)-1 bytes read are held back until the next read says whether they start it.
type blanking struct {
	r        io.Reader
	tok      []byte
	in, out  []byte
	eof      bool
	deferred error
}

func (b *blanking) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		switch {
		case b.deferred != nil:
			return 0, b.deferred
		case b.eof && len(b.in) == 0:
			return 0, io.EOF
		}
		if !b.eof {
			chunk := make([]byte, 32<<10)
			n, err := b.r.Read(chunk)
			b.in = append(b.in, chunk[:n]...)
			switch {
			case err == io.EOF:
				b.eof = true
			case err != nil:
				b.deferred = err
			}
		}
		var out []byte
		i := 0
		for {
			j := bytes.Index(b.in[i:], b.tok)
			if j < 0 {
				break
			}
			out = append(append(out, b.in[i:i+j]...), secret.Marker...)
			i += j + len(b.tok)
		}
		rest := b.in[i:]
		switch keep := len(b.tok) - 1; {
		case b.eof:
			out, rest = append(out, rest...), nil
		case b.deferred != nil:
			rest = nil // the answer is aborted; what is held back may start the token
		case len(rest) > keep:
			out, rest = append(out, rest[:len(rest)-keep]...), rest[len(rest)-keep:]
		}
		b.in, b.out = append([]byte(nil), rest...), out
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// told is err's text for a log: printable, and without the token a carried, which an error
// reading Clear's answer may quote (a header line Go could not parse, echoing the request's).
func (a *attempt) told(err error) string {
	return clear.Sanitize(secret.Redact(err.Error(), a.tok.Value.Reveal()))
}

// upstreamError answers a failure to reach Clear in Clear's error shape.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, a *attempt, err error) {
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	if r.Context().Err() != nil && !errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		// The caller went away; nobody reads the answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	g.log.Warn("gateway: Clear could not be reached", "client", a.route.Name, "timeout", timeout, "error", a.told(err))
	if timeout {
		answer(w, http.StatusGatewayTimeout, CodeTimeout, "Clear did not answer in time.", 0)
		return
	}
	answer(w, http.StatusBadGateway, CodeUnreachable, "Clear could not be reached.", 0)
}
