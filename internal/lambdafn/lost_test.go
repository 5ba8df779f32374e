package lambdafn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// templateTimeout is the function's Timeout in template.yaml: the deadline a scheduled
// invocation has.
const templateTimeout = 120 * time.Second

// invokeWithin calls the handler as Lambda does, with a deadline timeout from now.
func (f *fixture) invokeWithin(timeout time.Duration, payload string) (any, error) {
	f.t.Helper()
	f.seq++
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("req-%d-lost", f.seq)})
	return f.h.Handle(ctx, json.RawMessage(payload))
}

// refuseTokenWrites makes the next n token writes (a PutSecretValue that stores a token, not the
// state) fail with an AccessDeniedException, which no retry fixes: Clear has answered, and the
// token it issued is lost. n < 0 refuses every one.
func (f *fixture) refuseTokenWrites(c client, n int) *refusals {
	r := &refusals{}
	c.w.API.Fail(func(op string, in any) error {
		p, ok := in.(*secretsmanager.PutSecretValueInput)
		if !ok || len(p.VersionStages) != 0 {
			return nil
		}
		if n >= 0 && int(r.n.Load()) >= n {
			return nil
		}
		if r.n.Add(1) == 1 {
			r.first.Store(time.Now())
		}
		return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied"}
	})
	f.t.Cleanup(func() { c.w.API.Fail(nil) })
	return r
}

// refusals counts the refused token writes, and holds the wall time of the first: Clear had
// answered just before, so from then on the token in AWSCURRENT is dead.
type refusals struct {
	n     atomic.Int32
	first atomic.Value // time.Time
}

func (r *refusals) Load() int32 { return r.n.Load() }

// dueAndRefused stores a first token, lets it come due, and returns the fixture with the next n
// token writes refused.
func dueAndRefused(t *testing.T, n int) (*fixture, client, string, *refusals) {
	t.Helper()
	f := newFixture(t, time.Hour)
	c := f.clients[0]
	res, _ := f.rotated(`{}`)
	expect(t, res, rotation.Rotated)
	first := f.token(c)
	f.clock.Advance(41 * time.Minute)
	return f, c, first, f.refuseTokenWrites(c, n)
}

// A scheduled invocation whose token write is refused (Clear answered, so the token the ERP held is
// revoked) rotates again at once within the same invocation, since its deadline leaves room for a
// whole claim: the engine lets the first retry after a loss go without waiting. Before, the dead
// token stayed in AWSCURRENT until the next scheduled invocation, up to the schedule's 5 minutes.
func TestALostTokenIsReplacedWithinTheInvocation(t *testing.T) {
	f, c, first, refused := dueAndRefused(t, 1)
	ans, err := f.invokeWithin(templateTimeout, eventBridgeScheduled)
	if refused.Load() != 1 {
		t.Fatalf("%d token writes refused, want 1", refused.Load())
	}
	if f.emu.Live(first) {
		t.Fatal("the first token is still live: Clear was not asked, so the test shows nothing")
	}
	if !c.w.Live() {
		t.Fatalf("AWSCURRENT holds a dead token after the invocation (answer %+v, error %v): the ERP waits for the next scheduled run", ans, err)
	}
	// The retry's token is stored before the handler returns: the token was dead at most this
	// long (moto and the emulator on the wire; BENCHMARKS.md section 7).
	t.Logf("seconds without a live token after the refused write: %.2f", time.Since(refused.first.Load().(time.Time)).Seconds())
	if err != nil {
		t.Fatalf("the invocation failed though the token was replaced: %v", err)
	}
	expect(t, ans.(lambdafn.RotateAnswer).Results, rotation.Rotated)
	if n := f.emu.Requests(c.secret); n != 3 {
		t.Errorf("Clear requests = %d, want 3 (the first rotation, the lost one, its retry)", n)
	}
	// Both attempts are in the metrics: the loss is not hidden by the retry that repaired it.
	ems := f.emfLines()
	if len(ems) != 3 {
		t.Fatalf("%d EMF lines, want 3 (the first rotation, the loss, the retry)", len(ems))
	}
	ems[1].checkOutcome(t, rotation.Failed)
	ems[2].checkOutcome(t, rotation.Rotated)
	// The loss still reaches the token-lost alarm: the refused write (IAM, KMS) needs a person.
	if !ems[1].has("TokenLost") || ems[1].num("TokenLost") != 1 {
		t.Errorf("the loss's EMF line has TokenLost = %v, want 1", ems[1]["TokenLost"])
	}
	if ems[2].num("TokenLost") != 0 {
		t.Errorf("the retry's EMF line has TokenLost = %v, want 0", ems[2]["TokenLost"])
	}
}

