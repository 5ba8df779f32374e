// Package ops serves the ops endpoints of the rotator's long-running processes (the daemon and the
// standalone gateway): /healthz, /readyz and /metrics, on a listener that probes cannot be starved
// of. There is one of it, so that what protects one port protects the other.
package ops

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Limits bound what clients of an ops port can hold. An idle keep-alive connection holds a file
// descriptor; without an idle timeout and a connection cap, a few dozen of them could leave the
// process none for Secrets Manager and Clear, and the token expires.
type Limits struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxHeaderBytes                int
	MaxConns                      int
}

// DefaultLimits suit probes and scrapes: their requests are a line and their answers small.
var DefaultLimits = Limits{
	ReadHeader:     5 * time.Second,
	Read:           10 * time.Second,
	Write:          10 * time.Second,
	Idle:           30 * time.Second,
	MaxHeaderBytes: 8 << 10,
	MaxConns:       16,
}

// Handler serves the ops endpoints:
//   - /healthz answers 200 "ok" while the process runs: a liveness probe must not fail because
//     Secrets Manager or Clear does, or an orchestrator would restart a healthy process.
//   - /readyz answers 200 with ready's reason when ready says so, 503 with it otherwise.
//   - /metrics is the Prometheus text exposition format that metrics writes.
func Handler(ready func() (bool, string), metrics func(io.Writer)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, reason+"\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		metrics(w)
	})
	return mux
}

// Serve serves h on ln, capped and timed out as l says, until the returned server is shut down;
// onErr, when not nil, hears why the listener stopped if it was not shut down. A full port makes
// room for a newcomer by closing the connection least likely to be a probe (see connLimit).
func Serve(ln net.Listener, h http.Handler, l Limits, onErr func(error)) *http.Server {
	cl := newConnLimit(ln, l.MaxConns)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ConnState:         cl.track,
	}
	go func() {
		if err := srv.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) && onErr != nil {
			onErr(err)
		}
	}()
	return srv
}
