package main

import (
	"flag"
	"os"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// processParallel is how many tests run at once unless -parallel says otherwise: all of them. The
// process tests spend their time waiting, in real time, on the rotator processes, moto and the
// emulator rather than on this process's CPU, so the default (GOMAXPROCS, two on a small CI
// machine) would leave them queued behind one another while the machine idles; and
// TestDaemonProcess, the longest, must not wait for a slot.
const processParallel = "32"

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", processParallel)
	}
	code := m.Run()
	mototest.StopShared()
	proctest.Cleanup()
	os.Exit(code)
}
