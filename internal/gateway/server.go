package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/safefile"
)

// Limits bound what callers of the gateway's port can hold. None is unbounded.
type Limits struct {
	MaxConns       int // open connections at once
	MaxHeaderBytes int // request line and headers
	// MaxHeaderLines bounds a request's header lines (continuations included) as Apache's
	// LimitRequestFields does: net/http's parser holds about 80 bytes for each line as it arrives.
	MaxHeaderLines int
	ReadHeader     time.Duration // to read the request's headers
	Read           time.Duration // to read the whole request, body included
	Write          time.Duration // from the end of the headers to the end of the answer
	Idle           time.Duration // a keep-alive connection between requests
	// IdleHandoff is how long a connection waits for its next request on the goroutine that
	// served the last one; then the wait goes on on a new goroutine, and the stack the request
	// grew (16 KiB and more) is given back, where a new goroutine's takes 2 KiB, and so is the
	// connection's read buffer. A busy connection keeps its goroutine and pays nothing; idle ones
	// hold about a third less (BENCHMARKS.md 9, runs G and H).
	IdleHandoff time.Duration
}

// DefaultLimits suit ERP calls to Clear: e-invoice calls can take seconds upstream, so the write
// limit leaves room for a hold, an upstream wait and a replay.
var DefaultLimits = Limits{
	MaxConns:       16384,
	MaxHeaderBytes: 16 << 10,
	MaxHeaderLines: 100,
	ReadHeader:     10 * time.Second,
	Read:           2 * time.Minute,
	Write:          DefaultHold + 2*DefaultUpstreamTimeout + 30*time.Second,
	Idle:           2 * time.Minute,
	IdleHandoff:    time.Second,
}

// LimitListener holds at most n connections open at once; one beyond is closed as soon as it is
// accepted, so a flood costs a descriptor only for that instant.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, max(n, 1))}
}

type limitedListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			c.Close()
		}
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CertReloader serves a certificate from files, read again when either file changes (checked at
// most once a second, on a handshake), so that a renewed certificate needs no restart. A pair that
// fails to load keeps the previous one in service, and is reported (Log) if it still fails a check
// later: otherwise nothing would say why a renewed certificate is not served until the old expires.
type CertReloader struct {
	CertFile, KeyFile string
	// Now is the clock of the once-a-second check; nil means time.Now.
	Now func() time.Time
	// Log, when set, hears of each reload, and of each change of the files that does not load.
	Log *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	stamp    string
	failed   string // the stamp of the files whose load failed last
	reported bool   // whether that failure was reported
	checked  time.Time
}

// NewCertReloader loads the pair once, failing when it cannot.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	c := &CertReloader{CertFile: certFile, KeyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CertReloader) fileStamp() string {
	var b bytes.Buffer
	for _, f := range []string{c.CertFile, c.KeyFile} {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

// MaxPEMFile bounds the certificate and key files: a PEM pair, chain included, is a few KB.
const MaxPEMFile = 1 << 20

// load reads the pair with safefile.Read, never os.ReadFile: it runs at start-up and, later,
// inside a handshake under c.mu, where a FIFO in a file's place would block every handshake and
// /dev/zero would be read until memory runs out.
func (c *CertReloader) load() error {
	stamp := c.fileStamp()
	certPEM, err := safefile.Read(c.CertFile, MaxPEMFile)
	if err != nil {
		return fmt.Errorf("gateway TLS: reading the certificate: %w", err)
	}
	keyPEM, err := safefile.Read(c.KeyFile, MaxPEMFile)
	if err != nil {
		return fmt.Errorf("gateway TLS: reading the key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error names neither file's content (crypto/tls says what it could not parse).
		return fmt.Errorf("gateway TLS: loading the certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

// GetCertificate is the tls.Config hook.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, reloaded, err := c.current()
	// Said outside the lock: a log that cannot be written must not hold up handshakes.
	switch {
	case c.Log == nil:
	case err != nil:
		c.Log.Warn("gateway TLS: the certificate or key changed but does not load; the previous certificate stays in service",
			"error", err)
	case reloaded:
		c.Log.Info("gateway TLS: the certificate and key were reloaded", "cert", c.CertFile, "key", c.KeyFile)
	}
	if cert == nil {
		return nil, errors.New("gateway TLS: no certificate")
	}
	return cert, nil
}

// current returns the certificate to serve, looking at the files at most once a second: whether
// it has just been reloaded, or the error of a change that does not load (once per change).
func (c *CertReloader) current() (cert *tls.Certificate, reloaded bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if now := now(); now.Sub(c.checked) >= time.Second {
		c.checked = now
		if stamp := c.fileStamp(); stamp != c.stamp {
			// A pair that does not load keeps the previous certificate, and is read again at the
			// next check. It is reported once, when it still fails at the check after: a renewal
			// caught between its two files loads a second later, and is no news.
			switch lerr := c.load(); {
			case lerr == nil:
				reloaded, c.failed, c.reported = true, "", false
			case stamp != c.failed:
				c.failed, c.reported = stamp, false
			case !c.reported:
				err, c.reported = lerr, true
			}
		}
	}
	return c.cert, reloaded, err
}

// TLSConfig is the gateway's TLS configuration: TLS 1.2 or later, the certificate from c.
func (c *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}
