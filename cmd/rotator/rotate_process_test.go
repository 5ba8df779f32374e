package main

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// The process tests run the built rotator (the test build, proctest.TestRotator) against a
// rig.World on the wire: moto and the Clear emulator over HTTP. Each test has its own world (token
// secret, client secrets, emulator), so they run in parallel; the world's leak scan checks every
// output they captured when they end.

// world builds a world for one process test, which runs in parallel with the others.
func world(t *testing.T, o rig.Options) *rig.World {
	t.Helper()
	t.Parallel()
	return rig.New(t, o)
}

// rotatorEnv runs the rotator's test build with the world's environment plus env.
func rotatorEnv(w *rig.World, env []string, args ...string) rig.Result {
	w.T.Helper()
	return w.RunEnv(proctest.TestRotator(w.T), env, args...)
}

func wantCode(t testing.TB, r rig.Result, code int, contains string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Stdout+r.Stderr, contains) {
		t.Fatalf("exit %d (want %d), output lacks %q:\n%s", r.Code, code, contains, r.Output())
	}
}

// stageToken returns the access token of the token secret's version that carries stage.
func stageToken(w *rig.World, stage string) string {
	w.T.Helper()
	v, _, ok := w.Read(stage)
	if !ok {
		w.T.Fatalf("no version carries %s", stage)
	}
	d, err := document.ParseToken([]byte(v))
	if err != nil {
		w.T.Fatalf("%s holds no token: %v", stage, err)
	}
	tok := d.AccessToken.Reveal()
	w.Hide(tok)
	return tok
}

func TestRotateThenNotDue(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	// The outcome once: "default: rotated: rotated; next renewal" said it twice (an audit's walk-through).
	wantCode(t, w.Rotator("rotate"), 0, "default: rotated: next renewal at ")
	if !w.Live() {
		t.Fatal("stored token is not live")
	}
	n := len(w.Versions())
	wantCode(t, w.Rotator("rotate"), 0, "default: not_due")
	if len(w.Versions()) != n || w.ClearRequests() != 1 {
		t.Fatalf("a not-due rotate wrote versions or called Clear (%d requests)", w.ClearRequests())
	}
	wantCode(t, w.Rotator("rotate", "--client", "nope"), 2, `no client named "nope"`)
	wantCode(t, w.Rotator("rotate", "--bogus"), 2, "rotate does not take the flag --bogus")
}

func TestParallelRotateProcessesMakeOneRequest(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"rotate"}, {"rotate", "--force"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			w := world(t, rig.Options{Lifetime: time.Hour})
			if len(args) == 2 {
				// Forcing needs a token to replace, issued more than a minute ago: store one.
				seedOldToken(w)
			}
			before := w.ClearRequests()
			// Clear answers slowly, so that all five processes read before the first one stores its
			// token: they are concurrent, which is what makes them cost one request. (A force that
			// starts after another finished asks Clear again, as it must.)
			w.Emu.Inject(emulator.Fault{Delay: 5 * time.Second})
			var wg sync.WaitGroup
			results := make([]rig.Result, 5)
			for i := range results {
				wg.Go(func() { results[i] = w.Rotator(args...) })
			}
			wg.Wait()
			var outcomes []string
			for _, r := range results {
				if r.Code != 0 {
					t.Errorf("exit %d: %s", r.Code, r.Output())
				}
				outcomes = append(outcomes, strings.Fields(r.Stdout)[1])
			}
			sort.Strings(outcomes)
			if got := w.ClearRequests() - before; got != 1 {
				t.Fatalf("%d Clear requests from 5 processes (outcomes %v), want 1", got, outcomes)
			}
			if !w.Live() {
				t.Fatal("stored token is not live")
			}
			t.Logf("outcomes: %v", outcomes)
		})
	}
}

// seedOldToken rotates once, then rewrites the stored token's issued_at two minutes into the past
// so that a forced rotation is not taken as a duplicate of it.
func seedOldToken(w *rig.World) {
	w.T.Helper()
	wantCode(w.T, w.Rotator("rotate"), 0, "rotated")
	tok, _ := w.MustCurrent()
	tok.IssuedAt = tok.IssuedAt.Add(-2 * time.Minute)
	body, _ := document.MarshalToken(tok)
	if _, err := w.SM.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(w.TokenID), SecretString: aws.String(string(body))}); err != nil {
		w.T.Fatal(err)
	}
}

