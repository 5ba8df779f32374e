package emulator

import (
	"errors"
	"net/http"
	"net/http/httptest"
)

// errDropped is what a request gets when the emulator drops its connection (a Hang or Delay
// fault released by Close).
var errDropped = errors.New("emulator: connection dropped without an answer")

// Transport returns an http.RoundTripper that serves requests in-process: no socket, no
// listener, no goroutine that outlives its request. It is what lets a test inside a
// testing/synctest bubble use the emulator with the real clear.Client, where network I/O is not
// durably blocking and so cannot be waited for. A request whose context ends before its answer
// (a Delay or Hang fault and a client timeout) returns the context's error at once, as a real
// transport does, and the handler sees the same cancellation.
//
// The *http.Request's URL host is ignored; any base URL the client accepts will do, such as
// http://127.0.0.1.
func (s *Server) Transport() http.RoundTripper { return transport{s} }

type transport struct{ s *Server }

// RoundTrip implements http.RoundTripper.
func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	// The handler gets a server-side copy: a RoundTripper must not modify the caller's request.
	in := req.Clone(ctx)
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:1"
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		t.s.ServeHTTP(rec, in)
	}()
	select {
	case p := <-done:
		closeBody(req)
		if p != nil {
			if p == http.ErrAbortHandler {
				return nil, errDropped
			}
			panic(p) // a bug in the emulator: let the test see it
		}
		resp := rec.Result()
		resp.Request = req
		return resp, nil
	case <-ctx.Done():
		// The handler watches the same context, so its goroutine ends promptly too; the body is
		// closed once it has, since the handler may still be reading it.
		go func() {
			<-done
			closeBody(req)
		}()
		return nil, ctx.Err()
	}
}

// closeBody closes a request body, as a RoundTripper must, even on errors.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
