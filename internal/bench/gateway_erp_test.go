package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// erpGatewayKey is the inbound key of the ERP worlds' gateways (ROTATOR_GATEWAY_KEY).
const erpGatewayKey = "erp-gateway-key-fedcba9876543210"

// newERPGateway starts an ERP's world (rig.NewERP) for kind: for erpEmbedded the daemon also
// serves the gateway; for erpStandalone a `rotator gateway` with read rights only (no client
// secret) runs beside it, for erpStandaloneRotator one with the world's client secrets. It returns the world, the gateway's address and the process serving it
// (the daemon, or the standalone gateway; its log has a line per request), or "" and nil for the
// kinds without a gateway.
func newERPGateway(tb testing.TB, o rig.ERPOptions, kind erpKind) (*rig.ERP, string, *rig.Proc) {
	tb.Helper()
	switch kind {
	case erpEmbedded:
		addr := listenAddr(tb)
		o.RotatorEnv = append(o.RotatorEnv, "ROTATOR_GATEWAY_ADDR="+addr, "ROTATOR_GATEWAY_KEY="+erpGatewayKey)
		erp := rig.NewERP(tb, o)
		erp.Hide(erpGatewayKey)
		awaitGateway(tb, erp.Proc, addr)
		return erp, addr, erp.Proc
	case erpStandalone, erpStandaloneRotator:
		erp := rig.NewERP(tb, o)
		erp.Hide(erpGatewayKey)
		addr := listenAddr(tb)
		env := []string{
			"ROTATOR_GATEWAY_ADDR=" + addr,
			"ROTATOR_GATEWAY_KEY=" + erpGatewayKey,
			"ROTATOR_HTTP_ADDR=",
			"LOG_LEVEL=debug",
		}
		if kind == erpStandalone {
			// Read rights only: it can never ask Clear for a token.
			env = append(env, "CLEAR_CLIENT_SECRET=")
		}
		p := erp.Start(proctest.TestRotator(tb), env, "gateway")
		awaitGateway(tb, p, addr)
		return erp, addr, p
	default:
		return rig.NewERP(tb, o), "", nil
	}
}

// listenAddr returns a loopback address whose port was free a moment ago, for nginx, which cannot
// say which port it bound when given port 0, and for the gateway. The race with other processes
// that bind the port meanwhile is short, and shows as a failure to listen, never as a wrong
// figure.
func listenAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// awaitGateway waits until the gateway at addr answers a call to the emulator's ping endpoint
// with 200: it listens and holds a live token.
func awaitGateway(tb testing.TB, p *rig.Proc, addr string) {
	tb.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	p.Await("the gateway's first 200", 30*time.Second, func() bool {
		return getThrough(client, "http://"+addr+rig.PingPath) == nil
	})
}

// getThrough makes a GET through the gateway, with the inbound key and no token.
func getThrough(client *http.Client, url string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set(gatewayKeyHeader, erpGatewayKey)
	return do(client, req, nil)
}

// postInvoice POSTs an invoice of a few kB through the gateway, with the inbound key and no
// token, and checks that Clear read the whole body: a replay must send the same bytes again.
func postInvoice(client *http.Client, url string, i int) error {
	body := fmt.Sprintf(`{"invoice":%d,"lines":"%s"}`, i, strings.Repeat("x", 2000+i%1000))
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set(gatewayKeyHeader, erpGatewayKey)
	req.Header.Set("Content-Type", "application/json")
	return do(client, req, func(answer []byte) error {
		var got struct{ Bytes int }
		if err := json.Unmarshal(answer, &got); err != nil {
			return fmt.Errorf("POST: answer %q: %v", bytes.TrimSpace(answer), err)
		}
		if got.Bytes != len(body) {
			return fmt.Errorf("POST: Clear read %d bytes of %d", got.Bytes, len(body))
		}
		return nil
	})
}

// gatewayRotations is how many rotations the ERP test runs through: the daemon renews the rig's
// fast tokens (3.5 s) every 2 s.
const gatewayRotations = 4

