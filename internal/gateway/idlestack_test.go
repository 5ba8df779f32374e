package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// deep uses about n KiB of stack, as a request's deepest call chain does.
//
//go:noinline
func deep(n int) byte {
	var buf [1000]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%len(buf)]
}

// An idle keep-alive connection does not keep the stack its request grew: the goroutine that
// served it hands the wait for the next request to a new one, whose stack starts small, once the
// connection has been idle for Limits.IdleHandoff. Of a gateway's thousands of idle connections
// that was most of their memory (BENCHMARKS.md 9: 12.7 kB a connection, then 16.5 kB once a
// request's frames grew by 128 bytes and its stack doubled to 16 KiB). The garbage collector,
// which would shrink the stacks at its own pace, is off for the measurement.
func TestIdleConnectionsGiveBackTheirStack(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	l := gateway.DefaultLimits
	l.IdleHandoff = 50 * time.Millisecond
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deep(64)
		io.WriteString(w, "ok")
	}), l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	stacks := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.StackInuse
	}
	const n = 100
	before := stacks()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Each connection's request grew its goroutine's stack to 128 KiB; once idle, its wait takes
	// a few KiB at most.
	var per uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if per = (stacks() - min(before, stacks())) / n; per < 16<<10 {
			return
		}
	}
	t.Errorf("idle connections hold %d KiB of stack each, want less than 16", per>>10)
}
