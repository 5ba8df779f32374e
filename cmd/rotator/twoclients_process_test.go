package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
)

// newCLI2 is a CLI with two API clients: the emulator knows both client secrets.
func newCLI2(t *testing.T, lifetime time.Duration) (*cli, string) {
	t.Helper()
	second := "cli-secret-two-" + strings.ReplaceAll(t.Name(), "/", "_")
	c := newCLI(t, lifetime, "CLEAR_CLIENT_SECRET_2="+second)
	c.emu.AddSecret(second)
	t.Cleanup(func() {
		for _, out := range c.outputs {
			if strings.Contains(out, second) {
				t.Error("the second client secret reached the output")
			}
		}
	})
	return c, second
}

func (c *cli) stage(stage string) string {
	c.t.Helper()
	out, err := c.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.tokenID), VersionStage: aws.String(stage)})
	if err != nil {
		c.t.Fatal(err)
	}
	var doc struct {
		AccessToken string `json:"access_token"`
		APIClient   int    `json:"api_client"`
	}
	_ = json.Unmarshal([]byte(aws.ToString(out.SecretString)), &doc)
	return doc.AccessToken
}

// TestProcessTwoAPIClients: alternation, a forced rotation that leaves the previous token live,
// exact per-API-client counts in status, and revoke killing every stored token.
func TestProcessTwoAPIClients(t *testing.T) {
	c, second := newCLI2(t, time.Hour)
	wantCode(t, c.run("rotate"), 0, "rotated")
	first := c.stage("AWSCURRENT")
	r := c.run("rotate", "--force", "--json")
	wantCode(t, r, 0, `"api_client": 2`)
	if !c.emu.Live(first) || c.stage("AWSPREVIOUS") != first {
		t.Fatal("a forced rotation with two API clients revoked the token it replaced")
	}
	wantCode(t, c.run("rotate", "--force"), 0, "rotated")
	st := c.status()
	if len(st.APIClients) != 2 || st.RequestsToday == nil || *st.RequestsToday != 3 || st.Degraded || st.ConsumerRereadInterval == nil {
		t.Fatalf("status %+v", st)
	}
	var slots []struct {
		Slot          int  `json:"slot"`
		RequestsToday *int `json:"requests_today"`
	}
	for _, raw := range st.APIClients {
		var s struct {
			Slot          int  `json:"slot"`
			RequestsToday *int `json:"requests_today"`
		}
		_ = json.Unmarshal(raw, &s)
		slots = append(slots, s)
	}
	if *slots[0].RequestsToday != c.emu.RequestsToday(c.secret) || *slots[1].RequestsToday != c.emu.RequestsToday(second) {
		t.Fatalf("per-API-client counts %d/%d, emulator %d/%d", *slots[0].RequestsToday, *slots[1].RequestsToday,
			c.emu.RequestsToday(c.secret), c.emu.RequestsToday(second))
	}
	wantCode(t, c.run("status"), 0, "re-reads the secret at least every")

	stored := c.tokens()
	wantCode(t, c.run("revoke", "--yes"), 0, "API client 2: rotated")
	for _, tok := range stored {
		if c.emu.Live(tok) {
			t.Fatal("a token stored before revoke is still live")
		}
	}
	if !c.emu.Live(c.stage("AWSCURRENT")) {
		t.Fatal("AWSCURRENT is not live after revoke")
	}
}

func TestProcessDegradedModeIsShown(t *testing.T) {
	c, second := newCLI2(t, time.Hour)
	wantCode(t, c.run("rotate"), 0, "rotated")
	c.emu.SetSecretActive(second, false)
	wantCode(t, c.run("rotate", "--force"), 1, "CLI-SEC-002")
	st := c.status()
	if !st.Degraded || st.State != "degraded" {
		t.Fatalf("status %+v", st)
	}
	wantCode(t, c.run("status"), 0, "degraded")
	wantCode(t, c.run("status", "--check"), 1, "degraded")
	// The other API client still serves, and says it rotated in degraded mode.
	wantCode(t, c.run("rotate", "--force"), 0, "degraded")
	if !c.emu.Live(c.stage("AWSCURRENT")) {
		t.Fatal("AWSCURRENT is not live")
	}
}

