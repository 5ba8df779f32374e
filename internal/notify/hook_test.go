package notify

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		`/bin/reload-erp`:                    {"/bin/reload-erp"},
		`  a   b	c  `:                        {"a", "b", "c"},
		`sh -c 'echo "$X" | tee /tmp/y'`:     {"sh", "-c", `echo "$X" | tee /tmp/y`},
		`x "a b" "c\"d" "e\\f" "g\h"`:        {"x", "a b", `c"d`, `e\f`, `g\h`},
		`x a\ b \'q`:                         {"x", "a b", "'q"},
		`x ''`:                               {"x", ""},
		`x a"b c"d`:                          {"x", "ab cd"},
		`/opt/hooks/push\ token.sh --client`: {"/opt/hooks/push token.sh", "--client"},
	} {
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", `x 'open`, `x "open`, `x \`} {
		if got, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHookEnvDropsTheSecrets(t *testing.T) {
	t.Parallel()
	parent := []string{"PATH=/bin", "CLEAR_CLIENT_SECRET=s1", "CLEAR_CLIENT_SECRET_2=s2", "ROTATOR_WEBHOOK_SECRET=w",
		"CLEAR_ROTATOR_VERSION_ID=forged", "CLEAR_CLIENT_SECRET_ID=arn:x", "HOME=/root"}
	env := HookEnv(parent, []string{"CLEAR_CLIENT_SECRET", "CLEAR_CLIENT_SECRET_2", "ROTATOR_WEBHOOK_SECRET"}, NewEvent("acme", "arn:tok", "v9", token(), Revoke))
	joined := strings.Join(env, "\n")
	for _, bad := range []string{"=s1", "=s2", "ROTATOR_WEBHOOK_SECRET=", "forged"} {
		if strings.Contains(joined, bad) {
			t.Errorf("env has %q:\n%s", bad, joined)
		}
	}
	for _, want := range []string{"PATH=/bin", "HOME=/root", "CLEAR_CLIENT_SECRET_ID=arn:x", "CLEAR_ROTATOR_CLIENT=acme",
		"CLEAR_ROTATOR_SECRET_ID=arn:tok", "CLEAR_ROTATOR_VERSION_ID=v9", "CLEAR_ROTATOR_VALID_TILL=2026-12-03T10:00:00Z",
		"CLEAR_ROTATOR_API_CLIENT=2", "CLEAR_ROTATOR_REASON=revoke", "CLEAR_ROTATOR_ISSUED_AT=2026-12-02T10:00:00Z",
		"CLEAR_ROTATOR_EVENT_ID=msg_"} {
		if !strings.Contains(joined, want) {
			t.Errorf("env lacks %q", want)
		}
	}
}

func TestHookRunsWithTheEventAndOptionallyTheToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, stdin := range []bool{false, true} {
		var log bytes.Buffer
		h := &Hook{Args: []string{"sh", "-c", `{ echo "$CLEAR_ROTATOR_VERSION_ID"; cat; } > "$0"; cat "$0"`, out},
			Stdin: stdin, Env: os.Environ(), Log: slog.New(slog.NewTextHandler(&log, nil))}
		v, err := h.attempt(t.Context(), NewEvent("acme", "tok", "v7", token(), Scheduled))
		if v != Delivered || err != nil {
			t.Fatalf("stdin=%v: %s, %v", stdin, v, err)
		}
		b, _ := os.ReadFile(out)
		if !strings.HasPrefix(string(b), "v7\n") {
			t.Fatalf("the hook saw %q", b)
		}
		if got := strings.Contains(string(b), `"access_token":"`+testToken+`"`); got != stdin {
			t.Fatalf("stdin=%v: the hook's input %q", stdin, b)
		}
		if strings.Contains(log.String(), testToken) {
			t.Fatalf("the token reached the log:\n%s", log.String())
		}
		if stdin && !strings.Contains(log.String(), "[REDACTED]") {
			t.Fatalf("the hook's output was not logged:\n%s", log.String())
		}
	}
}

func TestHookFailures(t *testing.T) {
	t.Parallel()
	ev := NewEvent("acme", "tok", "v7", token(), Scheduled)
	for name, tc := range map[string]struct {
		args []string
		want Verdict
	}{
		"non-zero exit": {[]string{"sh", "-c", "exit 3"}, Retry},
		"timeout":       {[]string{"sh", "-c", "sleep 30 & sleep 30"}, Retry},
		"not found":     {[]string{"/nonexistent/hook"}, GiveUp},
	} {
		h := &Hook{Args: tc.args, Timeout: 300 * time.Millisecond}
		start := time.Now()
		v, err := h.attempt(t.Context(), ev)
		if v != tc.want || err == nil {
			t.Errorf("%s: %s, %v; want %s", name, v, err, tc.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %s: the timeout did not end the command's children", name, took)
		}
	}
}

func TestCappedOutputKeepsWholeLines(t *testing.T) {
	t.Parallel()
	var c capped
	c.Write([]byte(strings.Repeat("x", maxOutput-10) + "\n" + testToken[:5]))
	c.Write([]byte(testToken[5:] + strings.Repeat("y", 100)))
	if strings.Contains(c.String(), testToken[:5]) {
		t.Fatalf("part of a token survived the cap")
	}
}

// A hook that starts something in the background and exits 0 (`reload-erp &`, a service it
// restarts) has succeeded, though the child it left still holds its output open: the README retries
// a non-zero exit or a timeout, not a success.
func TestHookThatExitsZeroLeavingAChildIsDelivered(t *testing.T) {
	t.Parallel()
	h := &Hook{Args: []string{"sh", "-c", "sleep 3 & echo started"}, Timeout: 10 * time.Second}
	start := time.Now()
	v, err := h.attempt(t.Context(), NewEvent("acme", "tok", "v7", token(), Scheduled))
	if v != Delivered || err != nil {
		t.Fatalf("%s, %v; want delivered", v, err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("took %s: the attempt waited for the background child", took)
	}
	// The same when the time limit passes while the rotator waits for the child's output: the
	// command itself exited 0 within it.
	h = &Hook{Args: []string{"sh", "-c", "sleep 4 & sleep 1; echo done"}, Timeout: 1500 * time.Millisecond}
	if v, err := h.attempt(t.Context(), NewEvent("acme", "tok", "v7", token(), Scheduled)); v != Delivered || err != nil {
		t.Fatalf("exit 0 within the time limit: %s, %v; want delivered", v, err)
	}
}

func TestHookOutputIsRedactedOfThePreviousToken(t *testing.T) {
	t.Parallel()
	const previous = "prev-0123456789-still-live"
	var log bytes.Buffer
	h := &Hook{Args: []string{"sh", "-c", "echo replacing " + previous}, Log: slog.New(slog.NewTextHandler(&log, nil))}
	ev := NewEvent("acme", "tok", "v7", token(), Scheduled)
	ev.Previous = clear.NewAccessToken(previous)
	if v, err := h.attempt(t.Context(), ev); v != Delivered {
		t.Fatalf("%s, %v", v, err)
	}
	if strings.Contains(log.String(), previous) || !strings.Contains(log.String(), "replacing [REDACTED]") {
		t.Fatalf("the log:\n%s", log.String())
	}
}

// A hook that runs past its time limit, whose delivery is superseded by a newer token (its context
// ended), or that fails, is killed with everything it started: a child left running in the
// background (`reload-erp &` gone wrong) would otherwise outlive the attempt, and the retries would
// pile them up. The child here has let go of the output, so only the process-group kill ends it.
func TestHookIsKilledWithItsChildren(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"timeout", "superseded", "failed"} {
		pidFile := filepath.Join(t.TempDir(), "pid")
		h := &Hook{Args: []string{"sh", "-c", `sleep 60 >/dev/null 2>&1 & echo $! > "$0"; sleep 60`, pidFile},
			Timeout: 500 * time.Millisecond}
		ctx, cancel := context.WithCancel(t.Context())
		switch how {
		case "superseded":
			h.Timeout = time.Minute
			time.AfterFunc(500*time.Millisecond, cancel)
		case "failed":
			h.Args[2], h.Timeout = `sleep 60 >/dev/null 2>&1 & echo $! > "$0"; exit 3`, time.Minute
		}
		v, err := h.attempt(ctx, NewEvent("acme", "tok", "v7", token(), Scheduled))
		cancel()
		if v != Retry || err == nil {
			t.Fatalf("%s: %s, %v; want a retry", how, v, err)
		}
		b, _ := os.ReadFile(pidFile)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil {
			t.Fatalf("%s: the hook wrote no child pid: %q", how, b)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !gone(pid) {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("%s: the hook's background child %d outlived the attempt", how, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// gone reports whether the process pid has ended: it no longer exists, or it is a zombie (its
// parent, the hook's shell, is gone, and nothing here reaps what is re-parented).
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command's name in parentheses: "pid (comm) S ...".
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

// TestHookCheckFindsWhatAnAttemptGivesUpOn: Check fails on the programs an attempt gives up on at
// once (missing, not executable, a directory), and only on those, without running anything.
func TestHookCheckFindsWhatAnAttemptGivesUpOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "hook")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+ran+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if path, err := (&Hook{Args: []string{script, "--x"}}).Check(); err != nil || path != script {
		t.Fatalf("Check(%s) = %q, %v", script, path, err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("Check ran the command")
	}
	for _, prog := range []string{filepath.Join(dir, "missing"), plain, dir, "no-such-hook-program"} {
		_, err := (&Hook{Args: []string{prog}}).Check()
		if err == nil || !strings.HasPrefix(err.Error(), "the hook command cannot be run: ") {
			t.Errorf("Check(%s) = %v", prog, err)
			continue
		}
		// An attempt gives up on the same program.
		v, aerr := (&Hook{Args: []string{prog}, Timeout: 5 * time.Second}).attempt(context.Background(), Event{})
		if v != GiveUp || aerr == nil || !strings.HasPrefix(aerr.Error(), "the hook command cannot be run: ") {
			t.Errorf("attempt(%s) = %v, %v; Check said %v", prog, v, aerr, err)
		}
	}
}

// The hook's output is logged without the secrets the rotator was given (Hide: the configured
// client secrets, signing secret and gateway key), in any spelling the one redactor knows, as well
// as without the tokens: a hook that prints its environment or what it fetched would otherwise
// carry them into the rotator's log (an audit's walk-through).
func TestHookOutputIsRedactedOfTheConfiguredSecrets(t *testing.T) {
	t.Parallel()
	const cs, whsec = "sec-ABCDEFGHIJKLMNOPQRSTUV1234", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var log bytes.Buffer
	h := &Hook{Args: []string{"sh", "-c", "echo cs=" + cs + "; echo whsec=" + whsec}, Hide: []string{cs, whsec},
		Log: slog.New(slog.NewTextHandler(&log, nil))}
	if v, err := h.attempt(t.Context(), NewEvent("acme", "tok", "v7", token(), Scheduled)); v != Delivered {
		t.Fatalf("%s, %v", v, err)
	}
	if strings.Contains(log.String(), cs) || strings.Contains(log.String(), whsec) || !strings.Contains(log.String(), "cs=[REDACTED]") {
		t.Fatalf("the log:\n%s", log.String())
	}
}
