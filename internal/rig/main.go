package rig

import (
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// Main is the TestMain of a package whose tests use the rig: it runs the tests, then stops the
// shared moto_server and removes the binaries built for process tests. parallel, when positive,
// replaces go test's default -parallel (GOMAXPROCS) unless the command line gives one: process
// tests wait on child processes and real time rather than the CPU, and two at a time on a
// two-core machine would leave most of their waiting end to end.
func Main(m *testing.M, parallel int) {
	if parallel > 0 {
		flag.Parse()
		given := false
		flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
		if !given {
			_ = flag.Set("test.parallel", strconv.Itoa(parallel))
		}
	}
	code := m.Run()
	mototest.StopShared()
	proctest.Cleanup()
	os.Exit(code)
}

// Sample returns the value of one sample of a Prometheus text exposition (a /metrics body), or ""
// when the series is absent.
func Sample(metrics, series string) string {
	for line := range strings.SplitSeq(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