func TestDailyLimitRefusal(t *testing.T) {
	// Forced rotations: each makes a request, whatever the token's lifetime.
	w := world(t, rig.Options{Lifetime: time.Hour, DailyLimit: 2})
	for range 2 {
		wantCode(t, w.Rotator("rotate", "--force"), 0, "rotated")
	}
	r := w.Rotator("rotate", "--force")
	wantCode(t, r, 1, "refused by the daily limit: 2 of 2")
	if w.ClearRequests() != 2 {
		t.Fatalf("Clear requests = %d, want 2", w.ClearRequests())
	}
	st := statusOf(t, w)
	if st.RequestsToday == nil || *st.RequestsToday != 2 || st.DailyLimit != 2 || st.BlockedUntil == nil || st.State != "limited" {
		t.Fatalf("status = %+v", st)
	}
	// The runbook's remedy when a token is needed before midnight: a higher
	// limit for one forced rotation (Clear's own is 288) counts on from the
	// day's requests, and allows exactly the difference.
	raised := []string{"ROTATOR_DAILY_LIMIT=3"}
	wantCode(t, rotatorEnv(w, raised, "rotate", "--force"), 0, "rotated")
	wantCode(t, rotatorEnv(w, raised, "rotate", "--force"), 1, "refused by the daily limit: 3 of 3")
	if w.ClearRequests() != 3 {
		t.Fatalf("Clear requests = %d, want 3", w.ClearRequests())
	}
}

func TestInvalidConfigurationExits2(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	for _, v := range []string{"0", "251", "300", "abc", "-1"} {
		r := rotatorEnv(w, []string{"ROTATOR_DAILY_LIMIT=" + v}, "rotate")
		wantCode(t, r, 2, "ROTATOR_DAILY_LIMIT")
	}
	wantCode(t, rotatorEnv(w, []string{"CLEAR_BASE_URL=http://clear.example.com"}, "check"), 2, "https")
	wantCode(t, w.Rotator("frobnicate"), 2, "unknown command")
	if w.ClearRequests() != 0 {
		t.Fatal("a refused configuration called Clear")
	}
}

// statusDoc is one client of `status --json`: the operator contract.
type statusDoc struct {
	Name                   string            `json:"name"`
	State                  string            `json:"state"`
	ValidTill              *string           `json:"valid_till"`
	IssuedAt               *string           `json:"issued_at"`
	RenewAt                *string           `json:"renew_at"`
	APIClient              *int              `json:"api_client"`
	RequestsToday          *int              `json:"requests_today"`
	DailyLimit             int               `json:"daily_limit"`
	BlockedUntil           *string           `json:"blocked_until"`
	BlockedReason          *string           `json:"blocked_reason"`
	LastError              *string           `json:"last_error"`
	Degraded               bool              `json:"degraded"`
	APIClients             []json.RawMessage `json:"api_clients"`
	ConsumerRereadInterval *string           `json:"consumer_reread_interval"`
	InFlight               json.RawMessage   `json:"in_flight"`
	TokenLost              json.RawMessage   `json:"token_lost"`
	RevokedOutside         *struct {
		Version string  `json:"version"`
		At      *string `json:"at"`
	} `json:"revoked_outside"`
}

// statusOf runs `status --json` and returns its one client, checking the document's exact keys.
func statusOf(t *testing.T, w *rig.World) statusDoc {
	t.Helper()
	r := w.Rotator("status", "--json")
	if r.Code != 0 {
		t.Fatalf("status: exit %d: %s", r.Code, r.Stderr)
	}
	var doc map[string][]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.Stdout)
	}
	if len(doc) != 1 || len(doc["clients"]) != 1 {
		t.Fatalf("status --json: want {\"clients\": [one]}, got %s", r.Stdout)
	}
	var keys []string
	for k := range doc["clients"][0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got, want := strings.Join(keys, ","), "api_client,api_clients,blocked_reason,blocked_until,consumer_reread_interval,daily_limit,degraded,in_flight,issued_at,last_error,name,renew_at,renewals_per_day,requests_today,revoked_outside,state,token_lost,valid_till"; got != want {
		t.Fatalf("status keys %s, want exactly %s", got, want)
	}
	var s struct{ Clients []statusDoc }
	_ = json.Unmarshal([]byte(r.Stdout), &s)
	return s.Clients[0]
}

