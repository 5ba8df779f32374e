// Command mkzip writes a reproducible zip of the Lambda's bootstrap executable:
//
//	go run ./tools/mkzip -o dist/lambda.zip dist/lambda/bootstrap
//
// Each file is stored at the archive's root under its base name, with mode 0755 and a fixed
// modification time, and the entries are sorted by name. The archive therefore depends only on
// the files' names and contents (and the Go version's deflate), never on when or where it was
// built or on the umask, so two builds of one commit give byte-identical zips: their hashes can be
// compared, and an unchanged function is not redeployed just because it was rebuilt. The zip tool
// cannot do this, since it records each file's mtime and owner.
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// modTime is the modification time of every entry. It is a fixed instant after 1980, the MS-DOS
// epoch that zip's own timestamp field cannot go below.
var modTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// mode is every entry's permission: Lambda runs bootstrap, so it must be executable.
const mode = 0o755

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkzip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "the zip file to write")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkzip -o OUT.zip FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return errors.New("need -o and at least one file")
	}
	return write(*out, fs.Args())
}

// write zips files into out. It writes a temporary file beside out and renames it, so that an
// interrupted run never leaves a truncated zip for a later deploy to pick up.
func write(out string, files []string) (err error) {
	names := map[string]string{}
	for _, f := range files {
		base := filepath.Base(f)
		if prev, dup := names[base]; dup {
			return fmt.Errorf("%s and %s would both be stored as %q", prev, f, base)
		}
		names[base] = f
	}
	sorted := make([]string, 0, len(names))
	for base := range names {
		sorted = append(sorted, base)
	}
	sort.Strings(sorted)

	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkzip-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := zip.NewWriter(tmp)
	for _, base := range sorted {
		if err := add(zw, base, names[base]); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; a build artifact is meant to be read by others.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func add(zw *zip.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modTime}
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
