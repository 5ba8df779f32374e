package ops

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit is a listener that holds at most max connections open at once, and makes room for a
// new one by closing an old one rather than turning the new one away.
//
// Turning the newcomer away (issue 19 item 11) let anyone who reaches the port starve the probes:
// sixteen connections that send nothing, or dribble a header, or sit idle after a request, and
// every probe found the port full, so the liveness probe restarted a healthy rotator. A probe
// sends its request at once and is answered within a millisecond; a connection that has not begun
// a request for longest is the least likely to be anyone's probe or scrape. So the newcomer always
// gets in, at once (Accept never waits, so the kernel's backlog never becomes a queue that a crowd
// fills ahead of the probes), and evict chooses who gives way. The cap still bounds the
// descriptors, goroutines and buffers the port can take: the connection that gives way is closed
// before the newcomer is handed to the server.
type connLimit struct {
	net.Listener
	max int

	mu    sync.Mutex // guards the fields below
	open  map[*limitedConn]struct{}
	clock uint64 // counts accepts and requests: "least recently used" without reading a clock
}

// speakGrace is how long a connection that has sent nothing yet is spared, from the server's first
// attempt to read it, while others can give way: a client writes its request a moment after it
// connects, and a crowd that reconnects the instant it is closed would otherwise push a probe out
// in that moment. Until the server has tried to read it (on a loaded machine its goroutine may not
// have run yet), a connection has had no chance at all, and is spared too.
const speakGrace = time.Second

func newConnLimit(ln net.Listener, n int) *connLimit {
	return &connLimit{Listener: ln, max: max(n, 1), open: map[*limitedConn]struct{}{}}
}

// limitedConn is one connection of a connLimit. It leaves the table when it is closed, once
// however often Close is called, and whether it was evicted or closed by the server.
type limitedConn struct {
	net.Conn
	l      *connLimit
	source string
	// firstRead is when the server first tried to read it, in Unix nanoseconds; zero: not yet.
	firstRead atomic.Int64
	spoken    atomic.Bool // it has sent at least one byte
	used      uint64      // the connLimit's clock when it was accepted or last began a request; under l.mu
	once      sync.Once
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.firstRead.Load() == 0 {
		c.firstRead.CompareAndSwap(0, time.Now().UnixNano())
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoken.Load() {
		c.spoken.Store(true)
		c.l.use(c)
	}
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.mu.Unlock()
	})
	return err
}

// Accept returns the next connection, closing another first when the table is full.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	nc := &limitedConn{Conn: c, l: l, source: sourceOf(c.RemoteAddr())}
	l.mu.Lock()
	var victim *limitedConn
	if len(l.open) >= l.max {
		victim = l.pickLocked(nc.source, now)
		delete(l.open, victim)
	}
	l.clock++
	nc.used = l.clock
	l.open[nc] = struct{}{}
	l.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
	return nc, nil
}

// pickLocked returns the connection that gives way to a newcomer from source at now; l.mu is held
// and the table is not empty.
func (l *connLimit) pickLocked(source string, now time.Time) *limitedConn {
	open := make([]connUse, 0, len(l.open))
	conns := make([]*limitedConn, 0, len(l.open))
	for c := range l.open {
		first := c.firstRead.Load()
		fresh := !c.spoken.Load() && (first == 0 || now.Sub(time.Unix(0, first)) < speakGrace)
		open = append(open, connUse{source: c.source, used: c.used, fresh: fresh})
		conns = append(conns, c)
	}
	return conns[evict(open, source)]
}

// track is the server's ConnState hook: a connection that has read a whole request header is in
// use, and goes to the back of the queue. A connection that never completes a header (slowloris)
// never gets there.
func (l *connLimit) track(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok || state != http.StateActive {
		return
	}
	l.use(lc)
}

// use puts c at the back of the queue.
func (l *connLimit) use(c *limitedConn) {
	l.mu.Lock()
	l.clock++
	c.used = l.clock
	l.mu.Unlock()
}

// sourceOf is the host part of a remote address: the unit a crowd is counted in.
func sourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// connUse is what evict knows of an open connection: where it comes from, when it was last used
// (accepted or began a request, on any increasing scale), and whether it is fresh: it has sent
// nothing yet, and the server has not tried to read it or began less than speakGrace ago.
type connUse struct {
	source string
	used   uint64
	fresh  bool
}

// evict returns the index in open (not empty) of the connection that gives way to a newcomer from
// source:
//
//   - one of the source address that holds the most connections, the newcomer counted with its
//     source: a crowd from one pod then only ever pushes out its own connections, however fast it
//     reconnects, and leaves the kubelet's and Prometheus's alone;
//   - of those, one that is not fresh if there is one: a connection that has sent nothing yet may
//     be a probe about to write its request;
//   - of those, the least recently used: the one accepted, or that began its last request, longest
//     ago. A connection that never finishes a header (slowloris) is never "used" again.
//
// Between sources that hold as many connections, the one with the better candidate gives way.
func evict(open []connUse, source string) int {
	held := map[string]int{source: 1}
	for _, c := range open {
		held[c.source]++
	}
	// before reports whether a gives way before b.
	before := func(a, b connUse) bool {
		switch {
		case held[a.source] != held[b.source]:
			return held[a.source] > held[b.source]
		case a.fresh != b.fresh:
			return !a.fresh
		}
		return a.used < b.used
	}
	best := 0
	for i, c := range open {
		if before(c, open[best]) {
			best = i
		}
	}
	return best
}
