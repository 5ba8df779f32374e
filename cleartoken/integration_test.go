package cleartoken_test

// Integration tests: the real SDK client against moto, the Clear emulator on loopback, and the real
// rotator (`rotator run`, the test build) rotating 3.5-second tokens every 2 seconds, in an ERP's
// world of the shared rig (rig.NewERP). Every loop is bounded in count and time, and the assertions
// are counts of failed calls, never durations.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/cleartoken"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

func TestMain(m *testing.M) { rig.Main(m, 16) }

// countingSM counts GetSecretValue calls.
type countingSM struct {
	cleartoken.SecretsManager
	n atomic.Int64
}

func (c *countingSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.n.Add(1)
	return c.SecretsManager.GetSecretValue(ctx, in, o...)
}

// hammer runs workers goroutines that call Clear's ping endpoint through client, one call every
// 20 ms each, until the world has issued `rotations` more tokens (or a bound is hit), and returns
// the calls made and the calls that failed.
func hammer(t *testing.T, erp *rig.ERP, client *http.Client, workers, rotations int) (calls, failed int64) {
	t.Helper()
	target := erp.Issued() + rotations
	deadline := time.Now().Add(time.Duration(rotations+1) * 10 * time.Second)
	var nCalls, nFailed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := 0; i < 10000 && erp.Issued() < target && time.Now().Before(deadline); i++ {
				nCalls.Add(1)
				resp, err := client.Get(erp.ClearURL + rig.PingPath)
				if err != nil {
					nFailed.Add(1)
					t.Logf("call failed: %v", err)
				} else {
					if resp.StatusCode != http.StatusOK {
						nFailed.Add(1)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if got := erp.Issued(); got < target {
		t.Fatalf("only %d of %d rotations happened within the bound; rotator output:\n%s", got-(target-rotations), rotations, erp.Proc.Output())
	}
	return nCalls.Load(), nFailed.Load()
}

// TestRotationsWithManyGoroutines: 20 goroutines call Clear continuously through three rotations of
// 3.5-second tokens, each of which revokes the token they share. No call may fail, and the secret
// is read at most once per TTL plus one wait per rotation.
func TestRotationsWithManyGoroutines(t *testing.T) {
	t.Parallel()
	erp := rig.NewERP(t, rig.ERPOptions{}) // a rotation every 2 s
	logs := &proctest.Buffer{}
	erp.RecordFrom(logs)
	sm := &countingSM{SecretsManager: erp.SM}
	const ttl = time.Second
	src := cleartoken.NewSource(sm, erp.TokenID, cleartoken.WithTTL(ttl),
		cleartoken.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	client := &http.Client{Transport: cleartoken.NewTransport(src, nil), Timeout: 30 * time.Second}

	start := time.Now()
	calls, failed := hammer(t, erp, client, 20, 3)
	elapsed := time.Since(start)
	reads := sm.n.Load()
	t.Logf("%d calls through 3 rotations, %d failed; %d GetSecretValue in %s", calls, failed, reads, elapsed.Round(time.Second))
	if failed != 0 {
		t.Errorf("%d of %d calls failed", failed, calls)
	}
	// One read per TTL, plus at most one backoff sequence (10 reads) per rotation.
	if limit := 2 + int64(elapsed/ttl) + 3*10; reads > limit {
		t.Errorf("%d reads, want at most %d", reads, limit)
	}
}

// TestSlowRotatorStore: the rotator's token writes reach Secrets Manager 1 s after Clear has issued
// the token and revoked the previous one. Callers (every 20 ms) hit the revoked token at once, and
// the Source's wait re-reads at about 0, 0.1, 0.3 and 0.7 s before the write lands and picks the
// new token up at the next read, by 1.8 s. The Transport waits for the new token; no call fails.
// The new token must outlive that wait: tokens live 7 s and are renewed after half of that, so the
// next rotation comes at least a second after every waiting caller has the new token (a rotation
// every 4 s or so).
func TestSlowRotatorStore(t *testing.T) {
	t.Parallel()
	erp := rig.NewERP(t, rig.ERPOptions{Lifetime: 7 * time.Second, RenewBefore: 3500 * time.Millisecond})
	const delay = time.Second
	erp.SetTokenWriteDelay(delay)
	src := cleartoken.NewSource(erp.SM, erp.TokenID)
	client := &http.Client{Transport: cleartoken.NewTransport(src, nil), Timeout: 30 * time.Second}
	calls, failed := hammer(t, erp, client, 10, 2)
	// The second rotation's write may still be held when the loop ends; wait for it to land so
	// that the count of held writes is settled.
	erp.Proc.Await("the last token write", 10*time.Second, erp.Live)
	t.Logf("%d calls through 2 slow rotations (%d token writes held back %s), %d failed", calls, erp.HeldWrites(), delay, failed)
	if erp.HeldWrites() < 2 {
		t.Errorf("%d token writes were held back, want at least 2", erp.HeldWrites())
	}
	if failed != 0 {
		t.Errorf("%d of %d calls failed", failed, calls)
	}
}

// TestBodyThatCannotBeReplayed: once the token a Source holds is revoked, a POST whose body has no
// GetBody gets Clear's 401 as is (sent once), and the same POST with a replayable body succeeds on
// its retry. The tokens never expire, so the one rotation is an operator's `rotator rotate
// --force`, and no scheduled rotation can revoke the newer token between the two POSTs.
func TestBodyThatCannotBeReplayed(t *testing.T) {
	t.Parallel()
	erp := rig.NewERP(t, rig.ERPOptions{Lifetime: -1})
	src := cleartoken.NewSource(erp.SM, erp.TokenID, cleartoken.WithTTL(time.Hour))
	client := &http.Client{Transport: cleartoken.NewTransport(src, nil), Timeout: 30 * time.Second}
	ctx := context.Background()
	held, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := erp.Rotator("rotate", "--force"); r.Code != 0 || erp.Emu.Live(held) {
		t.Fatalf("the forced rotation did not revoke the token the Source holds:\n%s", r.Output())
	}

	before := erp.Invoices.Count()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, erp.ClearURL+rig.InvoicePath, io.NopCloser(strings.NewReader(`{"invoice":1}`)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !bytes.Contains(body, []byte("CLI-TOK-002")) {
		t.Errorf("non-replayable POST: %d %s, want Clear's 401", resp.StatusCode, body)
	}
	if n := erp.Invoices.Count() - before; n != 1 {
		t.Errorf("the non-replayable POST reached Clear %d times, want 1", n)
	}

	before = erp.Invoices.Count()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, erp.ClearURL+rig.InvoicePath, strings.NewReader(`{"invoice":2}`))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"bytes":13`)) {
		t.Errorf("replayable POST: %d %s, want 200 with the whole body", resp.StatusCode, body)
	}
	// The refused non-replayable POST started a wait for the newer token in the background; this
	// POST either joins it (one call) or starts before it and is retried once (two calls).
	if n := erp.Invoices.Count() - before; n != 1 && n != 2 {
		t.Errorf("the replayable POST reached Clear %d times, want 1 or 2", n)
	}
}

// TestSecretErrorsAgainstMoto: a missing secret, and secrets that hold no token document, give a
// *cleartoken.Error of the right Kind that names the secret and quotes none of its value, both
// from Token and through an http.Client.
func TestSecretErrorsAgainstMoto(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{})
	ctx := context.Background()
	const leak = "MOTO-LEAK-CANARY-31415926"
	create := func(kind string, in *secretsmanager.CreateSecretInput) string {
		id := mototest.Name(t, kind)
		in.Name = aws.String(id)
		if _, err := w.SM.CreateSecret(ctx, in); err != nil {
			t.Fatal(err)
		}
		return id
	}
	cases := []struct {
		name, id string
		kind     cleartoken.Kind
	}{
		{"missing", mototest.Name(t, "missing"), cleartoken.KindNotFound},
		{"no value yet", create("novalue", &secretsmanager.CreateSecretInput{}), cleartoken.KindNotFound},
		{"not JSON", create("notjson", &secretsmanager.CreateSecretInput{SecretString: aws.String(leak)}), cleartoken.KindMalformed},
		{"cut short", create("cut", &secretsmanager.CreateSecretInput{SecretString: aws.String(`{"access_token":"` + leak)}), cleartoken.KindMalformed},
		{"template", create("template", &secretsmanager.CreateSecretInput{SecretString: aws.String(`{}`)}), cleartoken.KindNoToken},
		{"binary", create("binary", &secretsmanager.CreateSecretInput{SecretBinary: []byte(`{"access_token":"` + leak + `"}`)}), cleartoken.KindBinary},
	}
	for _, tc := range cases {
		src := cleartoken.NewSource(w.SM, tc.id)
		_, err := src.Token(ctx)
		var e *cleartoken.Error
		if !errors.As(err, &e) || e.Kind != tc.kind || e.SecretID != tc.id {
			t.Errorf("%s: Token error = %v, want a *cleartoken.Error of kind %v", tc.name, err, tc.kind)
			continue
		}
		_, herr := (&http.Client{Transport: cleartoken.NewTransport(src, nil)}).Get(w.ClearURL + rig.PingPath)
		if !errors.As(herr, &e) || e.Kind != tc.kind {
			t.Errorf("%s: http.Client error = %v", tc.name, herr)
		}
		for _, msg := range []string{err.Error(), fmt.Sprintf("%+v", herr)} {
			if strings.Contains(msg, "CANARY") {
				t.Errorf("%s: the secret's value leaked into the error: %s", tc.name, msg)
			}
		}
		t.Logf("%s: %v", tc.name, err)
	}
}
