package bench

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// ldflags are the Makefile's release flags (LDFLAGS), with a fixed version.
const ldflags = "-s -w -X main.version=bench"

// build runs go build in the module root with the Makefile's flags and returns the output path.
func build(b *testing.B, out, pkg string, env []string, extra ...string) string {
	b.Helper()
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", out}, extra...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = proctest.Root()
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

func size(b *testing.B, path string) int64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// BenchmarkFootprint measures what the rotator costs to run: the size of bin/rotator as `make
// static` builds it, the daemon's resident memory once it has settled with one client (against
// moto and the Clear emulator), the size of the Lambda's bootstrap and deployment zip as `make
// lambda` builds them (linux/arm64), and the Lambda bootstrap's time from exec to its first
// request to the Runtime API (a stand-in on loopback, with a host-architecture build of the same
// code: the arm64 build cannot run here).
func BenchmarkFootprint(b *testing.B) {
	dir := b.TempDir()
	for range b.N {
		bin := build(b, filepath.Join(dir, "rotator"), "./cmd/rotator", nil)
		b.ReportMetric(mib(size(b, bin)), "rotator-MiB")
		b.Logf("bin/rotator (make static flags, %s/%s): %d bytes (%.1f MiB)", runtime.GOOS, runtime.GOARCH, size(b, bin), mib(size(b, bin)))

		rss, hwm := daemonRSS(b, bin)
		b.ReportMetric(float64(rss)/1024, "daemon-RSS-MiB")
		b.Logf("rotator run, one client, settled: VmRSS %d kB (%.1f MiB), VmHWM %d kB", rss, float64(rss)/1024, hwm)

		arm := build(b, filepath.Join(dir, "lambda", "bootstrap"), "./cmd/lambda", []string{"GOOS=linux", "GOARCH=arm64"}, "-tags", "lambda.norpc")
		zip := filepath.Join(dir, "lambda.zip")
		cmd := exec.Command("go", "run", "./tools/mkzip", "-o", zip, arm)
		cmd.Dir = proctest.Root()
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("mkzip: %v\n%s", err, msg)
		}
		b.ReportMetric(mib(size(b, arm)), "bootstrap-arm64-MiB")
		b.ReportMetric(mib(size(b, zip)), "lambda-zip-MiB")
		b.Logf("Lambda bootstrap (linux/arm64, -tags lambda.norpc): %d bytes (%.1f MiB); dist/lambda.zip: %d bytes (%.1f MiB)",
			size(b, arm), mib(size(b, arm)), size(b, zip), mib(size(b, zip)))

		host := build(b, filepath.Join(dir, "bootstrap-host"), "./cmd/lambda", nil, "-tags", "lambda.norpc")
		p50, p90, worst := lambdaInit(b, host, 20)
		b.ReportMetric(ms(p50), "lambda-init-p50-ms")
		b.ReportMetric(ms(p90), "lambda-init-p90-ms")
		b.Logf("Lambda bootstrap (%s/%s build), exec to first GET .../invocation/next, 20 starts: p50 %s, p90 %s, max %s",
			runtime.GOOS, runtime.GOARCH, p50.Round(10*time.Microsecond), p90.Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
	}
}

// daemonRSS starts `rotator run` with one client, waits until it has rotated the token and then
// idled for a few seconds, and returns its VmRSS and VmHWM in kB.
func daemonRSS(b *testing.B, bin string) (rss, hwm int) {
	b.Helper()
	w := rig.New(b, rig.Options{Lifetime: time.Hour})
	p := w.Start(bin, nil, "run")
	defer func() {
		p.Signal(os.Interrupt)
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			p.Kill()
		}
	}()
	rig.Await(b, "the daemon's first rotation", 30*time.Second, func() bool { return w.Issued() > 0 })
	// Scrape the ops listener once, as Prometheus would, then let the daemon settle.
	p.Get("/metrics")
	time.Sleep(5 * time.Second)
	return procStatus(b, p.Pid(), "VmRSS"), procStatus(b, p.Pid(), "VmHWM")
}

func procStatus(b *testing.B, pid int, field string) int {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// lambdaInit starts the bootstrap n times against a Runtime API stand-in and returns the p50, p90
// and maximum time from exec to its first request for the next invocation.
func lambdaInit(b *testing.B, bootstrap string, n int) (p50, p90, worst time.Duration) {
	b.Helper()
	arrived := make(chan time.Time, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/2018-06-01/runtime/invocation/next") {
			select {
			case arrived <- time.Now():
			default:
			}
			// No invocation comes: the bootstrap waits here until it is killed.
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer api.Close()
	// The world gives moto's settings; the function's own point at secrets it never reads, since
	// no invocation comes.
	w := rig.New(b, rig.Options{})
	env := []string{
		"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(api.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME=clear-rotator", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/11/21/[$LATEST]bench",
		"CLEAR_BASE_URL=https://api-sandbox.clear.in", "CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=clear/client-secret",
		"ROTATOR_TOKEN_SECRET_ID=clear/token", "ROTATOR_DAILY_LIMIT=", "LOG_FORMAT=",
		"ROTATOR_HTTP_ADDR=", // no ops listener to wait for
	}
	var times []time.Duration
	for range n {
		start := time.Now()
		p := w.Start(bootstrap, env)
		select {
		case at := <-arrived:
			times = append(times, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatalf("the bootstrap never asked for an invocation:\n%s", p.Output())
		}
		p.Kill()
	}
	return percentile(times, 50), percentile(times, 90), percentile(times, 100)
}
