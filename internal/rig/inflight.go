package rig

import (
	"net/http"
	"sync"
)

// InFlight counts the Clear requests in flight across several worlds, as a daemon that serves
// many clients (each a World sharing one Secrets Manager) has them: World.PeakRequests sees one
// world's requests only.
type InFlight struct {
	mu        sync.Mutex
	now, peak int
}

// Peak is the most requests that were in flight at once.
func (g *InFlight) Peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak
}

// CountInFlight adds the world's Clear requests to g while Clear answers them: from the moment
// they pass the world's BeforeClear hook to the moment the answer's headers arrive. Call it
// before the world's clients make requests.
func (w *World) CountInFlight(g *InFlight) {
	w.tap.mu.Lock()
	w.tap.next = inFlight{next: w.tap.next, g: g}
	w.tap.mu.Unlock()
}

type inFlight struct {
	next http.RoundTripper
	g    *InFlight
}

func (f inFlight) RoundTrip(req *http.Request) (*http.Response, error) {
	f.g.mu.Lock()
	f.g.now++
	f.g.peak = max(f.g.peak, f.g.now)
	f.g.mu.Unlock()
	defer func() { f.g.mu.Lock(); f.g.now--; f.g.mu.Unlock() }()
	return f.next.RoundTrip(req)
}
