package rig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Golden compares got with the golden file at path, and names the first line that differs. With
// update (a test's -update flag) it first writes got there: run once with -update, read the diff,
// commit the file. A golden file pins an output that is a contract (a JSON document, an exposition,
// EMF lines), so that a refactor that changes one byte of it fails.
func Golden(tb testing.TB, path string, got []byte, update bool) {
	tb.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run the test with -update to write it)", err)
	}
	if string(got) == string(want) {
		return
	}
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			tb.Fatalf("%s: the output changed at line %d:\nwant %s\ngot  %s", path, i+1, w[i], g[i])
		}
	}
	tb.Fatalf("%s: the output changed: %d lines, want %d", path, len(g), len(w))
}
