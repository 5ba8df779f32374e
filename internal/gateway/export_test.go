package gateway

// BufferedBytes is how much of g's budget for buffered request bodies is in use.
func BufferedBytes(g *Gateway) int64 { return g.bodies.used() }

// Rewind puts h back to t, as a gateway that has not yet seen the rotations since (so it has
// moved on from none of them); Set never goes back to a version it moved on from.
func (h *Holder) Rewind(t Token) {
	h.mu.Lock()
	h.past, h.has = nil, false
	h.mu.Unlock()
	h.Set(t)
}
