package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "0.0.0.0:0"},
		{"-addr", ":0"},
		{"-addr", "example.com:80"},
		{"-addr", "127.0.0.1"},
		{"-lifetime", "-1h"},
		{"-lifetime", "soon"},
		{"-daily-limit", "0"},
		{"-fixed-valid-till", "tomorrow"},
		{"-fixed-valid-till", "2030-01-02"},
		{"-nope"},
		{"extra"},
	} {
		err := run(context.Background(), args, io.Discard)
		if _, ok := errors.AsType[usageError](err); !ok {
			t.Errorf("run %q: %v, want a usage error", args, err)
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h: %v, want flag.ErrHelp", err)
	}
}

// readAddr reads the "listening on" line and returns the base URL it announces.
func readAddr(t *testing.T, r io.Reader) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		base, ok := strings.CutPrefix(strings.TrimSuffix(s, "\n"), "listening on ")
		if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("first line %q, want listening on http://127.0.0.1:PORT", s)
		}
		return base
	case <-time.After(30 * time.Second):
		t.Fatal("no listening line")
	}
	return ""
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-secret", "s1", "-lifetime", "0"}, w) }()
	base := readAddr(t, r)
	c, err := clear.NewClient(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.Token(context.Background(), clear.NewClientSecret("s1"))
	if err != nil || g.ValidTill != nil {
		t.Fatalf("token: valid_till %v, %v", g.ValidTill, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestRunHardeningFlags: -fixed-valid-till gives every token the same valid_till, and
// -retry-after puts Retry-After on the daily limit's 429.
func TestRunHardeningFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-secret", "s1", "-daily-limit", "2", "-retry-after", "-fixed-valid-till", "2030-01-02T03:04:05Z"}, w)
	}()
	base := readAddr(t, r)
	c, err := clear.NewClient(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		g, err := c.Token(context.Background(), clear.NewClientSecret("s1"))
		if err != nil || g.ValidTill == nil || g.ValidTill.Format(time.RFC3339) != "2030-01-02T03:04:05Z" {
			t.Fatalf("token: valid_till %v, %v", g.ValidTill, err)
		}
	}
	_, err = c.Token(context.Background(), clear.NewClientSecret("s1"))
	var ce *clear.Error
	if !errors.As(err, &ce) || ce.Kind != clear.KindRateLimited || ce.RetryAfter <= 0 || ce.RetryAfter > 24*time.Hour {
		t.Fatalf("over the limit: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// built is the command compiled once for every process test of this binary: each build is a
// link of several seconds on a loaded machine, and the tests only run it.
var built struct {
	once sync.Once
	bin  string
	err  error
}

// build compiles the command into a temporary directory, once per test binary; TestMain removes it.
func build(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			built.err = errors.New("no go command to build the binary with: the process test must not be skipped")
			return
		}
		dir, err := os.MkdirTemp("", "clear-emulator-test-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "clear-emulator")
		if out, err := exec.Command(goCmd, "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.bin != "" {
		os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}

func TestProcess(t *testing.T) {
	t.Parallel()
	bin := build(t)

	cmd := exec.Command(bin, "-secret", "s1", "-daily-limit", "5")
	cmd.Env = append(os.Environ(), "CLEAR_EMULATOR_SECRETS=s2, s3")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // in case the test fails before SIGTERM
	base := readAddr(t, stdout)

	c, err := clear.NewClient(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s1", "s3"} {
		g, err := c.Token(context.Background(), clear.NewClientSecret(s))
		if err != nil {
			t.Fatalf("token for %s: %v", s, err)
		}
		if g.ValidTill == nil || time.Until(*g.ValidTill) < 59*time.Minute {
			t.Errorf("valid_till %v, want in about an hour", g.ValidTill)
		}
	}
	if _, err := c.Token(context.Background(), clear.NewClientSecret("s4")); err == nil {
		t.Error("an unknown secret got a token")
	}

	// A request held by a Hang fault must not hold up the shutdown.
	resp, err := http.Post(base+"/_emulator/faults", "application/json", strings.NewReader(`[{"hang":true}]`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST faults: %v %v", resp, err)
	}
	resp.Body.Close()
	hung := make(chan error, 1)
	go func() {
		_, err := c.Token(context.Background(), clear.NewClientSecret("s2"))
		hung <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach the fault

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit 10s after SIGTERM")
	}
	if err := <-hung; err == nil {
		t.Error("the hung request got a token")
	}
}

func TestProcessBadFlag(t *testing.T) {
	t.Parallel()
	bin := build(t)
	err := exec.Command(bin, "-addr", "0.0.0.0:0").Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 2 {
		t.Errorf("exit: %v, want status 2", err)
	}
}
