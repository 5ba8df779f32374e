package cleartoken

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/apicall"
)

// Header is the header Clear's APIs read the access token from (WithHeader names another).
const Header = "x-cleartax-auth-token"

// otherTokenHeader is the header Clear's GLS API reads the token from; a hop that leaves the
// token's origin loses it as it loses Header, whichever the Transport sends.
const otherTokenHeader = "x-clear-auth-token"

// drainLimit bounds how much of a 401 answer is read so that its connection can be reused; a
// larger body is not worth reading and the connection is closed instead.
const drainLimit = 64 << 10

// NewTransport returns an http.RoundTripper that sends src's token to Clear in the
// x-cleartax-auth-token header (or the one WithHeader names), through base (http.DefaultTransport
// when nil).
//
// When Clear answers 401, it tells src the token was refused, which waits for a newer token in
// AWSCURRENT (see Source.Refused), and retries the request once with it. The 401 is returned as is
// when the request's body cannot be sent again (Body set and GetBody nil; http.NewRequest sets
// GetBody for the usual in-memory bodies; the wait for a newer token then runs in the background
// for the requests that follow), when no newer token appeared within the wait, or when the secret
// could not be read. A call proven refused whatever the token (see the package documentation: a
// wait after its own refusal ended by Clear accepting the token for a later request, a whole wait
// of its own with no other call refused, or two whole waits while Clear accepts the token for
// nothing; the API client may lack the call's product) gets its 401 at once, after a re-read of the
// secret when the cache is more than 5 s old; an answer other than a 401, a 403 or a 5xx counts as
// Clear accepting the token. When the request's context ends during the wait, the context's error
// is returned instead, as for any request it cuts off. A request whose body cannot be sent again,
// made while a call taken for refused (not proven) waits, is held for up to 2 s of that wait: the
// refusal may be the rotation's. The caller's request is never modified.
//
// The token goes only to the origin (scheme, host and port) of the request the caller made. When
// an http.Client follows a redirect to another origin (another host or port, or https to http),
// that request and every later hop of the redirect are sent without it, as net/http does with
// Authorization; to reach another origin, make a new request there.
func NewTransport(src *Source, base http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &transport{src: src, base: base, header: Header}
	for _, o := range opts {
		o(t)
	}
	return t
}

// TransportOption configures a Transport.
type TransportOption func(*transport)

// WithHeader makes the Transport send the token in the header name instead of
// x-cleartax-auth-token: Clear's GLS API, for one, reads it from x-clear-auth-token. "" keeps
// Header. A name that is not a valid HTTP header name panics, since net/http would refuse every
// request that carried it.
func WithHeader(name string) TransportOption {
	if name != "" && !validHeaderName(name) {
		panic("cleartoken: WithHeader: " + strconv.Quote(name) + " is not a valid HTTP header name")
	}
	return func(t *transport) {
		if name != "" {
			t.header = name
		}
	}
}

// validHeaderName reports whether name is an RFC 9110 token: visible ASCII but delimiters.
func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return name != ""
}

type transport struct {
	src    *Source
	base   http.RoundTripper
	header string // the header the token travels in
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !onTokenHost(req) {
		// A redirect left the host the caller addressed. net/http strips Authorization on such a
		// redirect but not a custom header, and it calls this Transport again for every hop.
		return t.base.RoundTrip(withoutToken(req, t.header))
	}
	// Numbered before the token is got: a request numbered after a refusal was known got its token
	// after it too, so that its acceptance says something about the token (Source.accepted).
	seq, sentAt := t.src.number(), t.src.now()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	get := t.src.Get
	if !replayable {
		get = t.src.getOnce
	}
	tok, err := get(req.Context())
	if err != nil {
		// A RoundTripper must close the body even when it fails.
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(withToken(req, t.header, tok))
	if err != nil {
		return resp, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		if apicall.TokenAccepted(resp.StatusCode) {
			t.src.accepted(tok, callOf(req), seq, sentAt)
		}
		return resp, nil
	}
	// The refusal is known from now: only a request sent after this, and accepted, shows the token
	// was not revoked when Clear refused this one (a request sent before it may have reached Clear
	// first).
	by := refuser{call: callOf(req), seq: t.src.sent.Load()}
	if !replayable {
		t.src.log.Debug("cleartoken: Clear refused the token; the request body cannot be sent again, so the 401 is returned",
			"secret_id", t.src.secretID, "version_id", tok.VersionID)
		// Still tell the Source, in the background, so that the next requests get the newer token
		// instead of the refused one for the rest of the TTL; they join this wait.
		go func() { _, _ = t.src.refusedCall(context.WithoutCancel(req.Context()), tok, by) }()
		return resp, nil
	}
	newer, err := t.src.refusedCall(req.Context(), tok, by)
	if err != nil {
		return t.unanswered(req, resp, tok, err)
	}
	retry := withToken(req, t.header, newer)
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	discard(resp)
	t.src.log.Debug("cleartoken: retrying once with a newer token", "secret_id", t.src.secretID,
		"refused_version_id", tok.VersionID, "version_id", newer.VersionID)
	resp, err = t.base.RoundTrip(retry)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.src.refusedWithNewer(callOf(req), newer)
	}
	return resp, err
}

