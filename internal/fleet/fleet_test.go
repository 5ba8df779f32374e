package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }

// twoClients is a world of two clients, a and b, each with one API client whose secret is read from
// Secrets Manager under its own name (ids, in the clients' order).
func twoClients(t *testing.T) (*rig.World, []string, []*rotation.Client) {
	t.Helper()
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour, APIClients: 2, Clock: fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))})
	ids := w.StoreClientSecrets()
	var clients []*rotation.Client
	for i, name := range []string{"a", "b"} {
		c := w.Client()
		c.Name, c.TokenSecretID = name, w.TokenID+"-"+name
		c.ClientSecret, c.ClientSecret2, c.ClientSecretID = clear.ClientSecret{}, clear.ClientSecret{}, ids[i]
		clients = append(clients, c)
	}
	return w, ids, clients
}

// TestGuardNoticesASharedSecretWithinItsTTL: two clients whose client secrets are named apart are
// rotated; once one secret is changed to the other's value, a long-lived Guard (the daemon's)
// refuses both within its TTL, and asks Secrets Manager nothing in between (issue 19 item 14: the
// daemon refuses shared secrets on every look, not only at start-up).
func TestGuardNoticesASharedSecretWithinItsTTL(t *testing.T) {
	w, ids, clients := twoClients(t)
	e := w.Engine("daemon")
	g := &fleet.Guard{Engine: e, All: clients, TTL: fleet.GuardTTL}
	ctx := context.Background()
	for _, c := range clients {
		if r := g.Run(ctx, c, rotation.Request{}, nil); r.Outcome != rotation.Rotated {
			t.Fatalf("%s: %s (%s), want rotated", c.Name, r.Outcome, r.Message)
		}
	}

	if _, err := w.SM.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(ids[1]), SecretString: aws.String(w.Secrets[0])}); err != nil {
		t.Fatal(err)
	}
	w.API.TakeCalls()
	if err := g.Refusal(ctx, clients[1]); err != nil {
		t.Fatalf("refused within the TTL of a reading that found nothing: %v", err)
	}
	if n, _ := w.API.TakeCalls(); n != 0 {
		t.Fatalf("%d Secrets Manager call(s) within the TTL, want none", n)
	}
	w.Clock.Advance(fleet.GuardTTL)
	requests := w.ClearRequests()
	for _, c := range clients {
		r := g.Run(ctx, c, rotation.Request{Force: true}, nil)
		if r.Outcome != rotation.Failed || g.Refusal(ctx, c) == nil {
			t.Fatalf("%s after its secret became the other's: %s (%s), want a refusal", c.Name, r.Outcome, r.Message)
		}
	}
	if w.ClearRequests() != requests {
		t.Fatal("a client sharing its client secret asked Clear")
	}
}

// A delivery that finally failed is part of the status answer itself, so that the CLI's --json and
// the Lambda's status answer, which are the same type, both show it (issue 18: visible everywhere
// ops look); a client with nothing undelivered, or whose record cannot be read, has no entry.
func TestStatusAnswerCarriesWhatWasNotDelivered(t *testing.T) {
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour})
	c := w.Client()
	other := w.Client()
	other.Name = "other"
	rec := fleet.Undelivered{Kind: "webhook", VersionID: "v1", Record: "version v1 at 2026-11-21T10:00:00Z"}
	f := &fleet.Fleet{Engine: w.Engine("cli"), Undelivered: func(_ context.Context, c *rotation.Client) ([]fleet.Undelivered, error) {
		if c.Name == "other" {
			return nil, nil
		}
		return []fleet.Undelivered{rec}, nil
	}}
	ans, _ := f.Status(context.Background(), []*rotation.Client{c, other})
	if got := ans.Undelivered[c.Name]; len(got) != 1 || got[0] != rec || got[0].String() != "webhook: version v1 at 2026-11-21T10:00:00Z" {
		t.Fatalf("undelivered = %v", ans.Undelivered)
	}
	if _, ok := ans.Undelivered["other"]; ok {
		t.Fatalf("a client with nothing undelivered has an entry: %v", ans.Undelivered)
	}
	if ans, _ := (&fleet.Fleet{Engine: w.Engine("cli")}).Status(context.Background(), []*rotation.Client{c}); ans.Undelivered != nil {
		t.Fatalf("without push delivery: %v", ans.Undelivered)
	}
}

// TestStatusShowsASharedClientSecretAsBlocked: a client the guard refuses (its client secret is also
// another client's) will not be rotated until the secret changes; status must say so, blocked with
// the reason, so that `status --check` fails, rather than show ok until its token dies. The
// refused result's status says the same. Before, status showed both clients ok.
func TestStatusShowsASharedClientSecretAsBlocked(t *testing.T) {
	w, ids, clients := twoClients(t)
	ctx := context.Background()
	f := &fleet.Fleet{Engine: w.Engine("cli"), All: clients}
	if _, err := f.Rotate(ctx, clients, rotation.Request{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.SM.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(ids[1]), SecretString: aws.String(w.Secrets[0])}); err != nil {
		t.Fatal(err)
	}
	ans, _ := f.Status(ctx, clients[1:])
	st := ans.Clients[0]
	if st.State != rotation.HealthBlocked || st.BlockedReason == nil || st.BlockedUntil != nil || st.ValidTill == nil {
		t.Fatalf("status of a client sharing its client secret: %+v, want blocked with the reason and its token", st)
	}
	r, _ := f.Rotate(ctx, clients[1:], rotation.Request{Force: true})
	if got := r.Results[0].Status.State; got != rotation.HealthBlocked {
		t.Fatalf("the refused result's status is %s, want blocked", got)
	}
}
