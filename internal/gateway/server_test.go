package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// The listener holds at most MaxConns connections, and headers beyond MaxHeaderBytes are refused.
func TestServerLimits(t *testing.T) {
	t.Parallel()
	l := gateway.DefaultLimits
	l.MaxConns, l.MaxHeaderBytes = 2, 1024
	srv := gateway.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(gateway.LimitListener(ln, l.MaxConns))
	t.Cleanup(func() { srv.Close() })
	get := func(c net.Conn, extra string) string {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if line := get(c, ""); !strings.Contains(line, " 200 ") {
			t.Fatalf("within the limit: %q", line)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line := get(c, ""); line != "" {
		t.Fatalf("a third connection was served: %q", line)
	}
	held[0].Close()
	time.Sleep(100 * time.Millisecond)
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if line := get(c2, "X-Big: "+strings.Repeat("a", 8192)+"\r\n"); !strings.Contains(line, " 431 ") {
		t.Fatalf("oversized headers: %q", line)
	}
}
