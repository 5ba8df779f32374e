package rig

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// Env is the environment of a rotator (or Lambda) process that serves this world: moto's AWS
// settings, Clear's base URL, the client secrets given literally, the token secret, the world's
// daily limit and JSON logs; then extra, which may override any of them. A world in memory has no
// processes.
func (w *World) Env(extra ...string) []string {
	w.T.Helper()
	if w.Moto == nil {
		w.T.Fatal("rig: a world in memory cannot serve a process; build it without Options.Memory")
	}
	env := append(w.Moto.Env(),
		"CLEAR_BASE_URL="+w.ClearURL,
		"CLEAR_CLIENT_SECRET="+w.Secrets[0],
		"ROTATOR_TOKEN_SECRET_ID="+w.TokenID,
		"ROTATOR_DAILY_LIMIT="+strconv.Itoa(w.dailyLimit),
		"LOG_FORMAT=json",
	)
	if len(w.Secrets) > 1 {
		env = append(env, "CLEAR_CLIENT_SECRET_2="+w.Secrets[1])
	}
	return proctest.Env(append(env, extra...)...)
}

// Result is what a finished process left: its exit status and its output.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Output is stdout and stderr together, for messages.
func (r Result) Output() string { return "stdout: " + r.Stdout + "\nstderr: " + r.Stderr }

// Rotator runs the rotator's test build (proctest.TestRotator) once with args and the world's
// environment, and records its output for the leak scan. A run longer than a minute fails the
// test.
func (w *World) Rotator(args ...string) Result {
	w.T.Helper()
	return w.RunEnv(proctest.TestRotator(w.T), nil, args...)
}

// RunEnv runs bin with args and the world's environment plus env, like Rotator.
func (w *World) RunEnv(bin string, env []string, args ...string) Result {
	w.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = w.Env(env...)
	var stdout, stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	w.Record(r.Stdout, r.Stderr)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		w.T.Fatalf("rig: running %s %v: %v", bin, args, err)
	}
	return r
}

// Proc is a long-running process of the world, such as `rotator run`.
type Proc struct {
	w    *World
	cmd  *exec.Cmd
	out  *proctest.Buffer // stdout and stderr together
	done chan struct{}
	code int
	// Addr is the ops listener's address (ROTATOR_HTTP_ADDR), empty when it has none.
	Addr string
	// stdout is stdout alone, for processes whose stdout has a format of its own (the Lambda's
	// JSON lines).
	stdout *proctest.Buffer
}

// Daemon starts `rotator run` (the test build) on a one-second schedule with debug logs and an
// ops listener on a free loopback port, plus env, and waits until the listener answers /healthz.
// Setting ROTATOR_HTTP_ADDR= in env starts it without a listener (and without waiting). The
// process is killed when the test ends, if it still runs.
func (w *World) Daemon(env ...string) *Proc {
	w.T.Helper()
	return w.Start(proctest.TestRotator(w.T), append([]string{"ROTATOR_SCHEDULE=@every 1s", "LOG_LEVEL=debug"}, env...), "run")
}

// Start starts bin with args and the world's environment plus env, with an ops listener address
// (unless env sets ROTATOR_HTTP_ADDR), and waits for /healthz when there is a listener. The
// listener binds port 0 and the address is read from the daemon's "daemon started" line.
func (w *World) Start(bin string, env []string, args ...string) *Proc {
	w.T.Helper()
	p := &Proc{w: w, out: &proctest.Buffer{}, stdout: &proctest.Buffer{}, done: make(chan struct{})}
	explicit := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "ROTATOR_HTTP_ADDR="); ok {
			p.Addr, explicit = v, true
		}
	}
	if !explicit {
		// Port 0: the kernel picks a free port when the process binds, and the daemon logs it.
		// Picking one here and releasing it for the process to bind would race other tests.
		p.Addr = "127.0.0.1:0"
		env = append(env, "ROTATOR_HTTP_ADDR="+p.Addr)
	}
	w.RecordFrom(p.out)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = w.Env(env...)
	p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(p.out, p.stdout), p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		w.T.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	w.T.Cleanup(p.Kill)
	if strings.HasSuffix(p.Addr, ":0") {
		p.Await("the daemon's ops listener address", 15*time.Second, func() bool {
			addr := p.LoggedAttr("daemon started", "http_addr")
			if addr == "" {
				addr = p.LoggedAttr("gateway started", "http_addr") // rotator gateway
			}
			if addr != "" {
				p.Addr = addr
			}
			return addr != ""
		})
	}
	if p.Addr != "" {
		p.Await("the ops listener", 15*time.Second, func() bool { code, _ := p.Get("/healthz"); return code == http.StatusOK })
	}
	return p
}

// Kill kills the process, if it still runs, and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Pid is the process's id, for what only the operating system tells about it (its resident
// memory in /proc/<pid>/status, for the footprint benchmark).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Output is what the process has written so far, stdout and stderr together.
func (p *Proc) Output() string { return p.out.String() }

// Stdout is what the process has written to stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Await polls cond every 20 ms until it holds; it fails the test after timeout, or if the
// process exits first.
func (p *Proc) Await(what string, timeout time.Duration, cond func() bool) {
	p.w.T.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			p.w.T.Fatalf("the process exited (status %d) while waiting for %s:\n%s", p.code, what, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			p.w.T.Fatalf("waited %s for %s:\n%s", timeout, what, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var opsClient = &http.Client{Timeout: 2 * time.Second}

// Get fetches path from the ops listener; the status is 0 (and the body the error) when it does
// not answer.
func (p *Proc) Get(path string) (int, string) {
	resp, err := opsClient.Get("http://" + p.Addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Metric returns one sample's value from /metrics, or "" when it is absent.
func (p *Proc) Metric(series string) string {
	_, body := p.Get("/metrics")
	return Sample(body, series)
}

// Stop sends sig and returns the exit status, failing the test if the process outlives timeout.
func (p *Proc) Stop(sig os.Signal, timeout time.Duration) int {
	p.w.T.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.w.T.Fatal(err)
	}
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.w.T.Fatalf("the process did not exit within %s of %s:\n%s", timeout, sig, p.Output())
		return -1
	}
}

// Signal sends sig without waiting.
func (p *Proc) Signal(sig os.Signal) {
	p.w.T.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.w.T.Fatal(err)
	}
}

// Logged reports whether a JSON log line has msg as its message.
func (p *Proc) Logged(msg string) bool {
	_, ok := p.record(msg)
	return ok
}

// LoggedAttr returns the string attribute key of the first JSON log line whose message is msg, or
// "" when there is none yet.
func (p *Proc) LoggedAttr(msg, key string) string {
	rec, _ := p.record(msg)
	v, _ := rec[key].(string)
	return v
}

// LoggedValue returns attribute key of the first JSON log line whose message is msg, as JSON
// decoded it (a number is a float64), or nil.
func (p *Proc) LoggedValue(msg, key string) any {
	rec, _ := p.record(msg)
	return rec[key]
}

func (p *Proc) record(msg string) (map[string]any, bool) {
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			return rec, true
		}
	}
	return nil, false
}
