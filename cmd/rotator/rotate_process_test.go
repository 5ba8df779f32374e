package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os/exec"
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
)

// cli runs the built rotator binary against moto and an in-process Clear emulator.
type cli struct {
	t       *testing.T
	bin     string
	moto    *mototest.Server
	sm      *secretsmanager.Client
	emu     *emulator.Server
	secret  string
	tokenID string
	env     []string
	outputs []string
	mu      sync.Mutex
}

func newCLI(t *testing.T, lifetime time.Duration, extraEnv ...string) *cli {
	t.Helper()
	c := &cli{t: t, bin: proctest.TestRotator(t), moto: mototest.Shared(t)}
	c.sm = c.moto.Client()
	c.secret = "cli-secret-" + strings.ReplaceAll(mototest.Name(t, "s"), "/", "_")
	c.emu = emulator.New(emulator.Options{Lifetime: lifetime, Secrets: []string{c.secret}})
	srv := httptest.NewServer(c.emu)
	t.Cleanup(srv.Close)
	c.tokenID = mototest.Name(t, "token")
	c.env = proctest.Env(append(append(c.moto.Env(),
		"CLEAR_BASE_URL="+srv.URL,
		"CLEAR_CLIENT_SECRET="+c.secret,
		"ROTATOR_TOKEN_SECRET_ID="+c.tokenID,
		"LOG_FORMAT=json",
	), extraEnv...)...)
	t.Cleanup(func() { proctest.AssertNoLeak(t, c.outputs, append(c.tokens(), c.secret)...) })
	return c
}

type procResult struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) procResult {
	c.t.Helper()
	return c.runEnv(nil, args...)
}

func (c *cli) runEnv(env []string, args ...string) procResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(append([]string{}, c.env...), env...)
	var stdout, stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := procResult{stdout: stdout.String(), stderr: stderr.String()}
	c.record(r)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("running rotator %v: %v", args, err)
	}
	return r
}

func (c *cli) record(r procResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outputs = append(c.outputs, r.stdout, r.stderr)
}

// tokens returns every token stored in the token secret, for the leak scan.
func (c *cli) tokens() []string {
	out, err := c.sm.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(c.tokenID)})
	if err != nil {
		return nil
	}
	var toks []string
	for _, v := range out.Versions {
		gv, err := c.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.tokenID), VersionId: v.VersionId})
		if err == nil {
			if d, err := document.ParseToken([]byte(aws.ToString(gv.SecretString))); err == nil {
				toks = append(toks, d.AccessToken.Reveal())
			}
		}
	}
	return toks
}

func (c *cli) current() (document.Token, string) {
	c.t.Helper()
	out, err := c.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.tokenID), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		c.t.Fatal(err)
	}
	d, err := document.ParseToken([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		c.t.Fatalf("AWSCURRENT holds no token: %v", err)
	}
	return d, aws.ToString(out.VersionId)
}

func (c *cli) versions() int {
	out, err := c.sm.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(c.tokenID)})
	if err != nil {
		c.t.Fatal(err)
	}
	return len(out.Versions)
}

func wantCode(t *testing.T, r procResult, code int, contains string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout+r.stderr, contains) {
		t.Fatalf("exit %d (want %d), output lacks %q:\nstdout: %s\nstderr: %s", r.code, code, contains, r.stdout, r.stderr)
	}
}

func TestRotateThenNotDue(t *testing.T) {
	c := newCLI(t, time.Hour)
	wantCode(t, c.run("rotate"), 0, "default: rotated")
	tok, _ := c.current()
	if !c.emu.Live(tok.AccessToken.Reveal()) {
		t.Fatal("stored token is not live")
	}
	n := c.versions()
	wantCode(t, c.run("rotate"), 0, "default: not_due")
	if c.versions() != n || c.emu.Requests(c.secret) != 1 {
		t.Fatalf("a not-due rotate wrote versions or called Clear (%d requests)", c.emu.Requests(c.secret))
	}
	wantCode(t, c.run("rotate", "--client", "nope"), 2, `no client named "nope"`)
	wantCode(t, c.run("rotate", "--bogus"), 2, "rotate does not take the flag --bogus")
}

