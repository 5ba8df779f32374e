package bench

import (
	"context"
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
	apiClients int  // 2 for the rotator's two-API-client mode
	cleartoken bool // the ERP uses package cleartoken; otherwise it re-reads every erpReread
}

var erpRows = []erpRow{
	{name: "a-one-client-plain-reread", cleartoken: false},
	{name: "b-one-client-cleartoken", cleartoken: true},
	// (c) two API clients used in turn (issue 10): the plain re-read of (a), with nothing refused.
	{name: "c-two-clients-plain-reread", cleartoken: false, apiClients: 2},
}

// BenchmarkERPFailedCalls measures what ERP systems see of rotations: erpInstances ERP instances
// call the emulator's ping endpoint continuously (one call per erpPace each) while the real
// rotator (`rotator run`, every second) renews 12-second tokens in moto, for erpRotations
// rotations. It reports the calls Clear refused per rotation. The plain ERP re-reads AWSCURRENT
// every erpReread and has no 401 handling; the cleartoken ERP uses cleartoken.NewTransport with
// its default TTL, one Source per instance as separate processes would have.
func BenchmarkERPFailedCalls(b *testing.B) {
	for _, row := range erpRows {
		b.Run(row.name, func(b *testing.B) {
			for range b.N {
				// The rotator's default renewal (a third of the lifetime left), as in production.
				erp := rig.NewERP(b, rig.ERPOptions{Lifetime: erpLifetime, APIClients: row.apiClients})
				calls, failed, rotations := runERP(b, erp, row.cleartoken)
				perRotation := float64(failed) / float64(rotations)
				b.ReportMetric(perRotation, "failed/rotation")
				b.ReportMetric(float64(calls), "calls")
				b.ReportMetric(float64(rotations), "rotations")
				b.Logf("%s: %d ERP instances, %d calls, %d failed over %d rotations of %s tokens: %.1f failed calls per rotation (%.2f%%)",
					row.name, erpInstances, calls, failed, rotations, erpLifetime, perRotation, 100*float64(failed)/float64(calls))
			}
		})
	}
}

// runERP runs the ERP instances until the world has issued erpRotations more tokens, bounded in
// time and in calls, and returns the calls made, the calls that failed and the rotations seen.
// The leak scan (the rig's, when the benchmark ends) covers every token stored.
func runERP(b *testing.B, erp *rig.ERP, useCleartoken bool) (calls, failed int64, rotations int) {
	b.Helper()
	start := erp.Issued()
	target := start + erpRotations
	deadline := time.Now().Add(erpRotations * 3 * erpLifetime)
	var nCalls, nFailed atomic.Int64
	var wg sync.WaitGroup
	for range erpInstances {
		wg.Go(func() {
			var call func() bool
			if useCleartoken {
				client := &http.Client{Transport: cleartoken.NewTransport(cleartoken.NewSource(erp.SM, erp.TokenID), nil), Timeout: 30 * time.Second}
				call = func() bool { return get(client, erp.ClearURL+rig.PingPath, "") }
			} else {
				var tok string
				var readAt time.Time
				call = func() bool {
					if time.Since(readAt) >= erpReread {
						if t, err := readCurrent(erp); err == nil {
							tok, readAt = t, time.Now()
						}
					}
					return get(http.DefaultClient, erp.ClearURL+rig.PingPath, tok)
				}
			}
			for i := 0; i < 100000 && erp.Issued() < target && time.Now().Before(deadline); i++ {
				nCalls.Add(1)
				if !call() {
					nFailed.Add(1)
				}
				time.Sleep(erpPace)
			}
		})
	}
	wg.Wait()
	rotations = erp.Issued() - start
	if rotations < erpRotations {
		b.Fatalf("only %d of %d rotations within %s", rotations, erpRotations, erpRotations*3*erpLifetime)
	}
	return nCalls.Load(), nFailed.Load(), rotations
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
// reports whether Clear accepted it.
func get(client *http.Client, url, tok string) bool {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	if tok != "" {
		req.Header.Set(clear.HeaderAuthToken, tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
