package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// The caller holds no token by design, and must not be shown one: a server in front of Clear that
// echoes the request's headers in its answer's (a debugging filter, a header copied back by a load
// balancer) would hand the caller the token the gateway added. Such headers are dropped from the
// answer, a 2xx or a 401 passed through after the hold alike; the others pass.
func TestAnAnswerNeverEchoesTheToken(t *testing.T) {
	t.Parallel()
	f := echoingFixture(t, func(r *http.Request, resp *http.Response) {
		tok := r.Header.Get(clear.HeaderAuthToken)
		resp.Header.Set(clear.HeaderAuthToken, tok)
		resp.Header.Set("X-Clear-Auth-Token", tok)
		resp.Header.Set("X-Debug-Request", "GET "+r.URL.Path+" token="+tok)
		resp.Header.Set("X-Kept", "yes")
	})
	tok := f.rotate()
	f.h.Set(tok)
	check := func(what string, rec *httptest.ResponseRecorder, code int) {
		t.Helper()
		if rec.Code != code {
			t.Fatalf("%s: %d %s", what, rec.Code, rec.Body)
		}
		for k, vs := range rec.Header() {
			for _, v := range vs {
				if strings.Contains(v, tok.Value.Reveal()) {
					t.Errorf("%s: the answer's %s shows the token", what, k)
				}
			}
		}
		if rec.Header().Get("X-Kept") != "yes" {
			t.Errorf("%s: an ordinary header was dropped", what)
		}
	}
	check("accepted", f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)), http.StatusOK)
	f.w.Issue() // revoked, and no newer token comes: Clear's 401 passes through after the hold
	check("refused", f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)), http.StatusUnauthorized)
}

// A token header in an answer is dropped whatever its value (another token, one Clear just
// issued, say), and so is a trailer that shows the token; other trailers pass.
func TestAnAnswerNeverCarriesATokenHeaderOrTrailer(t *testing.T) {
	t.Parallel()
	const other = "another-token-0123456789-abcdef"
	f := echoingFixture(t, func(r *http.Request, resp *http.Response) {
		resp.Header.Set(clear.HeaderAuthToken, other)
		resp.Header.Set("X-Clear-Auth-Token", other)
		resp.Header.Set("X-Kept", "yes")
		resp.Trailer = http.Header{"X-Debug": {"token=" + r.Header.Get(clear.HeaderAuthToken)}, "X-Kept-Trailer": {"yes"}}
	})
	tok := f.rotate()
	f.h.Set(tok)
	rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	res := rec.Result()
	if rec.Code != http.StatusOK || res.Header.Get("X-Kept") != "yes" || res.Trailer.Get("X-Kept-Trailer") != "yes" {
		t.Fatalf("%d, headers %v, trailers %v; want 200 with the ordinary header and trailer", rec.Code, res.Header, res.Trailer)
	}
	for _, h := range []http.Header{res.Header, res.Trailer} {
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, other) || strings.Contains(v, tok.Value.Reveal()) {
					t.Errorf("the answer's %s shows a token", k)
				}
			}
		}
	}
}

// A 401 held and then passed through is buffered whole: a body that quotes the token refused (an
// error message naming it) would show the caller a token, which Clear may still accept for other
// calls (a call refused for a product the API client lacks). The token is blanked in it.
func TestARefusalPassedThroughNeverQuotesTheToken(t *testing.T) {
	t.Parallel()
	f := echoingFixture(t, func(r *http.Request, resp *http.Response) {
		if resp.StatusCode == http.StatusUnauthorized {
			resp.Body.Close()
			body := `{"errors":[{"error_code":"CLI-TOK-002","error_message":"token ` + r.Header.Get(clear.HeaderAuthToken) + ` is not valid"}]}`
			resp.Body, resp.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
			resp.Header.Del("Content-Length")
		}
	})
	tok := f.rotate()
	f.h.Set(tok)
	f.w.Issue() // revoked, and no newer token comes: Clear's 401 passes through after the hold
	rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "CLI-TOK-002") {
		t.Fatalf("%d %s; want Clear's 401 passed through", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), tok.Value.Reveal()) {
		t.Errorf("the refusal passed through quotes the token: %s", rec.Body)
	}
}

// echoingFixture is a fixture with a short hold whose Clear answers pass through echo first: a
// server in front of Clear that copies something of the request into its answer.
func echoingFixture(t *testing.T, echo func(r *http.Request, resp *http.Response)) *fixture {
	return newFixture(t, func(o *gateway.Options) {
		o.Hold = 100 * time.Millisecond
		next := o.Transport
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(r)
			if err == nil {
				echo(r, resp)
			}
			return resp, err
		})
	})
}

