package emulator

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// routes wires the token API, the ping endpoint and the control API that lets tests drive an
// emulator running as another process. The control API has no authentication: the emulator is
// meant for loopback only, and cmd/clear-emulator refuses any other address.
func (s *Server) routes() {
	s.mux = http.NewServeMux()
	// No method in the pattern: the handler itself answers 405 to everything but GET, HEAD included.
	s.mux.HandleFunc(clear.TokenPath, s.handleToken)
	s.mux.HandleFunc("GET /_emulator/api/ping", s.handlePing)
	s.mux.HandleFunc("POST /_emulator/faults", s.handleFaults)
	s.mux.HandleFunc("GET /_emulator/live", s.handleLive)
	s.mux.HandleFunc("GET /_emulator/stats", s.handleStats)
	s.mux.HandleFunc("POST /_emulator/secrets", s.handleSecrets)
	s.mux.HandleFunc("POST /_emulator/clock", s.handleClock)
	s.mux.HandleFunc("POST /_emulator/lifetime", s.handleLifetime)
	s.mux.HandleFunc("POST /_emulator/valid_till", s.handleValidTill)
	s.mux.HandleFunc("POST /_emulator/retry_after", s.handleRetryAfter)
}

// handleValidTill fixes the valid_till of every future token: {"fixed":"2030-01-01T00:00:00Z"};
// {"fixed":""} goes back to the lifetime.
func (s *Server) handleValidTill(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Fixed string `json:"fixed"`
	}
	if !decode(w, r, &req) {
		return
	}
	var t time.Time
	if req.Fixed != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, req.Fixed); err != nil {
			http.Error(w, "fixed must be an RFC 3339 time or empty", http.StatusBadRequest)
			return
		}
	}
	s.SetFixedValidTill(t)
	w.WriteHeader(http.StatusNoContent)
}

// handleRetryAfter turns the daily limit's Retry-After header on or off: {"enabled":true}.
func (s *Server) handleRetryAfter(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Enabled == nil {
		http.Error(w, "enabled is missing", http.StatusBadRequest)
		return
	}
	s.SetRetryAfter(*req.Enabled)
	w.WriteHeader(http.StatusNoContent)
}

// handleFaults queues faults: [{"status":500},{"delay":"2s"},{"body":"garbage"},{"hang":true},
// {"status":429,"retry_after":"120"},{"echo_secret":true},{"valid_till":1700000000},
// {"past_valid_till":true}]; see Fault for every field.
func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	var faults []Fault
	if !decode(w, r, &faults) {
		return
	}
	s.Inject(faults...)
	w.WriteHeader(http.StatusNoContent)
}

// handleLive answers {"live":true|false} for ?token=.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	s.replyJSON(w, http.StatusOK, "", map[string]bool{"live": s.Live(r.URL.Query().Get("token"))})
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	s.replyJSON(w, http.StatusOK, "", s.Stats())
}

// handleSecrets adds or updates a secret: {"secret":"...","active":true,"ip_blocked":false}. An
// omitted field keeps its value (active and not blocked for a new secret).
func (s *Server) handleSecrets(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Secret    string `json:"secret"`
		Active    *bool  `json:"active"`
		IPBlocked *bool  `json:"ip_blocked"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Secret == "" {
		http.Error(w, "secret is empty", http.StatusBadRequest)
		return
	}
	s.AddSecret(req.Secret)
	if req.Active != nil {
		s.SetSecretActive(req.Secret, *req.Active)
	}
	if req.IPBlocked != nil {
		s.SetIPBlocked(req.Secret, *req.IPBlocked)
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleClock sets the offset of the emulator's clock from the real one: {"offset":"25h"}. A
// process test crosses midnight UTC this way.
func (s *Server) handleClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Offset string `json:"offset"`
	}
	if !decode(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Offset)
	if err != nil {
		http.Error(w, "offset must be a Go duration", http.StatusBadRequest)
		return
	}
	if err := s.setClockOffset(d); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleLifetime sets the lifetime of future tokens: {"lifetime":"20s"}; "0s" means never expires.
func (s *Server) handleLifetime(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Lifetime string `json:"lifetime"`
	}
	if !decode(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Lifetime)
	if err != nil || d < 0 {
		http.Error(w, "lifetime must be a non-negative Go duration", http.StatusBadRequest)
		return
	}
	s.SetLifetime(d)
	w.WriteHeader(http.StatusNoContent)
}

// decode reads a JSON request body into v strictly, answering 400 and returning false on error.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
