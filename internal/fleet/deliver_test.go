package fleet_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// told records the fleet's Deliver calls; fail makes each call fail.
type told struct {
	mu    sync.Mutex
	calls []string // version ids told
	revok []bool
	fail  bool
}

func (d *told) deliver(_ context.Context, c *rotation.Client, r rotation.Result, revoking bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, r.Stored.VersionID)
	d.revok = append(d.revok, revoking)
	if d.fail {
		return errors.New("the receiver answered 500")
	}
	return nil
}

// Push delivery is triggered in the fleet, for the CLI and the Lambda alike (issue 18): a rotation
// that stored a token is told, a no-op is not; a revoke tells the last token stored, the one in
// AWSCURRENT; a delivery that finally failed makes the command's error a *DeliveryError that
// errors.Is finds fleet.ErrNotDelivered in, while every result says rotated.
func TestFleetDeliversEachStoredToken(t *testing.T) {
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour, APIClients: 2, Clock: fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))})
	c := w.Client()
	d := &told{}
	f := &fleet.Fleet{Engine: w.Engine("cli"), Deliver: d.deliver}
	ctx := context.Background()
	clients := []*rotation.Client{c}

	ans, err := f.Rotate(ctx, clients, rotation.Request{})
	if err != nil || ans.Results[0].Outcome != rotation.Rotated {
		t.Fatalf("first rotate: %v %+v", err, ans)
	}
	if len(d.calls) != 1 || d.calls[0] == "" || d.revok[0] {
		t.Fatalf("after a rotation: told %v (revoking %v), want one version, not revoking", d.calls, d.revok)
	}
	if ans, err = f.Rotate(ctx, clients, rotation.Request{}); err != nil || ans.Results[0].Outcome != rotation.NotDue {
		t.Fatalf("second rotate: %v %+v", err, ans)
	}
	if len(d.calls) != 1 {
		t.Fatalf("a no-op was told: %v", d.calls)
	}

	rv, err := f.Revoke(ctx, clients, "")
	if err != nil || len(rv.Results) != 2 {
		t.Fatalf("revoke: %v %+v", err, rv)
	}
	_, cur, _ := w.Current()
	if len(d.calls) != 2 || !d.revok[1] || d.calls[1] != cur {
		t.Fatalf("after a revoke of two API clients: told %v (revoking %v), want once more, the AWSCURRENT version %s", d.calls, d.revok, cur)
	}

	d.fail = true
	w.Clock.Advance(30 * time.Minute) // past the re-read window that guards the API client revoked first
	ans, err = f.Rotate(ctx, clients, rotation.Request{Force: true})
	var de *fleet.DeliveryError
	if !errors.Is(err, fleet.ErrNotDelivered) || !errors.As(err, &de) || len(de.Errs) != 1 {
		t.Fatalf("a failed delivery: error %v, want a *DeliveryError with one client", err)
	}
	var re *fleet.RotationError
	if errors.As(err, &re) || ans.Results[0].Outcome != rotation.Rotated {
		t.Fatalf("a failed delivery is not a failed rotation: %v %+v", err, ans.Results)
	}
}
