package gateway

// BufferedBytes is how much of g's budget for buffered request bodies is in use.
func BufferedBytes(g *Gateway) int64 { return g.bodies.used() }
