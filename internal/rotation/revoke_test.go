package rotation_test

import (
	"context"
	"strings"
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

// TestRevokeIDReusedAfterNewerTokensIsRefused: a revoke's id sent again once its API client has
// issued a newer token (here after a forced rotation with one API client) is not "already done":
// the token stored since may be the one that leaked, and a duplicate answer would leave it live
// with no error. It is refused, naming the id, with no request to Clear; a retried delivery of the
// revoke while its token still stands stays a duplicate (the Lambda audit's first finding).
func TestRevokeIDReusedAfterNewerTokensIsRefused(t *testing.T) {
	w, c := newWorld(t, rig.Options{Lifetime: time.Hour})
	e := w.Engine("a")
	expect(t, e.Rotate(context.Background(), c, false), rotation.Rotated)
	w.Clock.Advance(time.Minute)
	if revs := e.Revoke(context.Background(), c, "INC-42"); len(revs) != 1 || !revs[0].Revoked {
		t.Fatalf("the revoke: %+v", revs)
	}
	w.Clock.Advance(time.Minute)
	if revs := e.Revoke(context.Background(), c, "INC-42"); len(revs) != 1 || !revs[0].Revoked || revs[0].Result.Outcome != rotation.Duplicate {
		t.Fatalf("a retried delivery while its token stands: %+v", revs)
	}
	w.Clock.Advance(2 * time.Minute)
	expect(t, e.Run(context.Background(), c, rotation.Request{Force: true, Event: "other"}, nil), rotation.Rotated)
	since := w.StoredTokens()
	n := w.ClearRequests()
	w.Clock.Advance(2 * time.Minute)
	revs := e.Revoke(context.Background(), c, "INC-42")
	if len(revs) != 1 || revs[0].Revoked || revs[0].Result.Outcome == rotation.Duplicate || !strings.Contains(revs[0].Result.Message, "INC-42") {
		t.Fatalf("the id sent again after a newer token: %+v, want a refusal naming it", revs)
	}
	if w.ClearRequests() != n || !w.Emu.Live(since[len(since)-1]) {
		t.Fatal("the refused revoke asked Clear")
	}
}

// With two API clients, a retried delivery of a revoke that stored both tokens finds the first
// one under AWSPREVIOUS, beneath the other API client's: it still stands, and nothing is asked.
func TestRevokeRetriedWithTwoAPIClientsStands(t *testing.T) {
	w, c := newWorld(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	e := w.Engine("a")
	expect(t, e.Rotate(context.Background(), c, false), rotation.Rotated)
	w.Clock.Advance(time.Minute)
	if revs := e.Revoke(context.Background(), c, "INC-9"); len(revs) != 2 || !revs[0].Revoked || !revs[1].Revoked {
		t.Fatalf("the revoke: %+v", revs)
	}
	n := w.ClearRequests()
	w.Clock.Advance(time.Minute)
	for _, rv := range e.Revoke(context.Background(), c, "INC-9") {
		if !rv.Revoked || rv.Result.Outcome != rotation.Duplicate {
			t.Fatalf("API client %d on the retry: %+v, want a revoked duplicate", rv.APIClient, rv.Result)
		}
	}
	if w.ClearRequests() != n {
		t.Fatal("the retried delivery asked Clear")
	}
}
