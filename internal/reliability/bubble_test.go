package reliability

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// newWorld builds a world in memory, as a synctest bubble needs, on the bubble's clock. Every
// Clear request it records (World.Requests), with the token it delivered, so that the fault tests
// can measure spacing and check that AWSCURRENT holds the latest token.
func newWorld(t *testing.T, o rig.Options) *rig.World {
	o.Memory = true
	return rig.New(t, o)
}

// engine returns an engine of w on api (nil: w's own, unfaulted) with the given Clear timeout (0:
// the engine's default) and the production pause between token write attempts.
func engine(w *rig.World, owner string, api store.API, clearTimeout time.Duration) *rotation.Engine {
	e := w.Engine(owner)
	if api != nil {
		e.Store = store.New(api)
	}
	e.WriteRetry = rotation.DefaultWriteRetry
	if clearTimeout > 0 {
		e.ClearTimeout = clearTimeout
	}
	return e
}

// answered returns the Clear requests of w that have their answer, in order. World.Requests
// records a request as it is sent; one still in flight has not revoked or issued anything yet.
func answered(w *rig.World) []rig.Request {
	var out []rig.Request
	for _, r := range w.Requests() {
		if r.Status != 0 {
			out = append(out, r)
		}
	}
	return out
}

// current returns the token document in AWSCURRENT, if there is one.
func current(w *rig.World) (document.Token, bool) {
	tok, _, ok := w.Current()
	return tok, ok
}

// daemonLoop runs e on c every tick until ctx ends, as the daemon does (every tick looks, through
// a cache), and returns when it has stopped.
func daemonLoop(ctx context.Context, e *rotation.Engine, c *rotation.Client, tick time.Duration) (stopped <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var cache rotation.Cache
		for {
			e.Run(ctx, c, rotation.Request{}, &cache)
			select {
			case <-ctx.Done():
				return
			case <-time.After(tick):
			}
		}
	}()
	return done
}

// procFaults are the faults of one process's view of the shared in-memory Secrets Manager
// (procFaults.api): hooks that refuse a call, apply it but lose its answer, or kill the process
// (every later call fails, and nothing it sends lands).
type procFaults struct {
	dead atomic.Bool
	// put decides a PutSecretValue: refuse (not applied) or lose (applied, answer lost) with err.
	put func(in *secretsmanager.PutSecretValueInput) (applied bool, err error)
	// get may fail a GetSecretValue.
	get func(in *secretsmanager.GetSecretValueInput) error
}

var errProcessDied = &smithy.GenericAPIError{Code: "RequestCanceled", Message: "the process died"}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "injected " + code, Fault: smithy.FaultServer}
}

// api returns the process's own rig.API on w's Secrets Manager, so that its faults hit it alone.
// Set put and get before the process makes its first call.
func (f *procFaults) api(w *rig.World) *rig.API {
	a := &rig.API{Next: w.SM}
	a.Fail(func(op string, in any) error {
		if f.dead.Load() {
			return errProcessDied
		}
		switch in := in.(type) {
		case *secretsmanager.PutSecretValueInput:
			if f.put == nil {
				return nil
			}
			applied, err := f.put(in)
			if err != nil && applied {
				_, _ = w.SM.PutSecretValue(context.Background(), in)
			}
			return err
		case *secretsmanager.GetSecretValueInput:
			if f.get != nil {
				return f.get(in)
			}
		}
		return nil
	})
	return a
}

// isTokenWrite reports whether a put stores a token document (not the state).
func isTokenWrite(in *secretsmanager.PutSecretValueInput) bool {
	if slices.Contains(in.VersionStages, document.StateStage) {
		return false
	}
	_, err := document.ParseToken([]byte(aws.ToString(in.SecretString)))
	return err == nil
}

// isClaimBy reports whether a put is owner's claim.
func isClaimBy(in *secretsmanager.PutSecretValueInput, owner string) bool {
	if !slices.Contains(in.VersionStages, document.StateStage) {
		return false
	}
	st, err := document.ParseState([]byte(aws.ToString(in.SecretString)))
	return err == nil && st.Claim != nil && st.Claim.Owner == owner
}

// TestEveryTickFaulted is the month's rule for an expiry the injected faults explain: every tick
// window since the token came due met a fault. Ticks are five minutes from start; a token due at
// 12 minutes is first found due by the tick at 15.
func TestEveryTickFaulted(t *testing.T) {
	start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }
	for name, c := range map[string]struct {
		due, lastClean time.Time
		current        bool
		want           bool
	}{
		"every window since due faulted, the current too":     {due: at(12), lastClean: at(10), current: true, want: true},
		"the current window is clean":                         {due: at(12), lastClean: at(10), current: false},
		"the first tick that found it due was clean":          {due: at(12), lastClean: at(15), current: true},
		"a later window was clean":                            {due: at(12), lastClean: at(20), current: true},
		"due on a tick: that tick's window counts":            {due: at(10), lastClean: at(10), current: true},
		"due on a tick, only the window before it was clean":  {due: at(10), lastClean: at(5), current: true, want: true},
		"no window was ever clean":                            {due: at(0), lastClean: at(-5), current: true, want: true},
		"no due time (the token is live, or never comes due)": {lastClean: at(-5), current: true},
	} {
		if got := everyTickFaulted(start, 5*time.Minute, c.due, c.lastClean, c.current); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}
