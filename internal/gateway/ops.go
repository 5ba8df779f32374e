package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// OpsLimits suit probes and scrapes, as the daemon's ops listener's.
var OpsLimits = Limits{MaxConns: 16, MaxHeaderBytes: 8 << 10, ReadHeader: 5 * time.Second, Read: 10 * time.Second,
	Write: 10 * time.Second, Idle: 30 * time.Second}

// OpsHandler serves a standalone gateway's /healthz (200 while the process runs), /readyz (200
// once every client holds a live token) and /metrics (the gateway's families, plus more from
// extra when it is set).
func (s *Service) OpsHandler(extra func(b *strings.Builder)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := s.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, reason+"\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		if extra != nil {
			extra(&b)
		}
		s.WriteMetrics(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, b.String())
	})
	return mux
}

// ServeOps serves h on addr with OpsLimits until the returned server is shut down; the address
// actually bound is returned too (port 0 picks a free one).
func ServeOps(addr string, h http.Handler, onErr func(error)) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	srv := NewServer(h, OpsLimits)
	go func() {
		if err := srv.Serve(LimitListener(ln, OpsLimits.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) && onErr != nil {
			onErr(err)
		}
	}()
	return srv, ln.Addr().String(), nil
}