// Every refusal passed to a caller is blanked of the token its call carried, not only the 401 held
// and passed after the hold: the replay's 401 (it quotes the newer token, which Clear may accept
// for other calls), a streamed body's, one too large to hold (past 64 KiB, the token across a read
// boundary or not), and any other error answer that names it. A body without the token passes
// unchanged.
func TestNoErrorAnswerQuotesTheToken(t *testing.T) {
	t.Parallel()
	quoting := func(pad int) func(r *http.Request, resp *http.Response) {
		return func(r *http.Request, resp *http.Response) {
			if resp.StatusCode < 400 && !strings.HasSuffix(r.URL.Path, "/forbidden") {
				return
			}
			resp.Body.Close()
			body := strings.Repeat(" ", pad) + `{"error_message":"token ` + r.Header.Get(clear.HeaderAuthToken) + ` is not valid"}`
			resp.Body, resp.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			if resp.StatusCode < 400 {
				resp.StatusCode = http.StatusForbidden
			}
		}
	}
	check := func(what string, rec *httptest.ResponseRecorder, code int, tokens ...string) {
		t.Helper()
		body := rec.Body.String()
		if rec.Code != code || !strings.Contains(body, "is not valid") || !strings.Contains(body, "[REDACTED]") {
			t.Fatalf("%s: %d %.200s; want %d with the token blanked", what, rec.Code, body, code)
		}
		for _, tok := range tokens {
			if strings.Contains(body, tok) {
				t.Errorf("%s: the answer quotes a token", what)
			}
		}
		if cl := rec.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
			t.Errorf("%s: Content-Length %s for a body of %d bytes", what, cl, len(body))
		}
	}

	// The replay's 401: the newer token is refused too.
	f := echoingFixture(t, quoting(0))
	old := f.rotate()
	f.h.Set(old)
	f.w.Issue()
	newer := gateway.Token{Value: clear.NewAccessToken("newer-token-0123456789-abcdef"), Version: "v-newer"}
	go func() { time.Sleep(30 * time.Millisecond); f.h.Set(newer) }()
	check("the replay's 401", f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)), http.StatusUnauthorized,
		old.Value.Reveal(), newer.Value.Reveal())

	// Any other error answer: a 403 naming the token, from a token Clear accepts.
	f = echoingFixture(t, quoting(0))
	tok := f.rotate()
	f.h.Set(tok)
	check("a 403", f.do(httptest.NewRequest(http.MethodGet, "/v1/forbidden", nil)), http.StatusForbidden, tok.Value.Reveal())

	// A 401 too large to hold, the token at every offset around the 32 KiB copy buffer's edge.
	for _, pad := range []int{64 << 10, 32<<10 - 30, 32<<10 - 5, 96 << 10} {
		f = echoingFixture(t, quoting(pad))
		tok = f.rotate()
		f.h.Set(tok)
		f.w.Issue()
		check(fmt.Sprintf("a 401 of %d bytes", pad), f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil)), http.StatusUnauthorized, tok.Value.Reveal())
	}

	// A streamed body's 401.
	f = newFixture(t, func(o *gateway.Options) {
		o.ReplayLimit = 16
		next := o.Transport
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(r)
			if err == nil {
				quoting(0)(r, resp)
			}
			return resp, err
		})
	})
	tok = f.rotate()
	f.h.Set(tok)
	f.w.Issue()
	check("a streamed body's 401", f.do(httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader(strings.Repeat("x", 100)))),
		http.StatusUnauthorized, tok.Value.Reveal())
}

// The caller's Expect: 100-continue is answered by the gateway's own server and not sent on: the
// body, buffered, follows at once, and Clear is not made to answer an interim response first.
func TestExpectIsNotSentToClear(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sent []string
	f := echoingFixture(t, func(r *http.Request, _ *http.Response) {
		mu.Lock()
		sent = append(sent, r.Header.Get("Expect"))
		mu.Unlock()
	})
	f.h.Set(f.rotate())
	r := httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader(`{"a":1}`))
	r.Header.Set("Expect", "100-continue")
	if rec := f.do(r); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != "" {
		t.Fatalf("Clear was sent Expect: %q", sent)
	}
}

// A failure to read Clear's answer is logged without the token the call carried: an answer that
// echoes the request's token in a header line Go cannot parse fails with an error quoting that
// line, and a body that breaks off may fail with one quoting what it read (an audit).
func TestAFailedAnswerIsLoggedWithoutTheToken(t *testing.T) {
	t.Parallel()
	for _, broke := range []bool{false, true} {
		f := newFixture(t, func(o *gateway.Options) {
			o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				tok := r.Header.Get(clear.HeaderAuthToken)
				if !broke {
					return nil, fmt.Errorf("net/http: malformed MIME header: missing colon: %q", "Refused token "+tok)
				}
				return &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1,
					Body: io.NopCloser(io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(fmt.Errorf("read %s: broken", tok))))}, nil
			})
		})
		tok := f.rotate()
		f.h.Set(tok)
		func() {
			defer func() { _ = recover() }() // the broken answer aborts its handler (http.ErrAbortHandler)
			f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil))
		}()
		if out := f.logs.String(); strings.Contains(out, tok.Value.Reveal()) || !strings.Contains(out, "gateway: Clear") {
			t.Errorf("broke off %v: the log shows the token, or nothing:\n%s", broke, out)
		}
	}
}
