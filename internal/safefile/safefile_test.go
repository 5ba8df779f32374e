package safefile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/safefile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := safefile.Read(ok, 5); err != nil || string(got) != "12345" {
		t.Fatalf("Read at the limit = %q, %v", got, err)
	}
	_, err := safefile.Read(ok, 4)
	var tl *safefile.TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 4 || !strings.Contains(err.Error(), ok) {
		t.Errorf("Read over the limit = %v, want a TooLargeError naming the path", err)
	}
	if _, err := safefile.Read(filepath.Join(dir, "missing"), 5); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file = %v", err)
	}
}

// TestReadRefusesSpecialFiles: a FIFO would block the reader until someone writes to it, and a
// device such as /dev/zero would be read until memory runs out; both return at once, refused.
func TestReadRefusesSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{fifo: "a named pipe (FIFO)", os.DevNull: "a device", "/dev/zero": "a device", t.TempDir(): "a directory"} {
		_, err := safefile.Read(path, 1<<20)
		if !errors.Is(err, safefile.ErrNotRegular) || !strings.Contains(err.Error(), kind) {
			t.Errorf("Read(%s) = %v, want ErrNotRegular naming %s", path, err, kind)
		}
	}
}
