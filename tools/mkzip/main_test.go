package main

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// TestGoRunTwiceIsByteIdentical runs the tool exactly as the Makefile does, twice, with the input's
// modification time and permissions changed in between, as a rebuild on another machine would.
func TestGoRunTwiceIsByteIdentical(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "lambda", "bootstrap")
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 300<<10)
	_, _ = rand.Read(content[:100<<10]) // part incompressible, part not
	if err := os.WriteFile(in, content, 0o755); err != nil {
		t.Fatal(err)
	}

	zipOf := func(name string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "run", "./tools/mkzip", "-o", out, in)
		cmd.Dir = proctest.Root()
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go run ./tools/mkzip: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := zipOf("first.zip")
	later := time.Now().Add(-36 * time.Hour)
	if err := os.Chtimes(in, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(in, 0o700); err != nil {
		t.Fatal(err)
	}
	second := zipOf("second.zip")
	if !bytes.Equal(first, second) {
		t.Fatalf("the two zips differ (%d and %d bytes)", len(first), len(second))
	}
	checkZip(t, first, map[string][]byte{"bootstrap": content})
}

// checkZip checks that the archive holds exactly files, each executable with the fixed time.
func checkZip(t *testing.T, archive []byte, files map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != len(files) {
		t.Fatalf("%d entries, want %d", len(zr.File), len(files))
	}
	for _, f := range zr.File {
		want, ok := files[f.Name]
		if !ok {
			t.Fatalf("unexpected entry %q", f.Name)
		}
		if f.Mode() != 0o755 {
			t.Errorf("%s: mode %v, want -rwxr-xr-x", f.Name, f.Mode())
		}
		if !f.Modified.Equal(modTime) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, modTime)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: content differs (err %v)", f.Name, err)
		}
	}
}

func TestEntriesAreSortedAndNamedByBase(t *testing.T) {
	dir := t.TempDir()
	b := filepath.Join(dir, "b", "zeta")
	a := filepath.Join(dir, "a", "alpha")
	for _, p := range []string{a, b} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(filepath.Base(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out.zip")
	if err := run([]string{"-o", out, b, a}, io.Discard); err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkZip(t, archive, map[string][]byte{"alpha": []byte("alpha"), "zeta": []byte("zeta")})
	zr, _ := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if zr.File[0].Name != "alpha" {
		t.Errorf("entries not sorted: first is %q", zr.File[0].Name)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("zip file mode %v (%v), want 0644", fi.Mode(), err)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "x", "bootstrap")
	f2 := filepath.Join(dir, "y", "bootstrap")
	for _, p := range []string{f1, f2} {
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte("x"), 0o755)
	}
	out := filepath.Join(dir, "out.zip")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no output":     {[]string{f1}, "need -o"},
		"no input":      {[]string{"-o", out}, "need -o"},
		"duplicate":     {[]string{"-o", out, f1, f2}, "both be stored"},
		"directory":     {[]string{"-o", out, dir}, "not a regular file"},
		"missing input": {[]string{"-o", out, filepath.Join(dir, "nope")}, "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			err := run(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Error("a failed run left a zip behind")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".mkzip-*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}
