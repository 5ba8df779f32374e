// Package gateway is the Clear gateway: an http.Handler that forwards an ERP's calls to Clear with
// the live token in them, so that the ERP holds no token at all. It forwards each request itself
// (forward.go: hop-by-hop headers stripped, bodies and trailers streamed) over its own HTTP/1.1
// transport (upstream.go), and adds what a credential-injecting proxy usually lacks:
//
//   - one replay after a 401 from Clear, with a newer token and the same bytes, only for a body
//     buffered whole (Options.ReplayLimit); no other status is ever retried;
//   - no expired token is ever sent: with no live token the caller gets 503 and Retry-After;
//   - a token Clear accepted, then refused while it is still AWSCURRENT and unexpired, is judged
//     revoked outside the rotator, reported, and (where the gateway has the rotator's rights)
//     healed with one forced rotation between all gateways and daemons (see refusals.go);
//   - a call Clear refuses again when replayed with a newer token is refused whatever the token
//     (a product the API client lacks): its later 401s are passed on at once, never judged.
//
// It is never an open proxy: every request goes to its client's CLEAR_BASE_URL, whatever its
// target, Host or X-Forwarded-Host says, and below its path: absolute-form targets, CONNECT and
// dot segments are refused; redirects are passed back, not followed. TRACE and TRACK are refused
// too: Clear's echo would carry the token. Nor does it forward a call to Clear's token API, or the
// ERP's client secret: a token issued through it would revoke the one it sends.
package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// Defaults of Options.
const (
	DefaultReplayLimit = 1 << 20
	// DefaultBodyBudget bounds the request bodies buffered at once (Options.BodyBudget): 64 of
	// the default replay limit, a quarter of the 256 MiB the Kubernetes manifests give a
	// gateway, where MaxConns times the replay limit would be 16 GiB.
	DefaultBodyBudget      = 64 << 20
	DefaultHold            = 10 * time.Second
	DefaultUpstreamTimeout = 120 * time.Second
	// DefaultRevokeGrace is how long a refused token must stay AWSCURRENT before it is judged
	// revoked: longer than a rotator takes to store the token Clear has just issued (Clear
	// revokes the old one first), short enough that a heal fits in DefaultHold.
	DefaultRevokeGrace = 5 * time.Second
	// noTokenRetryAfter is the Retry-After of a 503 for want of a live token, in seconds.
	noTokenRetryAfter = 5
	// maxRefusalBody bounds the 401 body kept while the gateway decides whether to replay.
	maxRefusalBody = 64 << 10
)

// tokenHeaders are the headers a token may travel in, in canonical form; an ERP's own value of
// any of them is removed, so that only the gateway's token reaches Clear, and so is Clear's, so
// that no answer shows the caller a token.
var tokenHeaders = []string{http.CanonicalHeaderKey(clear.HeaderAuthToken), "X-Clear-Auth-Token"}

// droppedHeaders are removed from every request before it goes to Clear, in canonical form (as
// net/http stores them), so that removing them costs no canonicalisation per request: the
// gateway's own headers, any token or client secret the ERP sent, and forwarding headers that
// would name the caller or another host to Clear.
var droppedHeaders = func() []string {
	hs := append([]string{HeaderKey, HeaderClient, clear.HeaderClientSecret, "Forwarded", "X-Forwarded-Host",
		"X-Forwarded-For", "X-Forwarded-Proto"}, tokenHeaders...)
	for i, h := range hs {
		hs[i] = http.CanonicalHeaderKey(h)
	}
	return hs
}()

// bufferPool is the pool of 32 KiB buffers that answers are copied through.
var bufferPool = &copyBuffers{}

type copyBuffers struct{ p sync.Pool }

