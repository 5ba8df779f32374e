package rig

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Pressure is a crowd of connections to a listener that serve no purpose, as a misbehaving or
// hostile pod that reaches the port would hold them: a third send nothing, a third dribble a
// request header a byte every 100 ms and never end it (slowloris), a third make one keep-alive
// request and sit idle. Each reconnects when the server closes it, after a pause, so the pressure
// lasts until Close.
type Pressure struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Press opens n such connections to addr, from the local address from (nil: any, chosen by the
// kernel), each reconnecting pause after it was closed (zero: at once, the harshest crowd). Close
// (also called when the test ends) closes them.
func Press(t interface{ Cleanup(func()) }, addr string, from net.Addr, n int, pause time.Duration) *Pressure {
	p := &Pressure{stop: make(chan struct{})}
	d := net.Dialer{LocalAddr: from, Timeout: time.Second}
	for i := range n {
		p.wg.Go(func() { p.hold(d, addr, i%3, pause) })
	}
	t.Cleanup(p.Close)
	return p
}

// hold keeps one connection of the given kind open until Close.
func (p *Pressure) hold(d net.Dialer, addr string, kind int, pause time.Duration) {
	var wait time.Duration // before the next connection
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(wait):
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			wait = max(pause, 10*time.Millisecond)
			continue
		}
		wait = pause
		closed := make(chan struct{})
		go func() {
			select {
			case <-p.stop:
			case <-closed:
			}
			c.Close()
		}()
		switch kind {
		case 1: // slowloris: a header that never ends
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ops\r\n")
			go func() {
				t := time.NewTicker(100 * time.Millisecond)
				defer t.Stop()
				for range t.C {
					if _, err := io.WriteString(c, "X"); err != nil {
						return
					}
				}
			}()
		case 2: // one keep-alive request, then idle
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n")
		}
		io.Copy(io.Discard, c) // until the server (or Close) closes it
		close(closed)
	}
}

// Close closes every connection and stops reconnecting; it waits for them to end.
func (p *Pressure) Close() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// Probe sends one probe as the kubelet does (a new connection, no keep-alive, a one-second
// timeout) to http://addr+path, and returns nil when any HTTP answer arrived.
func Probe(addr, path string) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// ProbeResult is what a series of probes found.
type ProbeResult struct {
	// Sent and Failed count the probes sent and those not answered.
	Sent, Failed int
	// Run is the longest run of consecutive unanswered probes of one path: what a kubelet's
	// failureThreshold counts.
	Run int
	// Errors are the unanswered probes' errors, for the test's log.
	Errors []string
}

// Probes probes each of paths rounds times, a gap apart, as the kubelet does (Probe).
func Probes(addr string, paths []string, rounds int, gap time.Duration) ProbeResult {
	var r ProbeResult
	run := map[string]int{}
	for i := range rounds {
		for _, path := range paths {
			r.Sent++
			if err := Probe(addr, path); err != nil {
				r.Failed++
				run[path]++
				r.Run = max(r.Run, run[path])
				r.Errors = append(r.Errors, fmt.Sprintf("probe %d of %s: %v", i, path, err))
				continue
			}
			run[path] = 0
		}
		time.Sleep(gap)
	}
	return r
}