// TestGatewayERPNoFailedCalls is issue 17's promise to ERPs: with one API client, ERP instances
// that hold no token and call Clear through the gateway (GETs, and POSTs with bodies) see no
// failed call while the daemon rotates, embedded in the daemon and standalone. It counts
// failures, asserts none, and asserts no time (BenchmarkERPFailedCalls reports the figures with
// 12-second tokens).
func TestGatewayERPNoFailedCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind erpKind
	}{{"embedded", erpEmbedded}, {"standalone", erpStandalone}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			erp, gw, p := newERPGateway(t, rig.ERPOptions{}, tc.kind)
			calls, failed, rotations := runERP(t, erp, tc.kind, gw, gatewayRotations, rig.FastLifetime)
			replays, judged := gatewayLog(p.Output())
			t.Logf("%d ERP instances, %d calls (half of them POSTs with bodies), %d failed over %d rotations; the gateway replayed %d", erpInstances, calls, failed, rotations, replays)
			if failed != 0 {
				t.Errorf("%d of %d calls through the gateway failed over %d rotations; want 0", failed, calls, rotations)
			}
			// Enough calls that every rotation met some: about 20 a second per instance.
			if least := int64(erpInstances * rotations * 10); calls < least {
				t.Errorf("only %d calls over %d rotations; want at least %d", calls, rotations, least)
			}
			if erp.Invoices.Count() == 0 {
				t.Error("no POST reached Clear")
			}
			// A standalone gateway learns of a new token at its next look at the secret (every 5 s)
			// or after a 401, so with a rotation every 2 s some calls meet a revoked token and are
			// replayed: the zero above is the replay's, not luck.
			if tc.kind == erpStandalone && replays == 0 {
				t.Error("the standalone gateway replayed no call: the rotations did not meet the ERPs' calls")
			}
			// The daemon's own rotations are not revocations outside the rotator: a gateway that
			// judged them so would log an error and, with the rotator's rights, force rotations.
			for _, line := range judged {
				t.Errorf("the gateway logged an error during ordinary rotations: %s", line)
			}
		})
	}
}

// gatewayLog reads a gateway's JSON log (at debug level): the requests it replayed, and its
// error lines.
func gatewayLog(out string) (replays int, errs []string) {
	for line := range strings.SplitSeq(out, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec["msg"] == "gateway request" && rec["replayed"] == true {
			replays++
		}
		if rec["level"] == "ERROR" {
			errs = append(errs, line)
		}
	}
	return replays, errs
}

// TestStandaloneGatewayHoldsALoneCallThroughASlowWrite: the built `rotator gateway`, standalone
// with read rights only, one API client, ROTATOR_GATEWAY_POLL=30s and ROTATOR_GATEWAY_HOLD=4s, in
// front of a daemon whose token writes reach Secrets Manager a second after Clear revoked the old
// token. An ERP that calls rarely makes one POST just as each rotation revokes the token: the
// gateway's look at once after the 401 comes before the write, and nothing else nudges it. The
// call must be held until the gateway has seen the newer token and be replayed, not get Clear's
// 401 after the hold (the gateway used to look once, then wait for its next poll).
func TestStandaloneGatewayHoldsALoneCallThroughASlowWrite(t *testing.T) {
	t.Parallel()
	erp := rig.NewERP(t, rig.ERPOptions{Lifetime: 7 * time.Second, RenewBefore: 3500 * time.Millisecond})
	erp.Hide(erpGatewayKey)
	addr := listenAddr(t)
	p := erp.Start(proctest.TestRotator(t), []string{
		"CLEAR_CLIENT_SECRET=", // read rights only
		"ROTATOR_GATEWAY_ADDR=" + addr,
		"ROTATOR_GATEWAY_KEY=" + erpGatewayKey,
		"ROTATOR_GATEWAY_POLL=30s",
		"ROTATOR_GATEWAY_HOLD=4s",
		"ROTATOR_HTTP_ADDR=",
		"LOG_LEVEL=debug",
	}, "gateway")
	awaitGateway(t, p, addr)
	erp.SetTokenWriteDelay(time.Second)
	client := &http.Client{Timeout: 30 * time.Second}
	const rotations = 2
	for i := range rotations {
		issued := erp.Issued()
		p.Await("a rotation", 20*time.Second, func() bool { return erp.Issued() > issued })
		if err := postInvoice(client, "http://"+addr+rig.InvoicePath, i); err != nil {
			t.Errorf("rotation %d: the lone call made as Clear revoked the token failed: %v", i+1, err)
		}
	}
	// Access lines are written in batches, up to 100 ms after the request.
	deadline := time.Now().Add(2 * time.Second)
	replays, errs := gatewayLog(p.Output())
	for replays < rotations && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		replays, errs = gatewayLog(p.Output())
	}
	t.Logf("%d lone calls, %d replayed, %d token writes held back", rotations, replays, erp.HeldWrites())
	if replays != rotations {
		t.Errorf("the gateway replayed %d calls, want %d: each call met a revoked token", replays, rotations)
	}
	for _, line := range errs {
		t.Errorf("the gateway logged an error: %s", line)
	}
}
