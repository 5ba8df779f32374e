package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

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
		path := filepath.Join("testdata", "exposition.golden")
		if os.Getenv("UPDATE_GOLDEN") != "" {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (set UPDATE_GOLDEN=1 to write it)", err)
		}
		if got != string(want) {
			w, g := strings.Split(string(want), "\n"), strings.Split(got, "\n")
			for i := range min(len(w), len(g)) {
				if w[i] != g[i] {
					t.Fatalf("the exposition changed at line %d:\nwant %s\ngot  %s", i+1, w[i], g[i])
				}
			}
			t.Fatalf("the exposition changed: %d lines, want %d", len(g), len(w))
		}
	})
}
