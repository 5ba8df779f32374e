package main

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestGatewayTLS serves the gateway over TLS, then replaces the certificate files: new
// connections get the new certificate without a restart.
func TestGatewayTLS(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{Lifetime: -1})
	dir := t.TempDir()
	first := rig.SelfSigned(t, dir, 1)
	g := startGateway(t, e.World, "ROTATOR_GATEWAY_TLS_CERT="+filepath.Join(dir, "cert.pem"), "ROTATOR_GATEWAY_TLS_KEY="+filepath.Join(dir, "key.pem"))
	g.scheme = "https"
	pool := x509.NewCertPool()
	pool.AddCert(first)
	var served *big.Int
	g.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
		RootCAs: pool, VerifyConnection: func(cs tls.ConnectionState) error { served = cs.PeerCertificates[0].SerialNumber; return nil },
		InsecureSkipVerify: false,
	}}}
	if code, body := g.call(t, http.MethodGet, rig.PingPath, nil); code != http.StatusOK || served.Int64() != 1 {
		t.Fatalf("over TLS: %d %s, certificate %v", code, body, served)
	}
	second := rig.SelfSigned(t, dir, 2)
	pool.AddCert(second)
	g.Await("the new certificate", 10*time.Second, func() bool {
		code, _ := g.call(t, http.MethodGet, rig.PingPath, nil)
		return code == http.StatusOK && served.Int64() == 2
	})
	g.Await("the reload's log line", 5*time.Second, func() bool {
		return strings.Contains(g.Output(), "gateway TLS: the certificate and key were reloaded")
	})
}

// TestGatewayTLSRefusesSpecialFiles: a certificate or key path that names a FIFO used to hang the
// gateway's start-up (os.ReadFile blocks on it until someone writes), and /dev/zero was read until
// memory ran out. Both modes refuse such a file at once, naming it, and serve nothing; `rotator
// check` reads the pair the same way, and fails on what would fail `rotator run`.
func TestGatewayTLSRefusesSpecialFiles(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	dir := t.TempDir()
	rig.SelfSigned(t, dir, 1)
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, tc := range []struct{ cert, key, want string }{
		{fifo, key, "a named pipe (FIFO), not a regular file"},
		{cert, "/dev/zero", "a device, not a regular file"},
	} {
		for _, args := range [][]string{{"gateway"}, {"run"}, {"check"}, {"check", "--gateway"}} {
			env := []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_TLS_CERT=" + tc.cert, "ROTATOR_GATEWAY_TLS_KEY=" + tc.key}
			start := time.Now()
			r := w.RunEnv(proctest.TestRotator(t), env, args...)
			wantCode(t, r, 1, tc.want)
			if d := time.Since(start); d > 20*time.Second || strings.Contains(r.Stderr, "gateway started") {
				t.Errorf("%v with %s: took %v, or served:\n%s", args, tc.want, d, r.Output())
			}
		}
	}
	r := w.RunEnv(proctest.TestRotator(t), []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_TLS_CERT=" + cert, "ROTATOR_GATEWAY_TLS_KEY=" + key}, "check")
	wantCode(t, r, 0, "gateway: ok: the TLS certificate and key load")
	r = w.RunEnv(proctest.TestRotator(t), []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_TLS_CERT=" + cert, "ROTATOR_GATEWAY_TLS_KEY=" + key}, "check", "--gateway")
	wantCode(t, r, 0, "gateway: ok: the TLS certificate and key load")
}