func TestParallelRotateProcessesMakeOneRequest(t *testing.T) {
	for _, args := range [][]string{{"rotate"}, {"rotate", "--force"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			c := newCLI(t, time.Hour)
			if len(args) == 2 {
				// Forcing needs a token to replace, issued more than a minute ago: store one.
				c.seedOldToken()
			}
			before := c.emu.Requests(c.secret)
			// Clear answers slowly, so that all five processes read before the first one stores its
			// token: they are concurrent, which is what makes them cost one request. (A force that
			// starts after another finished asks Clear again, as it must.)
			c.emu.Inject(emulator.Fault{Delay: 5 * time.Second})
			var wg sync.WaitGroup
			results := make([]procResult, 5)
			for i := range results {
				wg.Add(1)
				go func() { defer wg.Done(); results[i] = c.run(args...) }()
			}
			wg.Wait()
			var outcomes []string
			for _, r := range results {
				if r.code != 0 {
					t.Errorf("exit %d: %s %s", r.code, r.stdout, r.stderr)
				}
				outcomes = append(outcomes, strings.Fields(r.stdout)[1])
			}
			sort.Strings(outcomes)
			if got := c.emu.Requests(c.secret) - before; got != 1 {
				t.Fatalf("%d Clear requests from 5 processes (outcomes %v), want 1", got, outcomes)
			}
			tok, _ := c.current()
			if !c.emu.Live(tok.AccessToken.Reveal()) {
				t.Fatal("stored token is not live")
			}
			t.Logf("outcomes: %v", outcomes)
		})
	}
}

// seedOldToken rotates once, then rewrites the stored token's issued_at two minutes into the past
// so that a forced rotation is not taken as a duplicate of it.
func (c *cli) seedOldToken() {
	c.t.Helper()
	wantCode(c.t, c.run("rotate"), 0, "rotated")
	tok, _ := c.current()
	tok.IssuedAt = tok.IssuedAt.Add(-2 * time.Minute)
	body, _ := document.MarshalToken(tok)
	if _, err := c.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(c.tokenID), SecretString: aws.String(string(body))}); err != nil {
		c.t.Fatal(err)
	}
}

func TestDailyLimitRefusal(t *testing.T) {
	// Forced rotations: each makes a request, whatever the token's lifetime.
	c := newCLI(t, time.Hour, "ROTATOR_DAILY_LIMIT=2")
	for range 2 {
		wantCode(t, c.run("rotate", "--force"), 0, "rotated")
	}
	r := c.run("rotate", "--force")
	wantCode(t, r, 1, "refused by the daily limit: 2 of 2")
	if c.emu.Requests(c.secret) != 2 {
		t.Fatalf("Clear requests = %d, want 2", c.emu.Requests(c.secret))
	}
	st := c.status()
	if st.RequestsToday == nil || *st.RequestsToday != 2 || st.DailyLimit != 2 || st.BlockedUntil == nil || st.State != "limited" {
		t.Fatalf("status = %+v", st)
	}
}

