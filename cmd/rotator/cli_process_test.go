package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// These tests run the built binary, as operators do, for what the command-line framework prints:
// help, usage errors, warnings about unknown variables, and configuration refusals.

func TestProcessHelpOnStdout(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	for _, args := range [][]string{{"rotate", "--help"}, {"help", "rotate"}, {"run", "--help"}, {"check", "--help"}, {"status", "-h"}, {"revoke", "--help"}} {
		r := w.Rotator(args...)
		if r.Code != 0 || r.Stderr != "" || !strings.Contains(r.Stdout, "usage: rotator "+args[len(args)-1]) && !strings.Contains(r.Stdout, "usage: rotator "+args[0]) {
			t.Fatalf("%v: exit %d\n%s", args, r.Code, r.Output())
		}
		for _, want := range []string{"--help", "Environment:", "Example:", "Exit status:"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("%v: help lacks %q", args, want)
			}
		}
	}
	if w.ClearRequests() != 0 {
		t.Fatal("help called Clear")
	}
}

func TestProcessUsageErrorPrintsOnce(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	for _, tc := range []struct {
		args       []string
		want, hint string
	}{
		{[]string{"statsu"}, "did you mean status?", "rotator --help"},
		{[]string{"rotate", "--forse"}, "did you mean --force?", "rotator rotate --help"},
		{[]string{"status", "--force"}, "status does not take the flag --force", "rotator status --help"},
	} {
		r := w.Rotator(tc.args...)
		if r.Code != 2 || r.Stdout != "" || strings.Count(r.Stderr, tc.want) != 1 || !strings.Contains(r.Stderr, tc.hint) ||
			strings.Count(r.Stderr, "\n") != 2 {
			t.Errorf("%v: exit %d\n%s", tc.args, r.Code, r.Output())
		}
	}
}

// TestProcessUnknownVariables: typos in variable names used to pass in silence.
func TestProcessUnknownVariables(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	typos := []string{"ROTATOR_DAILY_LIMT=100", "CLEAR_TIMOUT=5s"}
	r := rotatorEnv(w, typos, "check")
	wantCode(t, r, 0, "warning: unknown environment variable ROTATOR_DAILY_LIMT is ignored; did you mean ROTATOR_DAILY_LIMIT?")
	wantCode(t, r, 0, "warning: unknown environment variable CLEAR_TIMOUT is ignored; did you mean CLEAR_TIMEOUT?")
	for _, cmd := range [][]string{{"check"}, {"status"}, {"rotate"}} {
		r := rotatorEnv(w, typos, cmd...)
		if !strings.Contains(r.Stderr, `"msg":"unknown environment variable CLEAR_TIMOUT is ignored; did you mean CLEAR_TIMEOUT?"`) ||
			strings.Count(r.Stderr, "ROTATOR_DAILY_LIMT is ignored") != 1 {
			t.Errorf("%v: no warning in the log:\n%s", cmd, r.Stderr)
		}
	}
	// The warning also comes when the typo is why the configuration is refused.
	r = rotatorEnv(w, []string{"CLEAR_BASE_URL=", "CLEAR_BASE_ULR=https://x.example.com"}, "check")
	wantCode(t, r, 2, "CLEAR_BASE_URL is not set")
	wantCode(t, r, 2, "did you mean CLEAR_BASE_URL?")
}

func TestProcessRevokeNeedsYesWithoutTerminal(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	// exec.Cmd gives the child /dev/null as stdin, as cron does: not a terminal.
	r := w.Rotator("revoke")
	wantCode(t, r, 2, "revoke needs --yes when stdin is not a terminal")
	wantCode(t, r, 2, "Run 'rotator revoke --help' for usage.")
	cmd := exec.Command(proctest.TestRotator(t), "revoke", "--client", "default")
	cmd.Env = w.Env()
	cmd.Stdin = strings.NewReader("yes\n") // a pipe: nobody typed this
	out, err := cmd.CombinedOutput()
	w.Record(string(out))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "needs --yes") {
		t.Errorf("revoke from a pipe: %v\n%s", err, out)
	}
	if w.ClearRequests() != 0 {
		t.Fatal("a refused revoke called Clear")
	}
}

// TestProcessConfigurationRefusals covers settings that used to be accepted: each is refused at
// start-up with exit status 2, without calling Clear, and without echoing what it must not.
func TestProcessConfigurationRefusals(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	// The release build: its rotation floor is the minute the refusals quote.
	release := proctest.Build(t, "./cmd/rotator", "ROTATOR_BIN")
	fifo := filepath.Join(t.TempDir(), "clients.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	const user, pw, query = "alice-user-7q", "pw-9x7z3k", "k=v-key-5j2"
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"ROTATOR_SCHEDULE=0 0 30 2 *"}, "never fires"},
		{[]string{"ROTATOR_CONFIG=" + fifo}, "a named pipe (FIFO), not a regular file"},
		{[]string{"ROTATOR_SHUTDOWN_GRACE=2s"}, "ROTATOR_SHUTDOWN_GRACE 2s is below 1m0s"},
		{[]string{"ROTATOR_MAX_AGE=1s"}, "ROTATOR_MAX_AGE 1s is below 1m0s"},
		{[]string{"ROTATOR_MAX_AGE=10m"}, "144 rotations a day"},
		{[]string{"CLEAR_BASE_URL=https://" + user + ":" + pw + "@host.example.com/?" + query, "CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=clear/cs"},
			"must not contain a user name or password"},
		{[]string{"CLEAR_BASE_URL=https://host.example.com/?" + query, "CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=clear/cs"}, "query"},
		{[]string{"CLEAR_CLIENT_SECRET_2=" + w.Secrets[0]}, "CLEAR_CLIENT_SECRET_2 is the same client secret as this client's CLEAR_CLIENT_SECRET"},
	} {
		for _, cmd := range []string{"check", "run"} {
			r := w.RunEnv(release, tc.env, cmd)
			wantCode(t, r, 2, tc.want)
			for _, s := range []string{user, pw, query} {
				if strings.Contains(r.Stdout+r.Stderr, s) {
					t.Errorf("%v: output echoes %q:\n%s", tc.env, s, r.Stderr)
				}
			}
		}
	}
	if w.ClearRequests() != 0 {
		t.Fatal("a refused configuration called Clear")
	}
}

// TestProcessEveryCommandHasHelp: every command the overview lists has its help, both as `rotator
// help X` and as `rotator X --help` (README: "rotator help COMMAND (or COMMAND --help)"). version
// and help had none: `rotator help version` answered `unknown command "version"; did you mean
// version?`, and `rotator version --help` pointed at itself ("Run 'rotator version --help'").
func TestProcessEveryCommandHasHelp(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	r := w.Rotator("--help")
	if r.Code != 0 {
		t.Fatalf("rotator --help: exit %d\n%s", r.Code, r.Output())
	}
	_, list, _ := strings.Cut(r.Stdout, "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	if len(names) < 8 {
		t.Fatalf("the overview lists %v:\n%s", names, r.Stdout)
	}
	for _, name := range names {
		for _, args := range [][]string{{"help", name}, {name, "--help"}, {name, "-h"}} {
			r := w.Rotator(args...)
			if r.Code != 0 || r.Stderr != "" || !strings.HasPrefix(r.Stdout, "usage: rotator "+name) ||
				!strings.Contains(r.Stdout, "Exit status:\n  0") {
				t.Errorf("%v: exit %d\n%s", args, r.Code, r.Output())
			}
		}
	}
	if w.ClearRequests() != 0 {
		t.Fatal("help called Clear")
	}
}
