package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// selfSigned writes a certificate for 127.0.0.1 with the given serial, and its key, into dir.
func selfSigned(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then the certificate: a reload between the two keeps the previous pair.
	write := func(name string, block *pem.Block) {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// TestGatewayTLS serves the gateway over TLS, then replaces the certificate files: new
// connections get the new certificate without a restart.
func TestGatewayTLS(t *testing.T) {
	t.Parallel()
	e := rig.NewERP(t, rig.ERPOptions{Lifetime: -1})
	dir := t.TempDir()
	first := selfSigned(t, dir, 1)
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
	second := selfSigned(t, dir, 2)
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
	selfSigned(t, dir, 1)
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, tc := range []struct{ cert, key, want string }{
		{fifo, key, "a named pipe (FIFO), not a regular file"},
		{cert, "/dev/zero", "a device, not a regular file"},
	} {
		for _, args := range [][]string{{"gateway"}, {"run"}, {"check"}} {
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
}
