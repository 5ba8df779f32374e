// Package scripts holds the tests of the project's shell scripts.
package scripts

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// TestDemo runs `make run`'s script, the README's first command, as a developer would: it must
// bring up moto, the emulator and the daemon, store a token Clear (the emulator) holds live, keep
// the client secret and the token out of its output, and stop everything it started, exiting 0,
// on Ctrl-C (SIGINT to the terminal's process group) or on a SIGTERM sent to the script alone.
func TestDemo(t *testing.T) {
	t.Parallel()
	for name, stop := range map[string]func(pgid int) error{
		"ctrl-c":  func(pgid int) error { return syscall.Kill(-pgid, syscall.SIGINT) },
		"sigterm": func(pgid int) error { return syscall.Kill(pgid, syscall.SIGTERM) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			demo(t, stop)
		})
	}
}

func demo(t *testing.T, stop func(pgid int) error) {
	if _, err := exec.LookPath("moto_server"); err != nil {
		t.Fatal(`moto_server is not on PATH: install it with pip install "moto[server]" (make test-deps does); this test must not be skipped`)
	}
	rotator := proctest.Build(t, "./cmd/rotator", "ROTATOR_BIN")
	emulator := proctest.Build(t, "./cmd/clear-emulator", "")
	const clientSecret = "demo-test-client-secret-5f0c2e9a71"

	cmd := exec.Command("bash", filepath.Join(proctest.Root(), "scripts", "demo.sh"))
	cmd.Env = proctest.Env("DEMO_ROTATOR="+rotator, "DEMO_EMULATOR="+emulator,
		"DEMO_CLIENT_SECRET="+clientSecret, "DEMO_OPS_ADDR="+freeAddr(t))
	var out proctest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, as a terminal's foreground job; the kernel kills the script if the
	// test dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })

	// The banner names moto and the emulator; the rotator logs each token it stores.
	var smURL, clearURL string
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "rotated the token") {
		select {
		case err := <-exited:
			t.Fatalf("the demo ended before storing a token: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token stored within 90s:\n%s", out.String())
		}
	}
	// A wait that reads a file before its writer created it once printed "grep: ...: No such file".
	if strings.Contains(out.String(), "No such file") {
		t.Errorf("the demo printed a shell error:\n%s", out.String())
	}
	smURL = banner(t, out.String(), `Secrets Manager \(moto_server\)\s+(http://\S+)`)
	clearURL = banner(t, out.String(), `Clear emulator\s+(http://\S+)`)

	sm := (&mototest.Server{URL: smURL}).Client() // the demo's moto, not one of the test's
	v, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String("demo/clear-token"), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		t.Fatalf("reading the demo's token: %v", err)
	}
	tok, err := document.ParseToken([]byte(aws.ToString(v.SecretString)))
	if err != nil {
		t.Fatalf("the demo's token secret: %v", err)
	}
	if !live(t, clearURL, tok.AccessToken.Reveal()) {
		t.Error("the token the demo stored is not live at the emulator")
	}

	if err := stop(pgid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the demo exited with %v when stopped, want 0\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the demo did not stop within 30s\n%s", out.String())
	}
	// Nothing it started outlives it: moto and the emulator run in the background, where Ctrl-C
	// may not reach them and a SIGTERM to the script does not, so the script must stop them.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(end) {
			t.Fatal("processes of the demo are still running 10s after it exited")
		}
	}
	proctest.AssertNoLeak(t, []string{out.String()}, clientSecret, tok.AccessToken.Reveal())
}

// banner returns the first group of re in the demo's output.
func banner(t *testing.T, out, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the banner has no %s:\n%s", re, out)
	}
	return m[1]
}

// live asks the emulator whether tok is its client's live token.
func live(t *testing.T, clearURL, tok string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clearURL+"/_emulator/live?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Live bool }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Live
}

// freeAddr returns a loopback address free when asked, for the demo's ops listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
