package examples

// The README's recipes, run: the Go ERP example (built with go build) and the Python recipe
// (python3 with boto3 and requests, which must be installed: a missing one fails the test, it is
// never skipped), each as a process against moto, the Clear emulator and the real rotator rotating
// 12-second tokens. Assertions are counts of failed calls, never durations.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/erptest"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mototest.StopShared()
	proctest.Cleanup()
	os.Exit(code)
}

// result is the JSON line both programs print.
type result struct {
	Calls    int            `json:"calls"`
	Failed   int            `json:"failed"`
	Statuses map[string]int `json:"statuses"`
}

// runConsumer runs cmd (which prints a result as its last stdout line) with the rig's environment,
// bounded by timeout, and returns the result and the process's whole output.
func runConsumer(t *testing.T, rig *erptest.Rig, timeout time.Duration, name string, args ...string) (result, string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = proctest.Env(rig.Env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish within %s:\n%s%s", name, timeout, stdout.String(), stderr.String())
	}
	out := stdout.String() + stderr.String()
	var res result
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil && err == nil {
		t.Fatalf("%s printed no result: %v\n%s", name, jerr, out)
	}
	return res, out, err
}

// TestERPExample builds examples/erp and runs it for 20 s, through at least two rotations.
func TestERPExample(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "erp")
	build := exec.Command("go", "build", "-o", bin, "./examples/erp")
	build.Dir = proctest.Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/erp: %v\n%s", err, out)
	}
	rig := erptest.Start(t, erptest.Options{Lifetime: 12 * time.Second})
	before := rig.Issued()
	res, out, err := runConsumer(t, rig, time.Minute, bin, "-url", rig.ClearURL+erptest.PingPath, "-workers", "8", "-duration", "20s")
	rotations := rig.Issued() - before
	t.Logf("erp: %d calls, %d failed, through %d rotations", res.Calls, res.Failed, rotations)
	if err != nil || res.Failed != 0 || res.Calls == 0 {
		t.Errorf("erp: %v, %d of %d calls failed:\n%s", err, res.Failed, res.Calls, out)
	}
	if rotations < 2 {
		t.Errorf("only %d rotations while the ERP ran, want at least 2", rotations)
	}
	rig.AssertNoLeak([]string{out})

	// A missing secret: a clear error, exit status 1.
	cmd := exec.Command(bin, "-url", rig.ClearURL+erptest.PingPath, "-secret-id", "no/such/secret", "-duration", "1s")
	cmd.Env = proctest.Env(rig.Env()...)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "not found") {
		t.Errorf("erp with a missing secret: %v\n%s", err, msg)
	}
}

// TestPythonRecipe runs examples/python/clear_token.py (boto3 and requests) with 8 threads for 20 s,
// through at least two rotations, then with a streamed POST body, and against a missing secret.
func TestPythonRecipe(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("python3", "-c", "import boto3, requests").CombinedOutput(); err != nil {
		t.Fatalf("the Python recipe needs python3 with boto3 and requests (pip install boto3 requests): %v\n%s", err, out)
	}
	script := filepath.Join(proctest.Root(), "examples", "python", "clear_token.py")
	rig := erptest.Start(t, erptest.Options{Lifetime: 12 * time.Second})
	before := rig.Issued()
	res, out, err := runConsumer(t, rig, time.Minute, "python3", script,
		"--secret-id", rig.TokenSecretID, "--url", rig.ClearURL+erptest.PingPath, "--threads", "8", "--seconds", "20")
	rotations := rig.Issued() - before
	t.Logf("python: %d calls, %d failed (%v), through %d rotations", res.Calls, res.Failed, res.Statuses, rotations)
	if err != nil || res.Failed != 0 || res.Calls == 0 {
		t.Errorf("python: %v, %d of %d calls failed:\n%s", err, res.Failed, res.Calls, out)
	}
	if rotations < 2 {
		t.Errorf("only %d rotations while the recipe ran, want at least 2", rotations)
	}

	// A streamed body is never retried: a call that hits a revoked token comes back 401 (the
	// recipe fetches the newer token in the background for the next calls), and the business
	// endpoint sees each POST once (calls == invoices).
	invoices := rig.Invoices()
	res2, out2, err := runConsumer(t, rig, time.Minute, "python3", script,
		"--secret-id", rig.TokenSecretID, "--url", rig.ClearURL+erptest.InvoicePath, "--threads", "2", "--seconds", "10", "--post-stream")
	if err != nil {
		t.Errorf("python --post-stream: %v\n%s", err, out2)
	}
	if sent := rig.Invoices() - invoices; sent != res2.Calls {
		t.Errorf("%d streamed POSTs reached Clear %d times, want once each", res2.Calls, sent)
	}
	for status := range res2.Statuses {
		if status != "200" && status != "401" {
			t.Errorf("streamed POST answered %s", status)
		}
	}
	t.Logf("python --post-stream: %v", res2.Statuses)

	// A missing secret: the recipe's error, exit status 1, nothing leaked.
	cmd := exec.Command("python3", script, "--secret-id", "no/such/secret", "--url", rig.ClearURL+erptest.PingPath, "--seconds", "1")
	cmd.Env = proctest.Env(rig.Env()...)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "not found") {
		t.Errorf("python with a missing secret: %v\n%s", err, msg)
	}
	rig.AssertNoLeak([]string{out, out2, string(msg)})
}
