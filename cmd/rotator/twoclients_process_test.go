package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestProcessTwoAPIClients: alternation, a forced rotation that leaves the previous token live,
// exact per-API-client counts in status, and revoke killing every stored token.
func TestProcessTwoAPIClients(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	first := stageToken(w, "AWSCURRENT")
	r := w.Rotator("rotate", "--force", "--json")
	wantCode(t, r, 0, `"api_client": 2`)
	if !w.Emu.Live(first) || stageToken(w, "AWSPREVIOUS") != first {
		t.Fatal("a forced rotation with two API clients revoked the token it replaced")
	}
	// Issue 19 item 9: a second force seconds later would ask API client 1, whose token was in
	// AWSCURRENT until the first force: consumers that re-read on the documented interval may
	// still hold it. It is refused, naming the time from which API client 1 may be asked.
	wantCode(t, w.Rotator("rotate", "--force"), 1, "not asking API client 1 before")
	if !w.Emu.Live(first) || w.ClearRequests() != 2 {
		t.Fatalf("the refused force: the token consumers may hold is live %v, Clear requests %d (want 2)", w.Emu.Live(first), w.ClearRequests())
	}
	st := statusOf(t, w)
	if len(st.APIClients) != 2 || st.RequestsToday == nil || *st.RequestsToday != 2 || st.Degraded || st.ConsumerRereadInterval == nil {
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
	one, two := w.Emu.RequestsToday(w.Secrets[0]), w.Emu.RequestsToday(w.Secrets[1])
	if *slots[0].RequestsToday != one || *slots[1].RequestsToday != two {
		t.Fatalf("per-API-client counts %d/%d, emulator %d/%d", *slots[0].RequestsToday, *slots[1].RequestsToday, one, two)
	}
	wantCode(t, w.Rotator("status"), 0, "re-reads the secret at least every")

	// Asking that API client is possible when it is meant: --api-client names it.
	wantCode(t, w.Rotator("rotate", "--api-client", "1"), 2, "--api-client goes with --force")
	wantCode(t, w.Rotator("rotate", "--force", "--api-client", "3"), 2, "--api-client is 1 or 2")
	wantCode(t, w.Rotator("rotate", "--force", "--api-client", "1"), 0, "rotated")
	if w.Emu.Live(first) || w.ClearRequests() != 3 {
		t.Fatalf("rotate --force --api-client 1: the token it replaced is live %v, Clear requests %d (want 3)", w.Emu.Live(first), w.ClearRequests())
	}

	stored := w.StoredTokens()
	wantCode(t, w.Rotator("revoke", "--yes"), 0, "API client 2: rotated")
	for _, tok := range stored {
		if w.Emu.Live(tok) {
			t.Fatal("a token stored before revoke is still live")
		}
	}
	if !w.Live() {
		t.Fatal("AWSCURRENT is not live after revoke")
	}
}

func TestProcessDegradedModeIsShown(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	w.Emu.SetSecretActive(w.Secrets[1], false)
	wantCode(t, w.Rotator("rotate", "--force"), 1, "CLI-SEC-002")
	st := statusOf(t, w)
	if !st.Degraded || st.State != "degraded" {
		t.Fatalf("status %+v", st)
	}
	wantCode(t, w.Rotator("status"), 0, "degraded")
	wantCode(t, w.Rotator("status", "--check"), 1, "degraded")
	// The other API client still serves, and says it rotated in degraded mode.
	wantCode(t, w.Rotator("rotate", "--force"), 0, "degraded")
	if !w.Live() {
		t.Fatal("AWSCURRENT is not live")
	}
}

func TestProcessRevokeWithOneAPIClient(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	stored := w.StoredTokens()
	before := w.ClearRequests()
	wantCode(t, w.Rotator("revoke", "--yes", "--json"), 0, `"outcome": "rotated"`)
	if w.ClearRequests()-before != 1 {
		t.Fatalf("revoke made %d requests, want 1", w.ClearRequests()-before)
	}
	for _, tok := range stored {
		if w.Emu.Live(tok) {
			t.Fatal("a token stored before revoke is still live")
		}
	}
}

// TestProcessStatusNeverGuesses: with Secrets Manager unreachable, status prints ? and null, not
// made-up values, and exits 1 (issue 8 item 3).
func TestProcessStatusNeverGuesses(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	down := []string{"AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_MAX_ATTEMPTS=1"}
	r := rotatorEnv(w, down, "status")
	wantCode(t, r, 1, "unknown")
	for _, made := range []string{"no token", "never", "0/48"} {
		if strings.Contains(r.Stdout, made) {
			t.Fatalf("status invented %q:\n%s", made, r.Stdout)
		}
	}
	if !strings.Contains(r.Stdout, "?") {
		t.Fatalf("status does not show unknown values as ?:\n%s", r.Stdout)
	}
	r = rotatorEnv(w, down, "status", "--json")
	wantCode(t, r, 1, `"requests_today": null`)
	wantCode(t, r, 1, `"state": "unknown"`)
	wantCode(t, rotatorEnv(w, down, "rotate", "--json"), 1, `"requests_today": null`)
}

// TestProcessCheckFindsClientsSharingASecret: two client secret ids that hold one value pass the
// configuration's own checks (the names differ) and are caught once both are read (issue 9).
func TestProcessCheckFindsClientsSharingASecret(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	r := rotatorEnv(w, sharedSecretClients(t, w), "check")
	wantCode(t, r, 1, `hold the same client secret`)
	if w.ClearRequests() != 0 {
		t.Fatal("check called Clear")
	}
}

// TestProcessStatusFollowsAChangedClientSecret: after a 401 is fixed by changing the client secret,
// status stops reporting the block, as rotate goes ahead (issue 8 item 3).
func TestProcessStatusFollowsAChangedClientSecret(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	w.Emu.SetSecretActive(w.Secrets[0], false)
	wantCode(t, w.Rotator("rotate"), 1, "CLI-SEC-002")
	if st := statusOf(t, w); st.State != "blocked" || st.BlockedReason == nil {
		t.Fatalf("status after the 401: %+v", st)
	}
	fixed := w.Secrets[0] + "-new"
	w.Emu.AddSecret(fixed)
	w.Hide(fixed) // the leak scan: the new client secret must not reach the output either
	env := []string{"CLEAR_CLIENT_SECRET=" + fixed}
	r := rotatorEnv(w, env, "status", "--json")
	wantCode(t, r, 0, `"blocked_reason": null`)
	wantCode(t, r, 0, `"state": "no-token"`)
	wantCode(t, rotatorEnv(w, env, "rotate"), 0, "rotated")
}

// TestProcessDegradedOn429: one API client rate limited by Clear; the other still serves.
func TestProcessDegradedOn429(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	wantCode(t, w.Rotator("rotate"), 0, "rotated") // API client 1
	before := stageToken(w, "AWSCURRENT")
	w.Emu.Inject(emulator.Fault{Status: 429})
	wantCode(t, w.Rotator("rotate", "--force"), 1, "rate-limited")
	if !w.Emu.Live(before) {
		t.Fatal("the refused request cost the stored token")
	}
	st := statusOf(t, w)
	if !st.Degraded || st.State != "degraded" {
		t.Fatalf("status %+v", st)
	}
	wantCode(t, w.Rotator("rotate", "--force"), 0, "degraded")
	if !w.Live() {
		t.Fatal("AWSCURRENT is not live")
	}
}

// TestProcessDaemonRetriesATransientFailureBeforeFallingBack: two API clients; the token in use
// (API client 1's) is due with 19 minutes left, and Clear answers the due API client's request
// with one 500. The daemon, ticking every two seconds, must retry API client 2 after its backoff
// rather than ask API client 1 seconds later, which would revoke the token in use (issue 19
// item 10).
func TestProcessDaemonRetriesATransientFailureBeforeFallingBack(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	inUse := w.Issue() // API client 1's
	issued := time.Now().UTC().Add(-41 * time.Minute)
	vt := issued.Add(time.Hour)
	doc, err := document.MarshalToken(document.Token{AccessToken: clear.NewAccessToken(inUse), IssuedAt: issued, ValidTill: &vt, APIClient: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.Store(string(doc))
	w.Emu.Inject(emulator.ServerError())
	p := w.Daemon("ROTATOR_SCHEDULE=@every 2s")
	defer p.Stop(syscall.SIGTERM, 30*time.Second)
	p.Await("the first request", 15*time.Second, func() bool { return w.Emu.Requests(w.Secrets[1]) >= 1 })
	p.Await("the retry of API client 2", 45*time.Second, func() bool {
		if w.Emu.Requests(w.Secrets[0]) != 1 { // Issue's own request
			t.Fatalf("the daemon asked API client 1 after API client 2's 500, revoking the token in use:\n%s", p.Output())
		}
		tok, _, ok := w.Current()
		return ok && tok.APIClient == 2 && w.Emu.Live(tok.AccessToken.Reveal())
	})
	if !w.Emu.Live(inUse) || w.Emu.Requests(w.Secrets[1]) != 2 {
		t.Fatalf("after the retry: the replaced token live %v, API client 2 asked %d times (want 2)", w.Emu.Live(inUse), w.Emu.Requests(w.Secrets[1]))
	}
}

// TestProcessConsumerHoldIsNoBlock: with two API clients, the API client whose token was
// AWSCURRENT until the last rotation is not asked while consumers may hold its token. That hold
// ends a third of a lifetime after the rotation, long before the next renewal (two thirds), so it
// keeps no rotation from calling Clear: status must not report it as a block, and the daemon's
// clear_rotator_blocked must stay 0. It was reported after every rotation, with blocked_until null,
// which the table rendered "(until the client secret changes)", and clear_rotator_blocked was 1 for
// the hold: with day-long tokens ClearRotatorBlocked (30 minutes) paged for eight hours a day.
func TestProcessConsumerHoldIsNoBlock(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	wantCode(t, w.Rotator("rotate", "--force"), 0, "rotated") // API client 2; API client 1 is now held
	st := statusOf(t, w)
	if st.State != "ok" || st.BlockedReason != nil || st.BlockedUntil != nil {
		t.Errorf("status after a rotation: state %s, blocked_reason %v, blocked_until %v; want ok and no block",
			st.State, deref(st.BlockedReason), deref(st.BlockedUntil))
	}
	r := w.Rotator("status")
	wantCode(t, r, 0, "ok")
	if strings.Contains(r.Stdout, "until the client secret changes") || strings.Contains(r.Stdout, "not asking") {
		t.Errorf("the table shows the hold as a block:\n%s", r.Stdout)
	}
	p := w.Daemon()
	p.Await("the first check", 15*time.Second, func() bool { code, _ := p.Get("/readyz"); return code == 200 })
	if v := p.Metric(`clear_rotator_blocked{client="default"}`); v != "0" {
		t.Errorf("clear_rotator_blocked = %q, want 0", v)
	}
	// A force still refuses to ask the held API client, and says until when.
	wantCode(t, w.Rotator("rotate", "--force"), 1, "not asking API client 1 before")
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestProcessDegradedSaysWhy: when API client 2's client secret cannot be read, the client is
// degraded, and the runbook sends the operator to "its row in status --json api_clients", which
// must say why. Status exited 1 and named the error on stderr, but the JSON said nothing: the row's
// last_error and blocked_reason were null, and so was the client's last_error (the Lambda's status
// answer, which has no stderr, never said it at all).
func TestProcessDegradedSaysWhy(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	missing := []string{"CLEAR_CLIENT_SECRET_2=", "CLEAR_CLIENT_SECRET_ID_2=" + w.TokenID + "-missing"}
	r := rotatorEnv(w, missing, "status", "--json")
	wantCode(t, r, 1, `"state": "degraded"`)
	var doc struct {
		Clients []struct {
			LastError  *string `json:"last_error"`
			APIClients []struct {
				Slot      int     `json:"slot"`
				LastError *string `json:"last_error"`
			} `json:"api_clients"`
		} `json:"clients"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || len(doc.Clients) != 1 || len(doc.Clients[0].APIClients) != 2 {
		t.Fatalf("status --json: %v\n%s", err, r.Stdout)
	}
	c := doc.Clients[0]
	if e := c.APIClients[1].LastError; e == nil || !strings.Contains(*e, "API client 2's client secret") || !strings.Contains(*e, "ResourceNotFoundException") {
		t.Errorf("API client 2's row does not say why it is unusable: %s", r.Stdout)
	}
	if c.APIClients[0].LastError != nil {
		t.Errorf("API client 1's row has an error: %s", r.Stdout)
	}
	if c.LastError == nil || !strings.Contains(*c.LastError, "API client 2's client secret") {
		t.Errorf("the client's last_error does not say why it is degraded: %s", r.Stdout)
	}
	wantCode(t, rotatorEnv(w, missing, "status"), 1, "ResourceNotFoundException")
}
