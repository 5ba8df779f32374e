package gateway_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// A request head is bounded in lines as well as bytes, as Apache's LimitRequestFields bounds it:
// net/http's parser builds a map entry of about 80 bytes for each line as it arrives, so a head
// of thousands of empty headers held back unfinished took a megabyte of heap for 64 KiB sent,
// before any key was checked (an audit). A body's lines, read ahead with the head, do not count.
func TestAHeadIsBoundedInLines(t *testing.T) {
	t.Parallel()
	l := gateway.DefaultLimits
	_, addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d", len(b))
	}), l)
	head := func(n int) string {
		var b strings.Builder
		b.WriteString("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
		for i := 2; i < n; i++ {
			fmt.Fprintf(&b, "X-%d: v\r\n", i)
		}
		return b.String()
	}
	body := strings.Repeat("{\r\n\r\n}\n", 400)
	for _, tc := range []struct {
		raw, want string
	}{
		{head(l.MaxHeaderLines) + "\r\n", "200"},
		{head(l.MaxHeaderLines) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body, "431"},
		{head(l.MaxHeaderLines-1) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body, "200"},
		{head(l.MaxHeaderLines+1) + "\r\n", "431"},
		{head(l.MaxHeaderLines/2+1) + " folded\r\n\tcontinued\r\n" + head(l.MaxHeaderLines / 2)[len("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"):] + "\r\n", "431"},
	} {
		out := exchange(t, addr, tc.raw, 5*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 "+tc.want+" ") {
			t.Errorf("%d lines: %.60q, want %s", strings.Count(tc.raw, "\n"), out, tc.want)
		}
	}
}

// What a connection holds while its head arrives is bounded by the head's limits, however the
// head is made: many short lines, or a few long ones.
func TestAHeadInProgressHoldsLittle(t *testing.T) {
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), gateway.DefaultLimits)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	l := gateway.DefaultLimits
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	for _, lines := range []int{10000, 90, 8} {
		var head strings.Builder
		head.WriteString("GET / HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < lines && head.Len() < l.MaxHeaderBytes-200; i++ {
			fmt.Fprintf(&head, "%x:%s\r\n", i, strings.Repeat("v", max(0, l.MaxHeaderBytes/lines-8)))
		}
		const n = 32
		before := heap()
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(c, head.String()) // never finished
		}
		time.Sleep(500 * time.Millisecond)
		per := (heap() - min(before, heap())) / n
		for _, c := range conns {
			c.Close()
		}
		if bound := uint64(2*l.MaxHeaderBytes + 16<<10); per > bound {
			t.Errorf("a head of %d bytes in %d lines, unfinished, holds %d KiB of heap, want at most %d", head.Len(), lines, per>>10, bound>>10)
		}
	}
}
