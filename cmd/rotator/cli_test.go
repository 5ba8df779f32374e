package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// zeros is an endless answer, as `rotator revoke < /dev/zero` gives (a character device, so it
// passes for a terminal): it counts what was read of it.
type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n > 64<<20 {
		return 0, errors.New("read 64 MiB of an endless answer")
	}
	clear(p)
	z.n += len(p)
	return len(p), nil
}

// The answer to revoke's question is read up to a line's worth, not without bound (an audit).
func TestConfirmReadsALineAtMost(t *testing.T) {
	z := &zeros{}
	var prompt bytes.Buffer
	if err := confirm(z, true, &prompt, []string{"erp"}); err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Errorf("err = %v, want not confirmed", err)
	}
	if z.n > 4<<10 {
		t.Errorf("read %d bytes of the answer", z.n)
	}
}

func TestConfirm(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		terminal  bool
		wantErr   string // "" for confirmed
		wantCode  int
		wantAsked bool
	}{
		{"no terminal", "yes\n", false, "revoke needs --yes when stdin is not a terminal", 2, false},
		{"yes", "yes\n", true, "", 0, true},
		{"yes without newline", "yes", true, "", 0, true},
		{"yes with spaces", "  yes \n", true, "", 0, true},
		{"no", "no\n", true, `not confirmed (answer "no"`, 1, true},
		{"Yes is not yes", "Yes\n", true, "not confirmed", 1, true},
		{"y is not yes", "y\n", true, "not confirmed", 1, true},
		{"end of input", "", true, "no answer (end of input); nothing was revoked", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prompt bytes.Buffer
			err := confirm(strings.NewReader(tc.in), tc.terminal, &prompt, []string{"erp-a", "erp-b"})
			asked := strings.Contains(prompt.String(), "Type yes to continue")
			if asked != tc.wantAsked || (asked && !strings.Contains(prompt.String(), "erp-a, erp-b")) {
				t.Errorf("prompt = %q", prompt.String())
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var stderr bytes.Buffer
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if code := exitCode(err, &stderr); code != tc.wantCode {
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			if tc.wantCode == 2 && !strings.Contains(stderr.String(), "Run 'rotator revoke --help'") {
				t.Errorf("no hint: %q", stderr.String())
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for name, in := range map[string]any{"pipe": r, "/dev/null": null, "reader": strings.NewReader("yes\n")} {
		if isTerminal(in.(interface{ Read([]byte) (int, error) })) {
			t.Errorf("%s counts as a terminal", name)
		}
	}
}

// runCLI runs the command line in-process, with exitCode's printing, as main does.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, envList(env), strings.NewReader(""), &out, &errOut)
	code = exitCode(err, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != 0 || stderr != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
			}
			for _, want := range []string{"usage: rotator " + c.name, "Flags:", "--help", "Environment:", "CLEAR_BASE_URL",
				"ROTATOR_TOKEN_SECRET_ID", "CLEAR_CLIENT_SECRET_ID_2", "Example:\n  ", "Exit status:\n  0"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("%v: help lacks %q:\n%s", args, want, stdout)
				}
			}
			if strings.Contains(stdout, " -client") || strings.Contains(stdout, " -force") {
				t.Errorf("%v: single-dash flags in help:\n%s", args, stdout)
			}
			if daemonVar := strings.Contains(stdout, "\n  ROTATOR_SCHEDULE "); daemonVar != c.daemon {
				t.Errorf("%v: shows ROTATOR_SCHEDULE = %v", args, daemonVar)
			}
		}
	}
	_, stdout, _ := runCLI(t, nil, "rotate", "--help")
	for _, want := range []string{"--client NAME", "--force", "--json"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("rotate help lacks %q", want)
		}
	}
	code, stdout, stderr := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(stdout, "revoke") || stderr != "" {
		t.Errorf("overview: %d %q %q", code, stdout, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		hint string
	}{
		{[]string{"statsu"}, `unknown command "statsu"; did you mean status?`, "Run 'rotator --help' for the commands."},
		{[]string{"help", "rotat"}, `did you mean rotate?`, "Run 'rotator --help'"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "Run 'rotator --help'"},
		{[]string{"status", "--force"}, "status does not take the flag --force", "Run 'rotator status --help' for usage."},
		{[]string{"rotate", "--forse"}, "rotate does not take the flag --forse; did you mean --force?", "Run 'rotator rotate --help'"},
		{[]string{"rotate", "-jsn"}, "did you mean --json?", "Run 'rotator rotate --help'"},
		{[]string{"check", "--client", "a"}, "check does not take the flag --client", "Run 'rotator check --help'"},
		{[]string{"run", "--client", "a"}, "run does not take the flag --client; it takes no flags", "Run 'rotator run --help'"},
		{[]string{"rotate", "--client"}, "flag --client needs a value", "Run 'rotator rotate --help'"},
		// An empty name (a script's --client "$NAME" with NAME unset) is not "every client": revoke
		// --yes or rotate --force would act on all of them.
		{[]string{"revoke", "--yes", "--client="}, "--client needs a client's name; leave the flag out for every client", "Run 'rotator revoke --help'"},
		{[]string{"rotate", "--force", "--client", " "}, "--client needs a client's name", "Run 'rotator rotate --help'"},
		{[]string{"status", "--client", ""}, "--client needs a client's name", "Run 'rotator status --help'"},
		{[]string{"rotate", "--json=maybe"}, `invalid boolean value "maybe" for --json`, "Run 'rotator rotate --help'"},
		{[]string{"status", "extra"}, `status takes no arguments, but got "extra"`, "Run 'rotator status --help'"},
		{[]string{"revoke", "--yse"}, "did you mean --yes?", "Run 'rotator revoke --help'"},
	} {
		code, stdout, stderr := runCLI(t, nil, tc.args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", tc.args, code, stdout)
		}
		if strings.Count(stderr, tc.want) != 1 || !strings.Contains(stderr, tc.hint) {
			t.Errorf("%v: stderr should have %q once and the hint %q:\n%s", tc.args, tc.want, tc.hint, stderr)
		}
		if strings.Count(stderr, "\n") != 2 {
			t.Errorf("%v: error and hint should be two lines:\n%s", tc.args, stderr)
		}
	}
}

