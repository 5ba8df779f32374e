package rotation_test

import (
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
