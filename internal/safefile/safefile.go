// Package safefile reads the files an operator names in the configuration (the YAML file, the
// gateway's certificate and key) so that a wrong path cannot hang or exhaust the process: a FIFO
// would block its reader until someone writes to it, and /dev/zero or a huge file would be read
// until memory runs out.
package safefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is the cause, for errors.Is, when a path names something other than a regular file.
var ErrNotRegular = errors.New("not a regular file")

// TooLargeError is the cause when a file holds more than the reader's limit.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("larger than %d bytes", e.Limit)
}

// Read returns the content of the regular file at path, at most limit bytes. A FIFO, a device, a
// socket or a directory is refused before anything is read, as is a file longer than limit; the
// error is an *fs.PathError naming the path, never the content. O_NONBLOCK makes opening a FIFO
// return at once, and the type comes from the open descriptor, so that swapping the path between
// a stat and the open cannot reopen the hang.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if m := fi.Mode(); !m.IsRegular() {
		kind := "a special file"
		switch {
		case m.IsDir():
			kind = "a directory"
		case m&fs.ModeNamedPipe != 0:
			kind = "a named pipe (FIFO)"
		case m&fs.ModeSocket != 0:
			kind = "a socket"
		case m&fs.ModeDevice != 0:
			kind = "a device"
		}
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: it is %s, not a regular file", ErrNotRegular, kind)}
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: &TooLargeError{Limit: limit}}
	}
	return buf.Bytes(), nil
}
