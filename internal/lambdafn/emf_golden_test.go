package lambdafn_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The function's EMF lines, byte for byte, for runs that rotate, find the token not due, cannot
// read Secrets Manager, are refused by Clear and then blocked. The template's alarms read these
// names and values; the golden file was written before the values came from rotation.Metrics and
// must not change.
func TestEMFLinesGolden(t *testing.T) {
	f := newFixture(t, time.Hour)
	c := f.clients[0]
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	f.clock.Advance(10*time.Minute + 300*time.Millisecond)
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	c.w.API.Fail(func(op string, _ any) error {
		if op == "GetSecretValue" {
			return errors.New("throttled")
		}
		return nil
	})
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	c.w.API.Fail(nil)
	f.emu.SetSecretActive(c.secret, false)
	_, _, _ = f.invoke(`{"action":"rotate","force":true}`)
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	f.clock.Advance(2 * time.Hour)
	_, _, _ = f.invoke(`{"action":"scheduled"}`)

	got := f.metrics.String()
	path := filepath.Join("testdata", "emf.golden")
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
				t.Fatalf("the EMF lines changed at line %d:\nwant %s\ngot  %s", i+1, w[i], g[i])
			}
		}
		t.Fatalf("the EMF lines changed: %d lines, want %d", len(g), len(w))
	}
}