func TestInvalidConfigurationExits2(t *testing.T) {
	c := newCLI(t, time.Hour)
	for _, v := range []string{"0", "251", "300", "abc", "-1"} {
		r := c.runEnv([]string{"ROTATOR_DAILY_LIMIT=" + v}, "rotate")
		wantCode(t, r, 2, "ROTATOR_DAILY_LIMIT")
	}
	wantCode(t, c.runEnv([]string{"CLEAR_BASE_URL=http://clear.example.com"}, "check"), 2, "https")
	wantCode(t, c.run("frobnicate"), 2, "unknown command")
	if c.emu.Requests(c.secret) != 0 {
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
}

func (c *cli) status() statusDoc {
	c.t.Helper()
	r := c.run("status", "--json")
	if r.code != 0 {
		c.t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	var doc map[string][]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		c.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(doc) != 1 || len(doc["clients"]) != 1 {
		c.t.Fatalf("status --json: want {\"clients\": [one]}, got %s", r.stdout)
	}
	var keys []string
	for k := range doc["clients"][0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got, want := strings.Join(keys, ","), "api_client,api_clients,blocked_reason,blocked_until,consumer_reread_interval,daily_limit,degraded,in_flight,issued_at,last_error,name,renew_at,requests_today,state,token_lost,valid_till"; got != want {
		c.t.Fatalf("status keys %s, want exactly %s", got, want)
	}
	var s struct{ Clients []statusDoc }
	_ = json.Unmarshal([]byte(r.stdout), &s)
	return s.Clients[0]
}

func TestUnauthorizedIsPermanentAndShown(t *testing.T) {
	c := newCLI(t, time.Hour)
	c.emu.SetSecretActive(c.secret, false)
	wantCode(t, c.run("rotate"), 1, "CLI-SEC-002")
	wantCode(t, c.run("rotate"), 1, "blocked until its client secret changes")
	if c.emu.Requests(c.secret) != 1 {
		t.Fatalf("Clear requests = %d, want 1: a 401 must not be retried", c.emu.Requests(c.secret))
	}
	st := c.status()
	// Issue 8: blocked_until is a time or null, with a separate reason.
	if st.BlockedUntil != nil || st.BlockedReason == nil || !strings.Contains(*st.BlockedReason, "unauthorized") ||
		st.State != "blocked" || st.LastError == nil || !strings.Contains(*st.LastError, "CLI-SEC-002") {
		t.Fatalf("status = %+v", st)
	}
	r := c.run("status")
	wantCode(t, r, 0, "until the client secret changes")
	wantCode(t, c.run("status", "--check"), 1, "not OK: default (blocked)")
}

func TestServerErrorShowsErrorIDAndBacksOff(t *testing.T) {
	c := newCLI(t, time.Hour)
	c.emu.Inject(emulator.Fault{Status: 500})
	r := c.run("rotate")
	wantCode(t, r, 1, "error_id ")
	wantCode(t, c.run("rotate"), 1, "backing off until")
	if c.emu.Requests(c.secret) != 1 {
		t.Fatalf("Clear requests = %d, want 1 while backing off", c.emu.Requests(c.secret))
	}
	// An operator may force through a backoff.
	wantCode(t, c.run("rotate", "--force"), 0, "rotated")
}

func TestMalformedAnswerKeepsTheGoodToken(t *testing.T) {
	c := newCLI(t, time.Second)
	wantCode(t, c.run("rotate"), 0, "rotated")
	good, goodID := c.current()
	c.emu.Inject(emulator.Oversized())
	wantCode(t, c.run("rotate", "--force"), 1, "malformed")
	now, nowID := c.current()
	if nowID != goodID || now.AccessToken.Reveal() != good.AccessToken.Reveal() {
		t.Fatal("a malformed answer replaced the stored token")
	}
}

func TestSigtermDuringSlowAnswerStillStoresToken(t *testing.T) {
	c := newCLI(t, time.Hour)
	c.emu.Inject(emulator.Fault{Delay: 2 * time.Second})
	cmd := exec.Command(c.bin, "rotate")
	cmd.Env = c.env
	var stdout, stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the request is at Clear, then ask the process to stop.
	deadline := time.Now().Add(10 * time.Second)
	for c.emu.Requests(c.secret) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	c.record(procResult{stdout: stdout.String(), stderr: stderr.String()})
	if err != nil {
		t.Fatalf("exit: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	tok, _ := c.current()
	if !c.emu.Live(tok.AccessToken.Reveal()) {
		t.Fatal("the token Clear issued after SIGTERM was not stored")
	}
}

func TestCheckNeverCallsClear(t *testing.T) {
	c := newCLI(t, time.Hour)
	wantCode(t, c.run("check"), 0, "does not exist yet")
	id := mototest.Name(t, "client")
	if _, err := c.sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(`{"client_secret":"` + c.secret + `"}`)}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.runEnv([]string{"CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=" + id}, "check"), 0, "ok")
	wantCode(t, c.runEnv([]string{"CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=missing/secret"}, "check"), 1, "ResourceNotFoundException")
	if c.emu.Requests(c.secret) != 0 {
		t.Fatal("check called Clear")
	}
	wantCode(t, c.run("version"), 0, "clear-rotator ")
}

func TestYAMLConfigSeveralClients(t *testing.T) {
	c := newCLI(t, time.Hour)
	second := c.secret + "-2"
	c.emu.AddSecret(second)
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	yaml := "clients:\n" +
		"  - name: erp-a\n    client_secret: " + c.secret + "\n    token_secret_id: " + c.tokenID + "\n" +
		"  - name: erp-b\n    client_secret: " + second + "\n    token_secret_id: " + c.tokenID + "-b\n    daily_limit: 10\n"
	if err := writeFile(path, yaml); err != nil {
		t.Fatal(err)
	}
	env := []string{"ROTATOR_CONFIG=" + path, "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID="}
	r := c.runEnv(env, "rotate")
	wantCode(t, r, 0, "erp-a: rotated")
	wantCode(t, r, 0, "erp-b: rotated")
	wantCode(t, c.runEnv(env, "rotate", "--client", "erp-b"), 0, "erp-b: not_due")
	// Two clients sharing a token secret would revoke each other's tokens.
	dup := "clients:\n" +
		"  - name: erp-a\n    client_secret: " + c.secret + "\n    token_secret_id: shared\n" +
		"  - name: erp-b\n    client_secret: " + second + "\n    token_secret_id: shared\n"
	if err := writeFile(path, dup); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.runEnv(env, "check"), 2, "shared")
}

func TestFlagsBelongToTheirCommand(t *testing.T) {
	c := newCLI(t, time.Hour)
	wantCode(t, c.run("status", "--force"), 2, "status does not take the flag --force")
	wantCode(t, c.run("check", "--client", "default"), 2, "check does not take the flag --client")
	wantCode(t, c.run("run", "--json"), 2, "run does not take the flag --json")
	if c.emu.Requests(c.secret) != 0 {
		t.Fatal("a usage error called Clear")
	}
}