func TestProcessRevokeWithOneAPIClient(t *testing.T) {
	c := newCLI(t, time.Hour)
	wantCode(t, c.run("rotate"), 0, "rotated")
	stored := c.tokens()
	before := c.emu.Requests(c.secret)
	wantCode(t, c.run("revoke", "--yes", "--json"), 0, `"outcome": "rotated"`)
	if c.emu.Requests(c.secret)-before != 1 {
		t.Fatalf("revoke made %d requests, want 1", c.emu.Requests(c.secret)-before)
	}
	for _, tok := range stored {
		if c.emu.Live(tok) {
			t.Fatal("a token stored before revoke is still live")
		}
	}
}

// TestProcessStatusNeverGuesses: with Secrets Manager unreachable, status prints ? and null, not
// made-up values, and exits 1 (issue 8 item 3).
func TestProcessStatusNeverGuesses(t *testing.T) {
	c := newCLI(t, time.Hour)
	down := []string{"AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_MAX_ATTEMPTS=1"}
	r := c.runEnv(down, "status")
	wantCode(t, r, 1, "unknown")
	for _, made := range []string{"no token", "never", "0/48"} {
		if strings.Contains(r.stdout, made) {
			t.Fatalf("status invented %q:\n%s", made, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "?") {
		t.Fatalf("status does not show unknown values as ?:\n%s", r.stdout)
	}
	r = c.runEnv(down, "status", "--json")
	wantCode(t, r, 1, `"requests_today": null`)
	wantCode(t, r, 1, `"state": "unknown"`)
	wantCode(t, c.runEnv(down, "rotate", "--json"), 1, `"requests_today": null`)
}

// TestProcessCheckFindsClientsSharingASecret: two client secret ids that hold one value pass the
// configuration's own checks (the names differ) and are caught once both are read (issue 9).
func TestProcessCheckFindsClientsSharingASecret(t *testing.T) {
	c := newCLI(t, time.Hour)
	var ids []string
	for _, n := range []string{"a", "b"} {
		id := c.tokenID + "-client-secret-" + n
		if _, err := c.sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(c.secret)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cfg := t.TempDir() + "/clients.yaml"
	yaml := "clients:\n" +
		"  - name: a\n    client_secret_id: " + ids[0] + "\n    token_secret_id: " + c.tokenID + "-a\n" +
		"  - name: b\n    client_secret_id: " + ids[1] + "\n    token_secret_id: " + c.tokenID + "-b\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.runEnv([]string{"ROTATOR_CONFIG=" + cfg, "CLEAR_CLIENT_SECRET="}, "check")
	wantCode(t, r, 1, `hold the same client secret`)
	if c.emu.Requests(c.secret) != 0 {
		t.Fatal("check called Clear")
	}
}

// TestProcessStatusFollowsAChangedClientSecret: after a 401 is fixed by changing the client secret,
// status stops reporting the block, as rotate goes ahead (issue 8 item 3).
func TestProcessStatusFollowsAChangedClientSecret(t *testing.T) {
	c := newCLI(t, time.Hour)
	c.emu.SetSecretActive(c.secret, false)
	wantCode(t, c.run("rotate"), 1, "CLI-SEC-002")
	if st := c.status(); st.State != "blocked" || st.BlockedReason == nil {
		t.Fatalf("status after the 401: %+v", st)
	}
	fixed := c.secret + "-new"
	c.emu.AddSecret(fixed)
	env := []string{"CLEAR_CLIENT_SECRET=" + fixed}
	r := c.runEnv(env, "status", "--json")
	wantCode(t, r, 0, `"blocked_reason": null`)
	wantCode(t, r, 0, `"state": "no-token"`)
	wantCode(t, c.runEnv(env, "rotate"), 0, "rotated")
	for _, out := range c.outputs {
		if strings.Contains(out, fixed) {
			t.Fatal("the new client secret reached the output")
		}
	}
}

// TestProcessDegradedOn429: one API client rate limited by Clear; the other still serves.
func TestProcessDegradedOn429(t *testing.T) {
	c, _ := newCLI2(t, time.Hour)
	wantCode(t, c.run("rotate"), 0, "rotated") // API client 1
	before := c.stage("AWSCURRENT")
	c.emu.Inject(emulator.Fault{Status: 429})
	wantCode(t, c.run("rotate", "--force"), 1, "rate-limited")
	if !c.emu.Live(before) {
		t.Fatal("the refused request cost the stored token")
	}
	st := c.status()
	if !st.Degraded || st.State != "degraded" {
		t.Fatalf("status %+v", st)
	}
	wantCode(t, c.run("rotate", "--force"), 0, "degraded")
	if !c.emu.Live(c.stage("AWSCURRENT")) {
		t.Fatal("AWSCURRENT is not live")
	}
}
