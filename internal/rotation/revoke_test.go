package rotation_test

import (
	"context"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// TestRevokeRetriedAfterAFailureIsNotDone: the first delivery of a revoke event fails with API
// client 2 (asked first, since API client 1 issued AWSCURRENT) and revokes API client 1. A
// retried delivery of the same event never asks API client 1 again, and counts API client 2 as
// revoked only if its token is then stored: never on the strength of the event id alone (issue 19
// item 2).
func TestRevokeRetriedAfterAFailureIsNotDone(t *testing.T) {
	w, c := newWorld(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	e := w.Engine("a")
	expect(t, e.Rotate(context.Background(), c, false), rotation.Rotated) // API client 1
	before := w.StoredTokens()
	w.Clock.Advance(time.Minute)

	w.Emu.Inject(emulator.ServerError())
	revs := e.Revoke(context.Background(), c, "incident-7")
	if len(revs) != 2 || revs[0].APIClient != 2 || revs[0].Revoked || revs[1].APIClient != 1 || !revs[1].Revoked {
		t.Fatalf("first delivery: %+v, want API client 2 failed and API client 1 revoked", revs)
	}
	if w.Emu.Live(before[0]) {
		t.Fatal("API client 1's token, stored before the revoke, is live after it was asked")
	}

	one := w.Emu.Requests(w.Secrets[0])
	w.Clock.Advance(time.Minute)
	revs = e.Revoke(context.Background(), c, "incident-7")
	if w.Emu.Requests(w.Secrets[0]) != one {
		t.Fatal("the retried delivery asked API client 1 again, though its token from this revoke is stored")
	}
	for _, rv := range revs {
		if rv.Result.APIClient != rv.APIClient {
			t.Fatalf("a result about API client %d says API client %d", rv.APIClient, rv.Result.APIClient)
		}
		if rv.APIClient == 1 && (!rv.Revoked || rv.Result.Outcome != rotation.Duplicate) {
			t.Fatalf("API client 1 on the retry: %+v, want a revoked duplicate", rv)
		}
		if rv.APIClient == 2 && rv.Revoked {
			for _, tok := range before {
				if w.Emu.Live(tok) {
					t.Fatalf("API client 2 counted as revoked with a token stored before the revoke live: %+v", rv)
				}
			}
		}
	}
}