// unanswered is RoundTrip's answer when no newer token came for tok, refused with resp: Clear's
// 401, logged by why, or the error of the caller's context when it ended during the wait.
func (t *transport) unanswered(req *http.Request, resp *http.Response, tok Token, err error) (*http.Response, error) {
	if req.Context().Err() != nil {
		// The caller's own context ended during the wait: its error, as for any call it cut off,
		// not Clear's 401, which an ERP would take for a credentials failure.
		discard(resp)
		return nil, req.Context().Err()
	}
	if e := (*Error)(nil); errors.As(err, &e) && e.callRefused {
		// Debug for a call Clear refuses while it accepts the token for others (it would log on
		// every such call); warn while Clear accepts the token for no call, which it may have
		// revoked outside the rotator (the runbook's "revoked outside").
		level := slog.LevelDebug
		if e.unconfirmed {
			level = slog.LevelWarn
		}
		t.src.log.Log(req.Context(), level, "cleartoken: Clear refused a call it refused before with the token AWSCURRENT holds; returning the 401 without waiting",
			"secret_id", t.src.secretID, "version_id", tok.VersionID, "method", req.Method, "path", req.URL.Path, "error", err)
		return resp, nil
	}
	t.src.log.Warn("cleartoken: Clear refused the token and no newer one could be read; returning the 401",
		"secret_id", t.src.secretID, "version_id", tok.VersionID, "error", err)
	return resp, nil
}

// discard reads a little of resp's body, so that its connection goes back to the pool, and closes
// it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
}

// callOf is the call req makes, as the Source remembers a refusal of it. net/http sends a request
// without a method as a GET.
func callOf(req *http.Request) apicall.Call {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	return apicall.Call{Method: method, Path: req.URL.Path}
}

// onTokenHost reports whether req may carry the token: it is the caller's own request, or a
// redirect whose every hop, back to the caller's request, has that request's origin. An http.Client
// sets Request.Response on each redirect it follows, and the response's Request is the hop before;
// a chain that cannot be followed back (a base RoundTripper that does not set Response.Request)
// does not get the token, since where it started is unknown. Once a hop has left the origin, later
// hops do not get the token either, even back on the origin: the foreign host chose where they go.
func onTokenHost(req *http.Request) bool {
	want := origin(req.URL)
	for hop := req; hop.Response != nil; {
		prev := hop.Response.Request
		if prev == nil || prev.URL == nil || origin(prev.URL) != want {
			return false
		}
		hop = prev
	}
	return true
}

// withoutToken returns req, or a copy of it without any token header (the Transport's header and
// Clear's known ones) when the caller set one itself: a token goes to the token's host only,
// whoever put it there.
func withoutToken(req *http.Request, header string) *http.Request {
	names := []string{header, Header, otherTokenHeader}
	found := false
	for _, h := range names {
		_, ok := req.Header[http.CanonicalHeaderKey(h)]
		found = found || ok
	}
	if !found {
		return req
	}
	r := req.Clone(req.Context())
	for _, h := range names {
		r.Header.Del(h)
	}
	return r
}

// withToken returns a shallow copy of req, with its own headers, carrying tok in header. The body
// is shared: the caller replaces it for a retry.
func withToken(req *http.Request, header string, tok Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set(header, tok.Value())
	return r
}

// origin is what a token is bound to: scheme, host name and port, lower-cased, with the scheme's
// default port left out. Two URLs with the same origin reach the same server over the same kind of
// connection; a different scheme could send the token in clear text.
func origin(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
