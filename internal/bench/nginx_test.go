package bench

// The peers of the gateway benchmark: nginx as a fast upstream and as a proxy that injects a
// static token header, and wrk as the load generator. They come from the system's packages
// (`apt-get install -y nginx wrk`; `make bench` installs them through scripts/test-deps.sh), and a
// benchmark that needs them fails, never skips, when they are missing.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireTools fails the benchmark when a tool is not on PATH: a figure that silently goes
// missing from a run is worse than a failed run.
func requireTools(b *testing.B, tools ...string) {
	b.Helper()
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			b.Fatalf("%s is not installed: run scripts/test-deps.sh bench (or apt-get install -y nginx wrk)", t)
		}
	}
}

// nginx is one nginx process (a master and its workers) with its own configuration.
type nginx struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// nginxHTTP is the http block's common part: no access log (the gateway's access log is part of
// its cost, but nginx's would be a disk write per request, which the gateway does not make), keep-
// alive for as many requests as wrk sends, temporary files in the instance's directory.
const nginxHTTP = `
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
`

// startNginx starts nginx in the foreground with the server block's directives given (and
// httpExtra in the http block), listening on a free loopback port, and waits until it accepts
// connections. workers is nginx's worker_processes ("1", "auto"). It is stopped when the
// benchmark ends.
func startNginx(b *testing.B, name, workers, httpExtra, server string) *nginx {
	b.Helper()
	dir := filepath.Join(b.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	n := &nginx{Addr: listenAddr(b), dir: dir}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %s;
worker_rlimit_nofile 30000;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 16384; }
http {%s%s
  server {
    listen %s backlog=16384;
%s
  }
}
`, workers, dir, dir, fmt.Sprintf(nginxHTTP, dir), httpExtra, n.Addr, server)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	n.cmd = exec.Command("nginx", "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	out, _ := os.Create(filepath.Join(dir, "stdout.log"))
	n.cmd.Stdout, n.cmd.Stderr = out, out
	if err := n.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = n.cmd.Process.Signal(os.Interrupt) // SIGINT: nginx's fast shutdown
		done := make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
		}
		out.Close()
	})
	awaitListening(b, "nginx "+name, n.Addr, func() string { return n.log() })
	return n
}

func (n *nginx) log() string {
	a, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	c, _ := os.ReadFile(filepath.Join(n.dir, "stdout.log"))
	return string(a) + string(c)
}

// RSS is the resident memory of the master and its workers together, in kB.
func (n *nginx) RSS(b *testing.B) int {
	b.Helper()
	pid := n.cmd.Process.Pid
	total := procStatus(b, pid, "VmRSS")
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		b.Fatal(err)
	}
	for f := range strings.FieldsSeq(string(children)) {
		child, _ := strconv.Atoi(f)
		total += procStatus(b, child, "VmRSS")
	}
	return total
}

// awaitListening waits up to 10 s for addr to accept a TCP connection.
func awaitListening(b *testing.B, what, addr string, log func() string) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s does not listen on %s: %v\n%s", what, addr, err, log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	RPS              float64
	P50, P90, P99    time.Duration
	Requests, Errors int
}

// runWrk runs wrk against url for d with the given threads and connections, sending headers, and
// parses its summary (--latency gives the percentiles). Non-2xx answers and socket errors count
// as errors.
func runWrk(b *testing.B, url string, threads, conns int, d time.Duration, headers ...string) wrkResult {
	b.Helper()
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	return r
}

var (
	wrkRPS       = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkTotal     = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	wrkPct       = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkNon2xx    = regexp.MustCompile(`(?m)Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockError = regexp.MustCompile(`(?m)Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads wrk 4's summary.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
	}
	pcts := wrkPct.FindAllStringSubmatch(out, -1)
	if len(pcts) != 3 {
		return r, fmt.Errorf("no latency distribution in wrk's output (run with --latency)")
	}
	for _, p := range pcts {
		v, _ := strconv.ParseFloat(p[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p[3]]
		d := time.Duration(v * float64(unit))
		switch p[1] {
		case "50":
			r.P50 = d
		case "90":
			r.P90 = d
		case "99":
			r.P99 = d
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	if m := wrkSockError.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.Errors += n
		}
	}
	return r, nil
}

// openIdle opens n keep-alive connections to addr, sends one request on each (with headers, one
// "Name: value" a line) and reads its answer, so that each is a served connection waiting for its
// next request, as an ERP's pooled connection is. It returns the connections (the caller closes
// them) and the number whose request was answered 200.
func openIdle(b *testing.B, addr string, n int, headers []string) (conns []net.Conn, ok int) {
	b.Helper()
	req := "GET /idle HTTP/1.1\r\nHost: " + addr + "\r\n" + strings.Join(append(headers, ""), "\r\n") + "\r\n"
	type result struct {
		c  net.Conn
		ok bool
	}
	results := make(chan result, n)
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	for range 64 {
		go func() {
			for range jobs {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					results <- result{}
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				good := false
				if _, err := c.Write([]byte(req)); err == nil {
					br := bufio.NewReader(c)
					if line, err := br.ReadString('\n'); err == nil && strings.HasPrefix(line, "HTTP/1.1 200") {
						good = drainResponse(br)
					}
				}
				_ = c.SetDeadline(time.Time{})
				results <- result{c, good}
			}
		}()
	}
	for range n {
		r := <-results
		if r.c != nil {
			conns = append(conns, r.c)
		}
		if r.ok {
			ok++
		}
	}
	return conns, ok
}

// drainResponse reads the rest of a response with a Content-Length body (the status line read).
func drainResponse(br *bufio.Reader) bool {
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, found := strings.Cut(line, ":"); found && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	_, err := br.Discard(length)
	return err == nil
}
