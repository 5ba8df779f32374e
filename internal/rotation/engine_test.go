package rotation_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// NewEngine is the one place the engine's defaults are written: every field but Store comes back
// set (a field added without a default fails here), and what the caller set is kept.
func TestNewEngineFillsEveryDefaultOnce(t *testing.T) {
	e := rotation.NewEngine(rotation.Engine{})
	v := reflect.ValueOf(*e)
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "Store" && v.Field(i).IsZero() {
			t.Errorf("NewEngine left %s unset", name)
		}
	}
	if e.ClearTimeout != clear.DefaultTimeout || e.WriteRetry != rotation.DefaultWriteRetry || e.Backoff != timing.DefaultBackoff {
		t.Errorf("defaults %v, %v, %+v", e.ClearTimeout, e.WriteRetry, e.Backoff)
	}
	if r := e.Rand(); r < 0 || r >= 1 {
		t.Errorf("Rand() = %v, want [0, 1)", r)
	}

	at := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	set := rotation.NewEngine(rotation.Engine{Now: func() time.Time { return at }, Owner: "me", ClearTimeout: time.Second,
		WriteRetry: time.Millisecond, Backoff: timing.Backoff{Base: time.Second, Cap: time.Minute}})
	if !set.Now().Equal(at) || set.Owner != "me" || set.ClearTimeout != time.Second || set.WriteRetry != time.Millisecond ||
		set.Backoff.Base != time.Second {
		t.Errorf("NewEngine changed what the caller set: %+v", set)
	}
}

// Again adds nothing to the engine's rules but the caller's room: it goes again only on a result
// that asked Clear and whose NextCheck the engine set to now (a lost token whose retry Decide lets
// go at once), and only while the deadline leaves a whole lease and its margin.
func TestAgainFollowsTheEnginesNextCheckWithinTheDeadline(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	e := rotation.NewEngine(rotation.Engine{Now: func() time.Time { return at }, ClearTimeout: 30 * time.Second})
	room := timing.Lease(e.ClearTimeout) + timing.LeaseMargin
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	cases := []struct {
		name string
		ctx  context.Context
		r    rotation.Result
		want bool
	}{
		{"lost, retry now, no deadline", context.Background(), rotation.Result{Requested: true, Outcome: rotation.Failed, NextCheck: at}, true},
		{"lost, retry now, room", within(room + 5*time.Second), rotation.Result{Requested: true, Outcome: rotation.Failed, NextCheck: at}, true},
		// A token stored that is due at once (it arrived about to expire: a clock far off, a
		// lifetime of a second) is not a loss: its backoff is the engine's, not the run's to skip.
		{"stored, due at once", context.Background(), rotation.Result{Requested: true, Outcome: rotation.Rotated, NextCheck: at}, false},
		{"lost, retry now, no room for a lease", within(room - time.Second), rotation.Result{Requested: true, Outcome: rotation.Failed, NextCheck: at}, false},
		{"backing off", context.Background(), rotation.Result{Requested: true, Outcome: rotation.Failed, NextCheck: at.Add(time.Second)}, false},
		{"no particular time", context.Background(), rotation.Result{Requested: true, Outcome: rotation.Failed}, false},
		{"Clear not asked", context.Background(), rotation.Result{Outcome: rotation.Failed, NextCheck: at}, false},
	}
	for _, tc := range cases {
		if got := e.Again(tc.ctx, tc.r); got != tc.want {
			t.Errorf("%s: Again = %v, want %v", tc.name, got, tc.want)
		}
	}
}