// A deadline that leaves room for the first attempt but not for another whole claim (its lease and
// margin) does not retry: a claim cut short by the deadline would hold the client for its lease,
// and could lose a second token. The next invocation replaces it.
func TestALostTokenIsNotRetriedPastTheDeadline(t *testing.T) {
	f, c, _, refused := dueAndRefused(t, 1)
	_, err := f.invokeWithin(50*time.Second, eventBridgeScheduled)
	if refused.Load() != 1 {
		t.Fatalf("%d token writes refused, want 1", refused.Load())
	}
	var re *fleet.RotationError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want the loss as a *RotationError", err)
	}
	if n := f.emu.Requests(c.secret); n != 2 {
		t.Errorf("Clear requests = %d, want 2: the retry would not fit in the deadline", n)
	}
	if c.w.Live() {
		t.Fatal("AWSCURRENT holds a live token, though no retry should have run")
	}
	// The next invocation, with the whole timeout, replaces the lost token.
	if _, err := f.invokeWithin(templateTimeout, eventBridgeScheduled); err != nil {
		t.Fatal(err)
	}
	if !c.w.Live() {
		t.Fatal("the next invocation did not replace the lost token")
	}
}

// A second refused write in a row backs off (the engine's rule): the invocation asks Clear once
// more after the first loss and not again, however much of its deadline is left.
func TestASecondLossInARowIsNotRetriedWithinTheInvocation(t *testing.T) {
	f, c, _, refused := dueAndRefused(t, -1)
	_, err := f.invokeWithin(templateTimeout, eventBridgeScheduled)
	var re *fleet.RotationError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want the loss as a *RotationError", err)
	}
	if n := f.emu.Requests(c.secret); n != 3 {
		t.Errorf("Clear requests = %d, want 3: the first rotation, the lost one and one retry", n)
	}
	if refused.Load() != 2 {
		t.Errorf("%d token writes refused, want 2", refused.Load())
	}
	st, _, _ := c.w.State()
	if a := st.APIClient(st.Lost.Secret); a.RetryAt == nil || !a.RetryAt.After(f.clock.Now()) {
		t.Errorf("after a second loss the API client does not back off: %+v", a)
	}
	// Another invocation at once respects the backoff too.
	if _, err := f.invokeWithin(templateTimeout, eventBridgeScheduled); err == nil {
		t.Error("an invocation during the backoff succeeded")
	}
	if n := f.emu.Requests(c.secret); n != 3 {
		t.Errorf("Clear requests = %d during the backoff, want 3", n)
	}
}

// A forced rotation (an operator's event with its id) whose token write is refused is replaced
// within the invocation too: the retry is a plain look, which the engine lets go because the token
// in AWSCURRENT is lost, not because of the force.
func TestALostTokenOfAForcedRotationIsReplacedWithinTheInvocation(t *testing.T) {
	f, c, first, refused := dueAndRefused(t, 1)
	f.clock.Advance(-41 * time.Minute) // not due: only the force asks Clear
	ans, err := f.invokeWithin(templateTimeout, `{"action":"rotate","force":true,"request_id":"ops-ticket-7"}`)
	if refused.Load() != 1 || f.emu.Live(first) {
		t.Fatalf("%d token writes refused, first token live %v: the forced rotation did not lose its token", refused.Load(), f.emu.Live(first))
	}
	if !c.w.Live() {
		t.Fatalf("AWSCURRENT holds a dead token after the invocation (answer %+v, error %v)", ans, err)
	}
	if err != nil {
		t.Fatalf("the invocation failed though the token was replaced: %v", err)
	}
	if n := f.emu.Requests(c.secret); n != 3 {
		t.Errorf("Clear requests = %d, want 3 (the first rotation, the lost one, its retry)", n)
	}

	// The same event sent again (an operator's retry, a duplicated delivery) is answered as acted
	// on: the retry that repaired the loss stored the token the event asked for. Before, the retry
	// did not carry the event's id, and the event sent again asked Clear once more, revoking the
	// token just stored.
	stored, _ := c.w.MustCurrent()
	live := stored.AccessToken.Reveal()
	ans, err = f.invokeWithin(templateTimeout, `{"action":"rotate","force":true,"request_id":"ops-ticket-7"}`)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ans.(lambdafn.RotateAnswer).Results, rotation.Duplicate)
	if n := f.emu.Requests(c.secret); n != 3 || !f.emu.Live(live) {
		t.Errorf("the event sent again: Clear requests = %d, want 3; the token stored is live: %v", n, f.emu.Live(live))
	}
}
