package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestProcessRevokeAsksEveryAPIClient: with API client 2 blocked by a 429, revoke still asks API
// client 1, whose token is the one in AWSCURRENT and the likeliest to have leaked, and then fails
// naming API client 2 (by its real number) as the one whose tokens may still be live (issue 19
// item 3).
func TestProcessRevokeAsksEveryAPIClient(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	wantCode(t, w.Rotator("rotate"), 0, "rotated") // API client 1
	current := stageToken(w, "AWSCURRENT")
	w.Emu.Inject(emulator.Fault{Status: 429})
	wantCode(t, w.Rotator("rotate", "--force"), 1, "rate-limited") // API client 2, now blocked

	r := w.Rotator("revoke", "--yes")
	wantCode(t, r, 1, "API client 2")
	wantCode(t, r, 1, "may still be live")
	// Once fixed, only what is left is asked: revoke again would revoke API client 1's new token too.
	wantCode(t, r, 1, "then run: rotator rotate --force --client default --api-client 2")
	if out := r.Stdout + r.Stderr; strings.Contains(out, "API client 0") || !strings.Contains(out, "API client 1: rotated") ||
		regexp.MustCompile(`API client \d: [a-z_]+: API client \d:`).MatchString(out) {
		t.Fatalf("revoke output does not name each API client by its number:\n%s", r.Output())
	}
	if w.Emu.Live(current) {
		t.Fatal("revoke left API client 1's token, the one in AWSCURRENT, live")
	}
	if !w.Live() {
		t.Fatal("AWSCURRENT is not live after revoke")
	}

	// The JSON answer says the same: every result, and which API clients may still hold a live token.
	r = w.Rotator("revoke", "--yes", "--json")
	if r.Code != 1 {
		t.Fatalf("revoke --json: exit %d, want 1:\n%s", r.Code, r.Output())
	}
	var doc struct {
		Results []struct {
			Outcome   string `json:"outcome"`
			APIClient int    `json:"api_client"`
		} `json:"results"`
		MayBeLive []struct {
			Client    string `json:"client"`
			APIClient int    `json:"api_client"`
		} `json:"may_be_live"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("revoke --json: %v\n%s", err, r.Stdout)
	}
	if len(doc.Results) != 2 || len(doc.MayBeLive) != 1 || doc.MayBeLive[0].APIClient != 2 || doc.MayBeLive[0].Client != "default" {
		t.Fatalf("revoke --json: %s", r.Stdout)
	}
	for _, res := range doc.Results {
		if res.APIClient == 0 {
			t.Fatalf("a result without its API client: %s", r.Stdout)
		}
	}
}

// A revoke that Clear refuses names the API client once per line, not again inside the message.
func TestProcessRevokeRefusedNamesTheAPIClientOnce(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	w.Emu.SetSecretActive(w.Secrets[0], false)
	r := w.Rotator("revoke", "--yes")
	wantCode(t, r, 1, "401")
	if !strings.Contains(r.Stdout, "default: API client 1: ") || strings.Count(r.Stdout, "API client 1") != 1 {
		t.Errorf("revoke's line does not name API client 1 exactly once:\n%s", r.Stdout)
	}
}
