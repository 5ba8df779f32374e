package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/cleartoken"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// ERP benchmark parameters: the measurement (three ERP instances re-reading every 3 s,
// 12-second tokens) made repeatable.
const (
	erpInstances = 3
	erpReread    = 3 * time.Second       // the plain ERP's re-read interval (N)
	erpPace      = 50 * time.Millisecond // pause between one instance's calls
	erpLifetime  = 12 * time.Second      // renewed every 8 s by the rotator
	erpRotations = 4
)

// erpRow is one row of BENCHMARKS.md's "ERP-visible failed calls per rotation" table.
type erpRow struct {
	name       string
	apiClients int     // 2 for the rotator's two-API-client mode
	erp        erpKind // what the ERP instances do
}

// erpKind is how an ERP instance gets its calls to Clear through.
type erpKind int

const (
	erpPlain      erpKind = iota // re-reads AWSCURRENT every erpReread, no 401 handling
	erpCleartoken                // package cleartoken's Transport
	erpEmbedded                  // holds no token: calls the daemon's gateway (rotator run, ROTATOR_GATEWAY_ADDR)
	erpStandalone                // holds no token: calls a standalone `rotator gateway` beside it
	// holds no token: calls a standalone `rotator gateway` given the client secret (the rotator's
	// rights), which heals a token revoked outside the rotator (BenchmarkRevokedOutside)
	erpStandaloneRotator
)

var erpRows = []erpRow{
	{name: "a-one-client-plain-reread", erp: erpPlain},
	{name: "b-one-client-cleartoken", erp: erpCleartoken},
	// (c) two API clients used in turn (issue 10): the plain re-read of (a), with nothing refused.
	{name: "c-two-clients-plain-reread", erp: erpPlain, apiClients: 2},
	// (d), (e) the Clear gateway (issue 17): one API client, the ERP holds no token and sends GETs
	// and POSTs with bodies through the gateway.
	{name: "d-one-client-gateway-embedded", erp: erpEmbedded},
	{name: "e-one-client-gateway-standalone", erp: erpStandalone},
}

// BenchmarkERPFailedCalls measures what ERP systems see of rotations: erpInstances ERP instances
// call Clear's business endpoints continuously (one call per erpPace each) while the real
// rotator (`rotator run`, every second) renews 12-second tokens in moto, for erpRotations
// rotations. It reports the calls Clear refused per rotation. The plain ERP re-reads AWSCURRENT
// every erpReread and has no 401 handling; the cleartoken ERP uses cleartoken.NewTransport with
// its default TTL, one Source per instance as separate processes would have; the gateway ERPs
// hold no token and call the gateway, embedded in the daemon or standalone.
func BenchmarkERPFailedCalls(b *testing.B) {
	for _, row := range erpRows {
		b.Run(row.name, func(b *testing.B) {
			for range b.N {
				// The rotator's default renewal (a third of the lifetime left), as in production.
				o := rig.ERPOptions{Lifetime: erpLifetime, APIClients: row.apiClients}
				erp, gw, p := newERPGateway(b, o, row.erp)
				calls, failed, rotations := runERP(b, erp, row.erp, gw, erpRotations, erpLifetime)
				perRotation := float64(failed) / float64(rotations)
				b.ReportMetric(perRotation, "failed/rotation")
				b.ReportMetric(float64(calls), "calls")
				b.ReportMetric(float64(rotations), "rotations")
				if p != nil {
					replays, _ := gatewayLog(p.Output())
					b.ReportMetric(float64(replays), "replays")
				}
				b.Logf("%s: %d ERP instances, %d calls, %d failed over %d rotations of %s tokens: %.1f failed calls per rotation (%.2f%%)",
					row.name, erpInstances, calls, failed, rotations, erpLifetime, perRotation, 100*float64(failed)/float64(calls))
			}
		})
	}
}

// runERP runs the ERP instances until the world has issued rotations more tokens of the given
// lifetime, bounded in time and in calls, and returns the calls made, the calls that failed and the rotations seen.
// gw is the gateway's address for the gateway kinds. The leak scan (the rig's, when the test
// ends) covers every token stored.
func runERP(tb testing.TB, erp *rig.ERP, kind erpKind, gw string, rotations int, lifetime time.Duration) (calls, failed int64, seen int) {
	tb.Helper()
	start := erp.Issued()
	target := start + rotations
	// Three lifetimes per rotation: the renewals come every two thirds (or half) of one.
	bound := time.Duration(rotations) * 3 * lifetime
	deadline := time.Now().Add(bound)
	var nCalls, nFailed atomic.Int64
	var wg sync.WaitGroup
	for i := range erpInstances {
		call := erpCaller(erp, kind, gw, i)
		wg.Go(func() {
			for i := 0; i < 100000 && erp.Issued() < target && time.Now().Before(deadline); i++ {
				nCalls.Add(1)
				if err := call(i); err != nil {
					if nFailed.Add(1) <= 5 {
						tb.Logf("ERP call %d failed: %v", i, err)
					}
				}
				time.Sleep(erpPace)
			}
		})
	}
	wg.Wait()
	seen = erp.Issued() - start
	if seen < rotations {
		tb.Fatalf("only %d of %d rotations within %s", seen, rotations, bound)
	}
	return nCalls.Load(), nFailed.Load(), seen
}

// erpCaller returns one ERP instance's call: its i-th call's error, nil when Clear accepted it.
func erpCaller(erp *rig.ERP, kind erpKind, gw string, instance int) func(i int) error {
	switch kind {
	case erpCleartoken:
		client := &http.Client{Transport: cleartoken.NewTransport(cleartoken.NewSource(erp.SM, erp.TokenID), nil), Timeout: 30 * time.Second}
		return func(int) error { return get(client, erp.ClearURL+rig.PingPath, "") }
	case erpEmbedded, erpStandalone, erpStandaloneRotator:
		client := &http.Client{Timeout: 30 * time.Second}
		return func(i int) error {
			// Every other call a POST with a body the gateway must send again, whole, on a 401.
			if (i+instance)%2 == 1 {
				return postInvoice(client, "http://"+gw+rig.InvoicePath, i)
			}
			return getThrough(client, "http://"+gw+rig.PingPath)
		}
	default:
		var tok string
		var readAt time.Time
		return func(int) error {
			if time.Since(readAt) >= erpReread {
				if t, err := readCurrent(erp); err == nil {
					tok, readAt = t, time.Now()
				}
			}
			return get(http.DefaultClient, erp.ClearURL+rig.PingPath, tok)
		}
	}
}

// readCurrent reads the token in AWSCURRENT as a plain ERP does, from any goroutine.
func readCurrent(erp *rig.ERP) (string, error) {
	out, err := erp.SM.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(erp.TokenID), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		return "", err
	}
	doc, err := document.ParseToken([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		return "", err
	}
	return doc.AccessToken.Reveal(), nil
}

// get makes one call, with tok in the header unless it is empty (the Transport sets it), and
// returns why Clear did not accept it, or nil.
func get(client *http.Client, url, tok string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set(clear.HeaderAuthToken, tok)
	}
	return do(client, req, nil)
}

// do sends req and returns nil for a 200, an error naming the status otherwise; check, when set,
// also judges the body of a 200.
func do(client *http.Client, req *http.Request, check func([]byte) error) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(body))
	}
	if check != nil {
		return check(body)
	}
	return nil
}
