package rig

import (
	"encoding/json"
	"net/http"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// RecordServed makes the leak scan look for every token Clear's answers carry to any caller, as
// the server sends them: the processes of a world on the wire included, whose tokens the world's
// own tap (Requests) never sees. A process killed between Clear's answer and its token write took
// a token that was never stored; its output must not hold it either. It takes the token route of
// the Clear server (see Handle), so a test that calls it cannot also Handle that route.
func (w *World) RecordServed() {
	w.T.Helper()
	if w.Moto == nil {
		w.T.Fatal("rig: RecordServed is for a world on the wire; in memory, Requests sees every token")
	}
	w.Handle(clear.TokenPath, http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		sw := &servedWriter{ResponseWriter: rw}
		w.Emu.ServeHTTP(sw, req)
		var g struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(sw.body, &g) == nil && g.AccessToken != "" {
			w.Hide(g.AccessToken)
		}
	}))
}

// servedWriter keeps a copy of an answer's body (a token answer is small).
type servedWriter struct {
	http.ResponseWriter
	body []byte
}

func (s *servedWriter) Write(p []byte) (int, error) {
	s.body = append(s.body, p...)
	return s.ResponseWriter.Write(p)
}

// Flush passes a flush on, for answers that trickle.
func (s *servedWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
