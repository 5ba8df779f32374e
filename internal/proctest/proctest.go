// Package proctest builds the project's commands and runs them as processes in tests, so that what
// is tested is the binary operators run, not just its functions.
package proctest

import (
	"github.com/clear-rotator/clear-rotator/internal/timing"

	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
)

// Root returns the module's root directory.
func Root() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	}
	// Built with -trimpath (make test does, so that a clean clone reuses the build cache of the
	// last one), the file name is module-relative. go test runs a package's tests in its
	// directory, inside the module: the root is the nearest directory above with a go.mod.
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

// Build builds the command in pkg (relative to the module root, e.g. "./cmd/rotator") once per
// test binary and returns the path of the executable. If the environment variable envVar names an
// existing file (the Makefile sets ROTATOR_BIN to the binary it built for the image), that file is
// used instead, so the tests exercise the very artifact that ships.
func Build(tb testing.TB, pkg, envVar string, extraArgs ...string) string {
	tb.Helper()
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				if _, err := os.Stat(abs); err == nil {
					return abs
				}
			}
			tb.Fatalf("%s=%s does not exist", envVar, p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	key := pkg + " " + strings.Join(extraArgs, " ")
	if p, ok := built[key]; ok {
		return p
	}
	d, err := sharedDir()
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(d, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(built)))
	args := append([]string{"build", "-o", out}, extraArgs...)
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	built[key] = out
	return out
}

// Dir returns a directory for things built once per test binary (Build's executables, classes
// compiled for a test), which Cleanup removes.
func Dir() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	return sharedDir()
}

// sharedDir is Dir with mu held.
func sharedDir() (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "proctest-")
		if err != nil {
			return "", err
		}
		dir = d
	}
	return dir, nil
}

// TestRotator returns the rotator built for process tests: the release build except for a 500 ms
// floor between rotations instead of a minute (see timing.MinInterval), so that the daemon can renew
// emulator tokens that live a few seconds in real time. ROTATOR_TEST_BIN, when set, names it (the
// Makefile builds it next to the release binary).
func TestRotator(tb testing.TB) string {
	return Build(tb, "./cmd/rotator", "ROTATOR_TEST_BIN", "-ldflags="+timing.TestFloorFlag)
}

// Cleanup removes the built binaries; call it from TestMain.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Env returns a minimal environment for a child process: PATH and HOME from this process, plus
// vars. The child does not inherit the developer's AWS profile or LOG_* settings by accident.
func Env(vars ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	return append(env, vars...)
}

// Buffer is a goroutine-safe bytes.Buffer for a child's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }

// String returns what was written so far.
func (b *Buffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// AssertNoLeak fails the test if any of the secrets appears in any of the outputs.
func AssertNoLeak(tb testing.TB, outputs []string, secrets ...string) {
	tb.Helper()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, out := range outputs {
			if strings.Contains(out, s) {
				tb.Errorf("a secret (%d chars, starting %q) leaked into captured output", len(s), s[:min(4, len(s))])
			}
		}
	}
}