func (c *copyBuffers) Get() []byte {
	if b, ok := c.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (c *copyBuffers) Put(b []byte) {
	if cap(b) != 32<<10 {
		return
	}
	b = b[:cap(b)]
	c.p.Put(&b)
}

// Client is one configured Clear client the gateway serves.
type Client struct {
	Name    string
	BaseURL string
	// Header is the header the token goes in; "" means x-cleartax-auth-token.
	Header string
	Source Source
	// Confirm, when set, reads AWSCURRENT's version from Secrets Manager now; the revocation
	// judgement uses it so as not to take a token the source has not yet replaced for a revoked
	// one. Nil trusts the source.
	Confirm func(ctx context.Context) (string, error)
	// Heal, when set, asks for a forced rotation after version was found revoked outside; nil
	// (no rotator's rights) reports only.
	Heal func(ctx context.Context, version string)
	// ProbePath, when set, is the GET below BaseURL that Probe sends (config.Client.ProbePath).
	ProbePath string
}

// Options configures a Gateway.
type Options struct {
	Clients []Client
	// Keys, when it holds a key, makes x-clear-rotator-key required.
	Keys *Keys
	// ReplayLimit is the largest body buffered for a replay; zero means DefaultReplayLimit.
	ReplayLimit int64
	// BodyBudget bounds the bytes of request bodies buffered for a replay at once, across all
	// requests: a body that does not fit in what is left of it is streamed, as one over
	// ReplayLimit is. Zero means DefaultBodyBudget, or ReplayLimit if that is larger. A gateway
	// that Continues another shares its budget (its bodies may still be in flight).
	BodyBudget int64
	// Hold bounds the wait for a (newer) token; zero means DefaultHold.
	Hold time.Duration
	// UpstreamTimeout bounds the wait for Clear's response headers; zero means
	// DefaultUpstreamTimeout.
	UpstreamTimeout time.Duration
	// RevokeGrace is how long after a 401 a token must stay AWSCURRENT before it is judged
	// revoked; zero means DefaultRevokeGrace.
	RevokeGrace time.Duration
	// Transport reaches Clear; nil means NewTransport(UpstreamTimeout, MaxConns).
	Transport http.RoundTripper
	// MaxConns is the most connections callers hold open at once (Limits.MaxConns); it sizes the
	// upstream keep-alive pool. Zero means DefaultLimits.MaxConns.
	MaxConns int
	Log      *slog.Logger
	// AccessLog takes the access log's lines (a line per request, at info level); nil means Log.
	// Give it a logger on a BatchWriter, so that no request waits for a write system call.
	AccessLog *slog.Logger
	// AccessJSON, when set, is AccessLog's writer, and AccessLog writes JSON as logging.New
	// does: the gateway then encodes the lines itself (appendAccessJSON), a line of the same
	// bytes at a fraction of the cost.
	AccessJSON io.Writer
	// Continues is the gateway this one replaces (a reload): the counters of the clients both serve
	// carry on.
	Continues *Gateway
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type route struct {
	Client
	target *url.URL
	header string
	m      *clientMetrics // resolved once: the request path looks nothing up
}

// Gateway is the handler. Build it with New.
type Gateway struct {
	o        Options
	routes   map[string]*route
	names    []string // the clients', in configuration order
	only     *route   // the only client, when there is one
	upstream http.RoundTripper
	metrics  *metrics
	bodies   *budget // shared with the gateway this one Continues
	refusals *refusals
	log      *slog.Logger
	access   *slog.Logger
}

// New builds a gateway for o's clients.
func New(o Options) (*Gateway, error) {
	if len(o.Clients) == 0 {
		return nil, errors.New("gateway: no clients")
	}
	if o.ReplayLimit <= 0 {
		o.ReplayLimit = DefaultReplayLimit
	}
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if o.RevokeGrace <= 0 {
		o.RevokeGrace = DefaultRevokeGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultLimits.MaxConns
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.AccessLog == nil {
		o.AccessLog = o.Log
	}
	g := &Gateway{o: o, routes: map[string]*route{}, log: o.Log, access: o.AccessLog}
	var names []string
	for _, c := range o.Clients {
		u, err := clear.ParseBaseURL(c.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("gateway: client %q: %w", c.Name, err)
		}
		if c.Source == nil {
			return nil, fmt.Errorf("gateway: client %q has no token source", c.Name)
		}
		if _, dup := g.routes[c.Name]; dup {
			return nil, fmt.Errorf("gateway: client %q is configured twice", c.Name)
		}
		h := c.Header
		if h == "" {
			h = clear.HeaderAuthToken
		}
		r := &route{Client: c, target: u, header: http.CanonicalHeaderKey(h)}
		g.routes[c.Name] = r
		names = append(names, c.Name)
		if len(o.Clients) == 1 {
			g.only = r
		}
	}
	var prev *metrics
	if o.Continues != nil {
		prev = o.Continues.metrics
	}
	g.names = names
	g.metrics = newMetrics(names, prev)
	for _, r := range g.routes {
		r.m = g.metrics.clients[r.Name]
	}
	g.bodies = bodyBudget(o)
	g.refusals = newRefusals(g)
	g.upstream = o.Transport
	if g.upstream == nil {
		g.upstream = NewTransport(o.UpstreamTimeout, o.MaxConns)
	}
	return g, nil
}

// bodyBudget is the budget for o's buffered bodies: the one of the gateway o continues, whose
// requests may still be in flight; else BodyBudget, or DefaultBodyBudget, and at least one body of
// ReplayLimit.
func bodyBudget(o Options) *budget {
	switch {
	case o.Continues != nil:
		return o.Continues.bodies
	case o.BodyBudget > 0:
		return newBudget(max(o.BodyBudget, o.ReplayLimit))
	}
	return newBudget(max(DefaultBodyBudget, o.ReplayLimit))
}

// attempt is one request's state.
type attempt struct {
	route     *route
	tok       Token
	seq       uint64 // its number, in the order attempts are sent (refusals.number)
	intercept bool   // a 401 is held back for a replay
	// method and path (below the base URL) are the call's, path unescaped.
	method, path string
	// replayOf is, for a replay, the version the first attempt was refused with.
	replayOf string
	// probe: the gateway's own probe (Probe), not a caller's request; its refusals reach no ERP.
	probe bool
	// refusedCall is set with refused when Clear refuses the call whatever the token
	// (refusals.refusedCall): its 401 is passed on at once, neither judged nor held.
	refusedCall bool
	// refused is set when a 401 was held back: the response to pass through if no replay
	// happens.
	refused     bool
	refusedCode int
	refusedHdr  http.Header
	refusedBody []byte
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.o.Now()
	rec := &recorder{ResponseWriter: w}
	var (
		rt       *route
		replayed bool
	)
	defer func() {
		name := ""
		// The gateway's own refusals come before a client is picked: with one client they are
		// its requests, as its metric says ("its own answers included").
		if counted := cmp.Or(rt, g.only); counted != nil {
			name = counted.Name
			counted.m.request(rec.code())
		}
		end := g.o.Now()
		g.logAccess(r.Context(), &accessEntry{at: end, method: r.Method, path: r.URL.Path, status: rec.code(),
			took: end.Sub(start), client: name, replayed: replayed})
	}()

	// Only origin-form targets: "GET http://elsewhere/ HTTP/1.1" and CONNECT would make an open
	// proxy of a gateway whose caller expects one.
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		answer(rec, http.StatusBadRequest, CodeBadTarget, "The gateway forwards only origin-form requests (a path) to Clear.", 0)
		return
	}
	// Nor a path that a server resolves above the base URL's path.
	if clear.DotSegment(r.URL.Path) {
		answer(rec, http.StatusBadRequest, CodeBadTarget, "The gateway forwards no path with a \".\" or \"..\" segment.", 0)
		return
	}
	if echoes(r.Method) {
		rec.Header().Set("Allow", allowed)
		answer(rec, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "The gateway does not forward TRACE or TRACK: Clear's echo of the request would carry the gateway's token.", 0)
		return
	}
	if clear.IsTokenAPI(r.URL.Path) {
		answer(rec, http.StatusForbidden, CodeTokenAPI, "The gateway does not forward calls to Clear's token API: a new token would revoke the one the gateway sends for every ERP. The gateway adds the token itself: call Clear's other APIs through it without one.", 0)
		return
	}
	if g.o.Keys.Enabled() {
		presented := r.Header.Get(HeaderKey)
		if !g.o.Keys.Accepts(presented) {
			g.metrics.keyRefused()
			if presented == "" {
				answer(rec, http.StatusUnauthorized, CodeKeyMissing, "The gateway's key is missing: send it in "+HeaderKey+".", 0)
			} else {
				answer(rec, http.StatusForbidden, CodeKeyWrong, "The gateway's key is wrong.", 0)
			}
			return
		}
	}
	rt = g.pick(rec, r)
	if rt == nil {
		return
	}
	replayed = g.forward(rec, r, rt)
}

// allowed is the Allow header of a 405: the methods Clear's APIs use. The gateway forwards any
// other method too, but TRACE, TRACK and CONNECT.
const allowed = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// echoes reports whether method asks the server to echo the request back (TRACE, and TRACK, an
// old twin some servers still answer): the echo would carry the token the gateway adds, to a
// caller that must never see it. Case does not matter here: a server that takes "trace" for
// TRACE must not get it either.
func echoes(method string) bool {
	return strings.EqualFold(method, http.MethodTrace) || strings.EqualFold(method, "TRACK")
}

// pick chooses the request's client, or answers and returns nil.
func (g *Gateway) pick(w http.ResponseWriter, r *http.Request) *route {
	name := r.Header.Get(HeaderClient)
	switch {
	case name == "" && g.only != nil:
		return g.only
	case name == "":
		answer(w, http.StatusBadRequest, CodeClientNeeded, "Several clients are configured: name one in "+HeaderClient+".", 0)
		return nil
	}
	if rt := g.routes[name]; rt != nil {
		return rt
	}
	answer(w, http.StatusBadRequest, CodeClientUnknown, "No client of that name is configured.", 0)
	return nil
}

// forward sends the request to Clear, replaying it once after a 401 when it can. It reports
// whether it replayed.
func (g *Gateway) forward(w *recorder, r *http.Request, rt *route) bool {
	b, err := g.buffer(r)
	if err != nil {
		answer(w, http.StatusBadRequest, CodeBadRequest, "The request's body could not be read.", 0)
		return false
	}
	// Given back when the request is done, whichever way: answered, refused, replayed, or cut
	// short by a caller gone (a panic with http.ErrAbortHandler unwinds through here too).
	defer g.bodies.give(b.held)
	if b.why != streamNone {
		rt.m.streamed[b.why-1].Add(1)
	}
	tok, ok := g.liveToken(r.Context(), rt)
	if !ok {
		if !w.probe {
			rt.m.noTokenAnswer() // ClearGatewayNoToken is about ERP calls
		}
		answer(w, http.StatusServiceUnavailable, CodeNoToken, "The gateway holds no live Clear token at the moment; retry shortly.", noTokenRetryAfter)
		return false
	}
	a := &attempt{route: rt, tok: tok, intercept: b.replayable(), method: r.Method, path: r.URL.Path, probe: w.probe}
	g.send(w, r, a, b)
	if !a.refused {
		return false
	}
	if a.refusedCall {
		passRefusal(w, a, passCall)
		return false
	}
	g.refusals.refused(a)
	if w.probe && !w.confirming {
		if accepted, _ := g.refusals.acceptedAt(rt.Name, tok.Version); accepted {
			g.confirmProbe(r, rt) // only a token Clear accepted can be judged revoked
		}
	}
	begin := g.o.Now()
	ctx, cancel := context.WithTimeout(r.Context(), g.o.Hold)
	next, ok := g.newerLive(ctx, rt, tok.Version)
	cancel()
	rt.m.held(g.o.Now().Sub(begin))
	if !ok {
		passRefusal(w, a, passNoNewerToken)
		return false
	}
	rt.m.replay()
	g.send(w, r, &attempt{route: rt, tok: next, method: r.Method, path: r.URL.Path, replayOf: tok.Version, probe: w.probe}, b)
	return true
}

// body is a request's body as the gateway sends it: read whole (each attempt reads it afresh, so
// it can be replayed), or streamed once. Neither set: no body. held is what it took of the budget
// for buffered bodies, given back when the request is done.
type body struct {
	whole  []byte
	stream io.Reader
	held   int64
	why    streamReason // why stream is set
}

func (b body) replayable() bool { return b.stream == nil }

// firstRead is the first step by which a body of unknown length is read into memory; each next
// step doubles what is held, up to the replay limit.
const firstRead = 4 << 10

// buffer reads a body of at most ReplayLimit bytes whole, its bytes taken from the budget first; a
// larger one (by its Content-Length, or as it turns out), or one that does not fit in what is left
// of the budget, is streamed, and cannot be replayed. A request without a body is replayable. What
// the body holds of the budget is to be given back (g.bodies.give(b.held)) on every path, when
// no attempt reads it any more; on an error, buffer gives it back itself.
func (g *Gateway) buffer(r *http.Request) (body, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return body{}, nil
	}
	limit := g.o.ReplayLimit
	if n := r.ContentLength; n > limit {
		return body{stream: r.Body, why: streamSize}, nil
	} else if n > 0 {
		if !g.bodies.take(n) {
			return body{stream: r.Body, why: streamBudget}, nil
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			g.bodies.give(n)
			return body{}, err
		}
		return body{whole: buf, held: n}, nil
	}
	// Length unknown (chunked): read in steps, each taken from the budget before it is allocated,
	// up to one byte past the limit, which says the body is over it.
	var buf []byte
	var held int64
	for {
		if len(buf) == cap(buf) {
			step := max(int64(cap(buf)), firstRead)
			if room := limit - int64(cap(buf)); step > room {
				step = room + 1 // no overflow, whatever the limit
			}
			if !g.bodies.take(step) {
				return body{stream: io.MultiReader(bytes.NewReader(buf), r.Body), held: held, why: streamBudget}, nil
			}
			held += step
			buf = append(make([]byte, 0, int64(cap(buf))+step), buf...)
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return body{whole: buf, held: held}, nil
		case err != nil:
			g.bodies.give(held)
			return body{}, err
		case int64(len(buf)) > limit:
			return body{stream: io.MultiReader(bytes.NewReader(buf), r.Body), held: held, why: streamSize}, nil
		}
	}
}

// liveToken returns the client's token if it is live, or waits (at most Hold) for one that is.
func (g *Gateway) liveToken(ctx context.Context, rt *route) (Token, bool) {
	tok, ok := rt.Source.Current()
	if ok && tok.Live(g.o.Now()) {
		return tok, true
	}
	begin := g.o.Now()
	ctx, cancel := context.WithTimeout(ctx, g.o.Hold)
	defer cancel()
	t, ok := g.newerLive(ctx, rt, tok.Version)
	rt.m.held(g.o.Now().Sub(begin))
	return t, ok
}

// newerLive waits for a live token of another version than version.
func (g *Gateway) newerLive(ctx context.Context, rt *route, version string) (Token, bool) {
	for {
		t, ok := rt.Source.Newer(ctx, version)
		if !ok {
			return Token{}, false
		}
		if t.Live(g.o.Now()) {
			return t, true
		}
		version = t.Version
	}
}

// passRefusal passes a held 401 through as Clear sent it, but for the token: a body that quotes
// it shows it with secret.Marker instead, as no header may show it (passes).
func passRefusal(w http.ResponseWriter, a *attempt, why passReason) {
	countPassed(a, why)
	if tok := a.tok.Value.Reveal(); tok != "" && bytes.Contains(a.refusedBody, []byte(tok)) {
		a.refusedBody = bytes.ReplaceAll(a.refusedBody, []byte(tok), []byte(secret.Marker))
	}
	h := w.Header()
	named := connectionNames(a.refusedHdr["Connection"])
	for k, v := range a.refusedHdr {
		if passes(k, v, named, a) { // as copyResponse
			h[k] = v
		}
	}
	h.Set("Content-Length", fmt.Sprint(len(a.refusedBody)))
	w.WriteHeader(a.refusedCode)
	_, _ = w.Write(a.refusedBody)
}

// recorder remembers the status written, for the access log and the metrics, and keeps the
// writer's Flush for streaming.
type recorder struct {
	http.ResponseWriter
	status int
	probe  bool // the request is the gateway's own probe
	// confirming: the probe is the second, sent to confirm a refusal (confirmProbe)
	confirming bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the real writer (Flush, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush streams: the copy of an answer of unknown length flushes through it.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// WriteMetrics appends the gateway's metric families in the Prometheus text format.
func (g *Gateway) WriteMetrics(b *strings.Builder) { g.metrics.write(b) }
