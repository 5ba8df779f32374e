package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// Process tests of hostile and malformed configurations (issue 19 items 6, 7 and 14), through the
// built binary as an operator or an attacker who controls a file or a variable meets it.

// hostileFiles are configuration files of about 100 KB that used to cost seconds of CPU (a merge
// bomb) or all the memory there is (aliases of a mapping with 10,000 unknown keys).
func hostileFiles(t *testing.T) map[string]string {
	var merge, alias strings.Builder
	merge.WriteString("clients:\n  - &e {}\n")
	for range 3000 {
		merge.WriteString("  - {<<: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]}\n")
	}
	alias.WriteString("clients:\n  - &m {")
	for i := range 9999 {
		fmt.Fprintf(&alias, "k%d: 1, ", i)
	}
	alias.WriteString("name: x}\n")
	for range 3000 {
		alias.WriteString("  - *m\n")
	}
	dir := t.TempDir()
	files := map[string]string{}
	for name, data := range map[string]string{"merge.yaml": merge.String(), "alias.yaml": alias.String()} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = path
	}
	return files
}

// TestProcessHostileConfiguration: `rotator check` refuses each hostile file at once, in a few
// lines, with one clear message.
func TestProcessHostileConfiguration(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	files := hostileFiles(t)
	for name, want := range map[string]string{
		"merge.yaml": "merge keys (<<) are not supported",
		"alias.yaml": "an alias (*m) stands for a mapping",
	} {
		start := time.Now()
		r := rotatorEnv(w, []string{"ROTATOR_CONFIG=" + files[name]}, "check")
		took := time.Since(start)
		wantCode(t, r, 2, want)
		if n := len(r.Stdout + r.Stderr); n > 64<<10 {
			t.Errorf("%s: %d bytes of output", name, n)
		}
		if took > 10*time.Second {
			t.Errorf("%s: check took %s", name, took)
		}
	}
	if w.ClearRequests() != 0 {
		t.Fatal("a refused configuration called Clear")
	}
}

// TestDaemonProcessSurvivesHostileReload: a daemon sent SIGHUP with a hostile file used to die
// (out of memory); a failed reload keeps the running configuration, says why, and the daemon
// serves on.
func TestDaemonProcessSurvivesHostileReload(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	path := filepath.Join(t.TempDir(), "rotator.yaml")
	good := fmt.Sprintf("clients:\n  - name: a\n    base_url: %s\n    client_secret: %s\n    token_secret_id: %s\n", w.ClearURL, w.Secrets[0], w.TokenID)
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	p := w.Daemon("ROTATOR_CONFIG="+path, "CLEAR_BASE_URL=", "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID=")
	p.Await("readiness", 15*time.Second, func() bool { code, _ := p.Get("/readyz"); return code == http.StatusOK })
	for _, hostile := range hostileFiles(t) {
		data, err := os.ReadFile(hostile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(p.Output(), "reload failed; keeping the previous configuration")
		p.Signal(syscall.SIGHUP)
		p.Await("the refused reload", 20*time.Second, func() bool {
			select {
			case <-p.Done():
				t.Fatalf("the daemon died on SIGHUP:\n%.2000s", p.Output())
			default:
			}
			return strings.Count(p.Output(), "reload failed; keeping the previous configuration") > before
		})
		if code, body := p.Get("/readyz"); code != http.StatusOK {
			t.Errorf("/readyz after a refused reload = %d %q", code, body)
		}
	}
	if code := p.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestProcessControlCharacters: an unknown variable's name and the configuration's path are
// printed escaped, never with their raw control characters.
func TestProcessControlCharacters(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	r := rotatorEnv(w, []string{"ROTATOR_EVIL\x1b[2J\x1b[31m=1"}, "check")
	wantCode(t, r, 0, `ROTATOR_EVIL\x1b[2J\x1b[31m`)
	r = rotatorEnv(w, []string{"ROTATOR_CONFIG=" + filepath.Join(t.TempDir(), "a\x1b[2J\rb.yaml")}, "check")
	wantCode(t, r, 2, `a\x1b[2J\rb.yaml`)
	for _, out := range []string{r.Stdout, r.Stderr} {
		if strings.ContainsAny(out, "\x1b\r") {
			t.Errorf("raw control characters in the output:\n%q", out)
		}
	}
}

// TestProcessHTTPAddrRefused: a listen address the daemon could not bind, or not as meant, is
// refused by `check` and `run` alike.
func TestProcessHTTPAddrRefused(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	for _, addr := range []string{":99999", ":+80", "a b:80"} {
		for _, cmd := range []string{"check", "run"} {
			r := rotatorEnv(w, []string{"ROTATOR_HTTP_ADDR=" + addr}, cmd)
			wantCode(t, r, 2, "ROTATOR_HTTP_ADDR")
		}
	}
}