func TestUnauthorizedIsPermanentAndShown(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	w.Emu.SetSecretActive(w.Secrets[0], false)
	wantCode(t, w.Rotator("rotate"), 1, "CLI-SEC-002")
	wantCode(t, w.Rotator("rotate"), 1, "blocked until its client secret changes")
	if w.ClearRequests() != 1 {
		t.Fatalf("Clear requests = %d, want 1: a 401 must not be retried", w.ClearRequests())
	}
	st := statusOf(t, w)
	// Issue 8: blocked_until is a time or null, with a separate reason.
	if st.BlockedUntil != nil || st.BlockedReason == nil || !strings.Contains(*st.BlockedReason, "unauthorized") ||
		st.State != "blocked" || st.LastError == nil || !strings.Contains(*st.LastError, "CLI-SEC-002") {
		t.Fatalf("status = %+v", st)
	}
	r := w.Rotator("status")
	wantCode(t, r, 0, "until the client secret changes")
	wantCode(t, w.Rotator("status", "--check"), 1, "not OK: default (blocked)")
}

func TestServerErrorShowsErrorIDAndBacksOff(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	w.Emu.Inject(emulator.Fault{Status: 500})
	r := w.Rotator("rotate")
	wantCode(t, r, 1, "error_id ")
	wantCode(t, w.Rotator("rotate"), 1, "backing off until")
	if w.ClearRequests() != 1 {
		t.Fatalf("Clear requests = %d, want 1 while backing off", w.ClearRequests())
	}
	// An operator may force through a backoff.
	wantCode(t, w.Rotator("rotate", "--force"), 0, "rotated")
}

func TestMalformedAnswerKeepsTheGoodToken(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Second})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	good, goodID := w.MustCurrent()
	w.Emu.Inject(emulator.Oversized())
	wantCode(t, w.Rotator("rotate", "--force"), 1, "malformed")
	now, nowID := w.MustCurrent()
	if nowID != goodID || now.AccessToken.Reveal() != good.AccessToken.Reveal() {
		t.Fatal("a malformed answer replaced the stored token")
	}
}

func TestSigtermDuringSlowAnswerStillStoresToken(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	w.Emu.Inject(emulator.Fault{Delay: 2 * time.Second})
	// No ops listener: `rotate` serves none, and Start then does not wait for one.
	p := w.Start(proctest.TestRotator(t), []string{"ROTATOR_HTTP_ADDR="}, "rotate")
	// Wait until the request is at Clear, then ask the process to stop. The wait is long because
	// the package's process tests all run at once: on a loaded two-core machine a process can take
	// more than 10 s to start and read its secrets.
	p.Await("the request at Clear", 30*time.Second, func() bool { return w.ClearRequests() > 0 })
	if code := p.Stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if !w.Live() {
		t.Fatal("the token Clear issued after SIGTERM was not stored")
	}
}

func TestCheckNeverCallsClear(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("check"), 0, "does not exist yet")
	id := mototest.Name(t, "client")
	if _, err := w.SM.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(`{"client_secret":"` + w.Secrets[0] + `"}`)}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, rotatorEnv(w, []string{"CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=" + id}, "check"), 0, "ok")
	failed := rotatorEnv(w, []string{"CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=missing/secret"}, "check")
	wantCode(t, failed, 1, "ResourceNotFoundException")
	// The details are on stdout; stderr ends with the summary.
	if !strings.HasSuffix(failed.Stderr, "rotator: 1 problem(s) found by the check\n") {
		t.Errorf("check's stderr does not end with its summary:\n%s", failed.Stderr)
	}
	if w.ClearRequests() != 0 {
		t.Fatal("check called Clear")
	}
	wantCode(t, w.Rotator("version"), 0, "clear-rotator ")
}

