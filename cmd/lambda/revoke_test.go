package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
)

// TestBootstrapRetriedRevokeNeverReportsALiveTokenDead: two API clients; a revoke asks API client 2
// (which answers) and then API client 1 (whose request fails), so the first attempt fails. Lambda
// retries the invocation with the same request id, when API client 2's token is in AWSCURRENT and
// the order of asking has changed. The retry must not answer success while API client 1's token,
// stored before the revoke, is live (issue 19 item 2).
func TestBootstrapRetriedRevokeNeverReportsALiveTokenDead(t *testing.T) {
	t.Parallel()
	d := deployWith(t, 2)
	f := d.start(t)
	expectOutcome(t, result(t, f.ok(`{"action":"rotate"}`)), "rotated") // API client 1
	before := d.StoredTokens()

	d.Emu.Inject(emulator.Fault{}, emulator.ServerError())
	id := "8f1c7a52-0000-4000-8000-0000000revoke"
	first := f.invokeAs(id, `{"action":"revoke","client":"default"}`)
	wantRevokeError(t, first, "API client 1")

	retry := f.invokeAs(id, `{"action":"revoke","client":"default"}`)
	if retry.kind == "response" {
		for _, tok := range before {
			if d.Emu.Live(tok) {
				t.Fatalf("the retried revoke answered success with a token stored before it still live: %s", retry.body)
			}
		}
	} else {
		wantRevokeError(t, retry, "API client 1")
	}

	// A new revoke event asks both API clients again, and succeeds.
	r := f.invoke(`{"action":"revoke","client":"default"}`)
	if r.kind != "response" {
		t.Fatalf("a new revoke failed: %s", r.body)
	}
	for _, tok := range before {
		if d.Emu.Live(tok) {
			t.Fatal("a token stored before the revoke is live after it succeeded")
		}
	}
}

// wantRevokeError checks that r is a RevokeError naming what as possibly live.
func wantRevokeError(t *testing.T, r reply, what string) {
	t.Helper()
	var lerr struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	if r.kind != "error" || json.Unmarshal(r.body, &lerr) != nil || lerr.Type != "RevokeError" || !strings.Contains(lerr.Message, what) {
		t.Fatalf("answer %s %s, want a RevokeError naming %s", r.kind, r.body, what)
	}
}

// {"action":"rotate","force":true,"api_client":N} asks the API client named, as `rotator rotate
// --force --api-client N` does: the runbook's remedy for a token revoked outside the rotator with
// two API clients, which a plain force would refuse (it asks the other API client, whose token
// consumers may still hold). An API client the client does not have is refused, asking nothing.
func TestBootstrapForcesTheAPIClientNamed(t *testing.T) {
	t.Parallel()
	d := deployWith(t, 2)
	f := d.start(t)
	r := result(t, f.ok(`{"action":"rotate"}`))
	expectOutcome(t, r, "rotated")
	if r["api_client"] != 1.0 {
		t.Fatalf("the first rotation asked API client %v, want 1", r["api_client"])
	}
	r = result(t, f.ok(`{"action":"rotate","force":true,"api_client":1}`))
	expectOutcome(t, r, "rotated")
	if r["api_client"] != 1.0 {
		t.Fatalf("api_client 1 asked API client %v", r["api_client"])
	}

	one := deploy(t)
	g := one.start(t)
	asked := one.ClearRequests()
	if e := g.invoke(`{"action":"rotate","force":true,"api_client":2}`); e.kind != "error" || !strings.Contains(string(e.body), `API client 2 is not configured for client \"default\" (it has 1)`) {
		t.Fatalf("api_client 2 of a client with one: %s: %s", e.kind, e.body)
	}
	if one.ClearRequests() != asked {
		t.Fatal("a refused api_client asked Clear")
	}
}