func TestEnvList(t *testing.T) {
	e := envList{"A=1", "B=", "A=2", "C"}
	if v, ok := e.Lookup("A"); v != "2" || !ok {
		t.Errorf("A = %q %v", v, ok)
	}
	if v, ok := e.Lookup("B"); v != "" || !ok {
		t.Errorf("B = %q %v", v, ok)
	}
	if _, ok := e.Lookup("C"); ok {
		t.Error("C without = is set")
	}
	if !errors.Is(nil, nil) || len(e.Environ()) != 4 {
		t.Error("Environ")
	}
}

// countingEnv counts the lookups of one variable.
type countingEnv struct {
	envList
	name string
	n    int
}

func (e *countingEnv) Lookup(name string) (string, bool) {
	if name == e.name {
		e.n++
	}
	return e.envList.Lookup(name)
}

// Issue 16 item 6: `rotator run` loads the configuration once at start, as every other command
// does. It loaded it twice: once to refuse a broken one, and again in the daemon's Load.
func TestRunLoadsTheConfigurationOnce(t *testing.T) {
	// The AWS SDK reads the process environment. Nothing reaches it: the daemon is stopped before
	// its first check.
	for _, kv := range []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL=http://127.0.0.1:1"} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	vars := envList{"CLEAR_BASE_URL=https://api-sandbox.clear.in", "CLEAR_CLIENT_SECRET_ID=clear/cs",
		"ROTATOR_TOKEN_SECRET_ID=clear/token", "ROTATOR_HTTP_ADDR=127.0.0.1:0"}
	once := &countingEnv{envList: vars, name: "ROTATOR_TOKEN_SECRET_ID"}
	if _, err := config.Load(once.Lookup); err != nil {
		t.Fatal(err)
	}
	env := &countingEnv{envList: vars, name: "ROTATOR_TOKEN_SECRET_ID"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"run"}, env, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	if env.n != once.n {
		t.Errorf("run looked ROTATOR_TOKEN_SECRET_ID up %d times; one load of the configuration does %d times", env.n, once.n)
	}
}

// TestRelative: the status table's times. Ten to fifty seconds lost their unit and tens ("in 10s"
// was "in 1", "20s ago" was "2 ago"), and under a second nothing was left ("token lost  ago"):
// the "0s" trimmed from "5m0s" was trimmed from "10s" and "0s" too.
func TestRelative(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0:                          "in 0s",
		300 * time.Millisecond:     "in 0s",
		-300 * time.Millisecond:    "0s ago",
		10 * time.Second:           "in 10s",
		-20 * time.Second:          "20s ago",
		45 * time.Second:           "in 45s",
		-50 * time.Second:          "50s ago",
		time.Minute:                "in 1m",
		90 * time.Second:           "in 2m",
		-10 * time.Minute:          "10m ago",
		time.Hour + 30*time.Second: "in 1h1m",
		20 * time.Hour:             "in 20h0m",
	} {
		if got := relative(now.Add(d), now); got != want {
			t.Errorf("relative(now%+v) = %q, want %q", d, got, want)
		}
	}
}

// TestBlockedColumn: the status table's BLOCKED says why and until when. A block with an end read
// "daily limit until in 8h51m"; it names the time, and how far off it is.
func TestBlockedColumn(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 9, 0, 0, time.UTC)
	midnight := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	reason := "daily limit"
	unauthorized := "unauthorized: clear: HTTP 401 CLI-SEC-002"
	lastError := "API client 1: clear: HTTP 401 CLI-SEC-002"
	for _, tc := range []struct {
		s    rotation.Status
		want string
	}{
		{rotation.Status{State: rotation.HealthLimited, BlockedReason: &reason, BlockedUntil: &midnight}, "daily limit until 2026-12-03T00:00:00Z (in 8h51m)"},
		{rotation.Status{State: rotation.HealthBlocked, BlockedReason: &unauthorized}, unauthorized + " (until the client secret changes)"},
		// LAST_ERROR shows Clear's answer already: BLOCKED names the block alone, so that a line
		// does not carry the answer twice (250 columns wrapped in a terminal; an audit's walk-through).
		{rotation.Status{State: rotation.HealthBlocked, BlockedReason: &unauthorized, LastError: &lastError}, "unauthorized (until the client secret changes)"},
		{rotation.Status{State: rotation.HealthOK}, "-"},
		{rotation.Status{State: rotation.HealthUnknown}, "?"},
	} {
		if got := blocked(tc.s, now); got != tc.want {
			t.Errorf("blocked = %q, want %q", got, tc.want)
		}
	}
}

// version takes --json, as every command does (an audit's walk-through: "version takes no
// arguments").
func TestVersionJSON(t *testing.T) {
	var out bytes.Buffer
	if ok, err := builtin("version", []string{"--json"}, &out); !ok || err != nil {
		t.Fatalf("version --json: %v", err)
	}
	var v struct{ Version, Go string }
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("version --json printed %q (%v)", out.String(), err)
	}
}
