package gateway_test

import (
	"crypto/tls"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// mkfifo makes a FIFO at path (replacing what is there), and frees a reader that blocked on it
// when the test ends, so that a failing run does not leave a goroutine stuck in open(2).
func mkfifo(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".fifo"
	if err := syscall.Mkfifo(tmp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// within runs f and fails the test when it has not returned after d.
func within[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// handshake makes one TLS handshake against r's configuration over a pipe and returns the serial
// of the certificate served.
func handshake(t *testing.T, r *gateway.CertReloader) (*big.Int, error) {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, r.TLSConfig())
	go srv.Handshake()
	cli := tls.Client(cc, &tls.Config{InsecureSkipVerify: true})
	if err := cli.Handshake(); err != nil {
		return nil, err
	}
	return cli.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestCertReloaderRefusesSpecialFiles: a certificate or key path naming a FIFO would block the
// gateway's start-up until someone writes to it, and /dev/zero would be read until memory runs
// out; both are refused at once, with an error that names the path and says why.
func TestCertReloaderRefusesSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rig.SelfSigned(t, dir, 1)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	fifo := filepath.Join(t.TempDir(), "fifo.pem")
	mkfifo(t, fifo)
	huge := filepath.Join(t.TempDir(), "huge.pem")
	if err := os.WriteFile(huge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 2<<20); err != nil { // sparse: 2 MiB read as zeros
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ cert, key, want string }{
		"the certificate a FIFO": {fifo, key, "named pipe (FIFO)"},
		"the key a FIFO":         {cert, fifo, "named pipe (FIFO)"},
		"the key /dev/zero":      {cert, "/dev/zero", "a device"},
		"the certificate huge":   {huge, key, "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			err := within(t, 5*time.Second, "NewCertReloader", func() error {
				_, err := gateway.NewCertReloader(tc.cert, tc.key)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "gateway TLS") {
				t.Fatalf("NewCertReloader = %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}

// TestCertReloaderKeepsServingWhenAFIFOIsSwappedIn: the reload runs inside a handshake, under the
// reloader's lock; a FIFO put in the certificate's place after start must not block it (and with
// it every later handshake): the previous certificate stays in service, and a good pair put back
// is served again.
func TestCertReloaderKeepsServingWhenAFIFOIsSwappedIn(t *testing.T) {
	t.Parallel()
	dir, r := selfSignedReloader(t)
	clock := fake.NewClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	r.Now = clock.Now
	var logs proctest.Buffer
	r.Log = logging.New(&logs, slog.LevelDebug, "json")
	warnings := func() int { return strings.Count(logs.String(), `"level":"WARN"`) }
	type served struct {
		serial *big.Int
		err    error
	}
	shake := func(what string) served {
		return within(t, 5*time.Second, what, func() served { s, err := handshake(t, r); return served{s, err} })
	}
	if s := shake("the first handshake"); s.err != nil || s.serial.Int64() != 1 {
		t.Fatalf("first handshake: %v, serial %v", s.err, s.serial)
	}

	mkfifo(t, filepath.Join(dir, "cert.pem"))
	for i := range 3 {
		clock.Advance(time.Second)
		if s := shake("a handshake with a FIFO in the certificate's place"); s.err != nil || s.serial.Int64() != 1 {
			t.Fatalf("handshake %d with a FIFO in place: %v, serial %v", i, s.err, s.serial)
		}
		if i == 0 && warnings() != 0 {
			// A renewal caught between its two files loads at the next check: no news yet.
			t.Fatalf("a warning at the first failed check:\n%s", logs.String())
		}
	}
	// A change that still does not load a check later is said, once, naming the file and never
	// its content.
	if n := warnings(); n != 1 || !strings.Contains(logs.String(), "named pipe (FIFO)") || !strings.Contains(logs.String(), "cert.pem") {
		t.Fatalf("%d warnings after a FIFO came in the certificate's place, want 1:\n%s", n, logs.String())
	}

	rig.SelfSigned(t, dir, 2)
	// Within a second of the last check the files are not looked at again.
	if s := shake("a handshake right after the new pair"); s.err != nil || s.serial.Int64() != 1 {
		t.Fatalf("handshake within the check interval: %v, serial %v", s.err, s.serial)
	}
	clock.Advance(time.Second)
	if s := shake("a handshake after the new pair"); s.err != nil || s.serial.Int64() != 2 {
		t.Fatalf("handshake after the new pair: %v, serial %v, want 2", s.err, s.serial)
	}
	if !strings.Contains(logs.String(), "gateway TLS: the certificate and key were reloaded") || warnings() != 1 {
		t.Errorf("the reload was not said, or warned of again:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") || strings.Contains(logs.String(), "CERTIFICATE") {
		t.Errorf("the log holds PEM content:\n%s", logs.String())
	}
}

// The gateway's TLS is 1.2 or later, as docs/gateway.md says: a client that offers at most TLS
// 1.1 is refused the handshake; one that offers 1.2 gets it.
func TestGatewayTLSIsAtLeast12(t *testing.T) {
	t.Parallel()
	_, r := selfSignedReloader(t)
	shake := func(max uint16) error {
		sc, cc := net.Pipe()
		defer sc.Close()
		defer cc.Close()
		go tls.Server(sc, r.TLSConfig()).Handshake()
		return tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: max}).Handshake()
	}
	if err := within(t, 5*time.Second, "a TLS 1.1 handshake", func() error { return shake(tls.VersionTLS11) }); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	if err := within(t, 5*time.Second, "a TLS 1.2 handshake", func() error { return shake(tls.VersionTLS12) }); err != nil {
		t.Fatalf("a TLS 1.2 client: %v", err)
	}
}

// selfSignedReloader is a reloader of a self-signed pair (serial 1) in a new directory.
func selfSignedReloader(t *testing.T) (string, *gateway.CertReloader) {
	t.Helper()
	dir := t.TempDir()
	rig.SelfSigned(t, dir, 1)
	r, err := gateway.NewCertReloader(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, r
}
