package daemon

import (
	stdflag "flag"
	"path/filepath"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// update rewrites the golden files (the package has a flag function of its own).
var update = stdflag.Bool("update", false, "rewrite the golden files under testdata")

// processLines are the samples that vary from build to build or run to run: the Go version and the
// process's start.
var processLines = regexp.MustCompile(`(?m)^(clear_rotator_build_info|process_start_time_seconds)[{ ].*\n`)

// The daemon's exposition, byte for byte, for clients in several states: a token that expires, one
// that never does, a client Clear refuses, and the same clients once Secrets Manager cannot be read
// (the last status's values stay, the state is unknown). Dashboards, alerts and promtool rules read
// these names and values; the golden file was written before the values came from
// rotation.Metrics and must not change.
func TestMetricsExpositionGolden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		a := h.app(h.client("hourly", time.Hour, 48), h.client("forever", 0, 10), h.client("refused", time.Hour, 48))
		h.worlds["refused"].Emu.SetSecretActive(h.worlds["refused"].Secrets[0], false)
		h.start(a, Options{Version: "test-1.0"})
		time.Sleep(time.Minute)
		_, first := h.get("/metrics")
		h.base.API.Fail(func(string, any) error { return awsError })
		time.Sleep(4*time.Minute + time.Second)
		synctest.Wait()
		_, unreadable := h.get("/metrics")
		h.base.API.Fail(nil)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		got := processLines.ReplaceAllString("== after the first tick\n"+first+"== Secrets Manager unreadable\n"+unreadable, "")
		rig.Golden(t, filepath.Join("testdata", "exposition.golden"), []byte(got), *update)
	})
}