func TestYAMLConfigSeveralClients(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	second := w.Secrets[0] + "-2"
	w.Emu.AddSecret(second)
	w.Hide(second)
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	yaml := "clients:\n" +
		"  - name: erp-a\n    client_secret: " + w.Secrets[0] + "\n    token_secret_id: " + w.TokenID + "\n" +
		"  - name: erp-b\n    client_secret: " + second + "\n    token_secret_id: " + w.TokenID + "-b\n    daily_limit: 10\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"ROTATOR_CONFIG=" + path, "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID="}
	r := rotatorEnv(w, env, "rotate")
	wantCode(t, r, 0, "erp-a: rotated")
	wantCode(t, r, 0, "erp-b: rotated")
	wantCode(t, rotatorEnv(w, env, "rotate", "--client", "erp-b"), 0, "erp-b: not_due")
	// Two clients sharing a token secret would revoke each other's tokens.
	dup := "clients:\n" +
		"  - name: erp-a\n    client_secret: " + w.Secrets[0] + "\n    token_secret_id: shared\n" +
		"  - name: erp-b\n    client_secret: " + second + "\n    token_secret_id: shared\n"
	if err := os.WriteFile(path, []byte(dup), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCode(t, rotatorEnv(w, env, "check"), 2, "shared")
}

func TestFlagsBelongToTheirCommand(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("status", "--force"), 2, "status does not take the flag --force")
	wantCode(t, w.Rotator("check", "--client", "default"), 2, "check does not take the flag --client")
	wantCode(t, w.Rotator("run", "--json"), 2, "run does not take the flag --json")
	if w.ClearRequests() != 0 {
		t.Fatal("a usage error called Clear")
	}
}

// TestStatusRenewsALostTokenNow: a rotator died holding a claim (the runbook's token-lost with
// "certain": false); once its lease has ended, the next check rotates at once, and status, which
// says what rotate would do, must say the token is due now. It said RENEWS "in 40m", the renewal of
// the token that the lost one may have revoked.
func TestStatusRenewsALostTokenNow(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	abandonClaim(w, time.Now().Add(-time.Minute))

	r := w.Rotator("status")
	wantCode(t, r, 0, "token-lost")
	if row := strings.Fields(strings.Split(r.Stdout, "\n")[1]); len(row) < 6 || row[4] != "now" {
		t.Errorf("RENEWS of a lost token is not now:\n%s", r.Stdout)
	}
	st := statusOf(t, w)
	if st.State != "token-lost" || st.RenewAt == nil {
		t.Fatalf("status: %+v", st)
	}
	if at, err := time.Parse(time.RFC3339, *st.RenewAt); err != nil || at.After(time.Now()) {
		t.Errorf("renew_at of a lost token = %s, want now", *st.RenewAt)
	}
	// What status says, rotate does: not forced, it replaces the token at once.
	wantCode(t, w.Rotator("rotate"), 0, "default: rotated")
	if !w.Live() || w.ClearRequests() != 2 {
		t.Fatalf("after the loss: live %v, %d Clear requests (want 2)", w.Live(), w.ClearRequests())
	}
}

// abandonClaim records in ROTATOR_STATE a claim on the token in AWSCURRENT whose owner vanished,
// its lease ended at leaseEnd, as a rotator killed mid-rotation leaves it.
func abandonClaim(w *rig.World, leaseEnd time.Time) {
	w.T.Helper()
	_, current, _ := w.Read("AWSCURRENT")
	value, _, ok := w.Read(document.StateStage)
	if !ok {
		w.T.Fatal("no state to add a claim to")
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(value), &st); err != nil {
		w.T.Fatal(err)
	}
	slots, _ := st["api_clients"].([]any)
	if len(slots) == 0 {
		w.T.Fatalf("state without API clients: %s", value)
	}
	st["claim"] = map[string]any{"owner": "vanished/1/0", "at": leaseEnd.Add(-time.Minute).UTC().Format(time.RFC3339Nano),
		"lease_until": leaseEnd.UTC().Format(time.RFC3339Nano), "base": current, "api_client": 1,
		"secret": slots[0].(map[string]any)["secret"]}
	body, _ := json.Marshal(st)
	if _, err := w.SM.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(w.TokenID),
		SecretString: aws.String(string(body)), VersionStages: []string{document.StateStage}}); err != nil {
		w.T.Fatal(err)
	}
}

// TestRotateAPIClientNotConfiguredIsAUsageError: --api-client 2 where one API client is configured
// is a mistake on the command line: exit 2 (README: "2 on usage or configuration errors"), before
// anything is read or written. It was a failed rotation, exit 1, logged at error level.
func TestRotateAPIClientNotConfiguredIsAUsageError(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	n := len(w.Versions())
	r := w.Rotator("rotate", "--force", "--api-client", "2")
	wantCode(t, r, 2, "API client 2 is not configured")
	wantCode(t, r, 2, "Run 'rotator rotate --help' for usage.")
	if len(w.Versions()) != n || w.ClearRequests() != 1 {
		t.Fatalf("the refused command wrote %d version(s) and made %d Clear request(s)", len(w.Versions())-n, w.ClearRequests()-1)
	}
}
