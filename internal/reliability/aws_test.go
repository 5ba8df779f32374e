package reliability

import (
	"context"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// awsCase is one fault at one step of a rotation, with what it must cost.
type awsCase struct {
	step  step
	fault fault
	// lostClaims is how many claims the attempt writes and leaves counted without Clear
	// receiving the request.
	lostClaims int
	// released is how many claims the attempt wrote and then gave up and uncounted itself,
	// without calling Clear: its owner knew (a failed re-read; a claim whose answers were lost).
	released int
	// cleared is whether Clear receives a request during the faulted attempt.
	cleared bool
	// stored is whether the new token lands in AWSCURRENT despite the failure (its write was
	// applied and only the answer was lost).
	stored bool
}

func awsCases() []awsCase {
	var cases []awsCase
	for _, k := range []fault{faultThrottle, faultServer, faultHold, faultDenied, faultLost} {
		for _, s := range []step{stepReadCurrent, stepReadState, stepClaim, stepReread, stepToken, stepResult} {
			if k == faultLost && (s == stepReadCurrent || s == stepReadState || s == stepReread) {
				continue // a read applies nothing: a lost answer is a 5xx
			}
			c := awsCase{step: s, fault: k}
			switch s {
			case stepClaim:
				// A claim whose answer was lost was applied: it counts, and Clear never hears of it.
				if k == faultLost {
					c.released = 1
				}
			case stepReread:
				c.released = 1
			case stepToken:
				c.cleared, c.stored = true, k == faultLost
			case stepResult:
				c.cleared = true
			}
			cases = append(cases, c)
		}
	}
	return cases
}

// TestSecretsManagerFaultsAtEveryStep fails every call of one step of a rotation with one fault,
// on the wire of the real SDK client talking to moto: ThrottlingException and 5xx answers (which
// outlast the SDK's three attempts), requests held until the client gives up, AccessDenied, and
// writes that are applied but whose answer is lost. The result step is the state write after a
// failed Clear request (a 500 here).
//
// After the faulted attempt, which fails (except when the token write was applied and only its
// answers were lost: then it is rotated): AWSCURRENT holds a token document, either the new token
// (only when its write was applied) or the previous one, which is still live unless Clear issued a token that
// was lost; the state counts exactly Clear's requests plus the claims that never reached Clear
// (none: a claim applied but unanswered, and one followed by a failed re-read, are released and
// uncounted by their owner, which knows it will not call Clear), and the wire confirms it (claims
// moto applied less Clear's requests: one for those two, otherwise none). Once the fault clears and the clock passes
// the backoff and any stale claim's lease, the next rotation succeeds and the count stays exact.
func TestSecretsManagerFaultsAtEveryStep(t *testing.T) {
	t.Parallel() // it waits in real time for deadlines and retries, not for the CPU
	name := func(c awsCase) string { return string(c.fault) + "/" + string(c.step) }
	runAll(t, awsCases(), name, func(t *testing.T, c awsCase) {
		r := newWired(t, time.Hour)
		prev, prevID := r.seed()
		issued := r.Emu.Issued(r.Secrets[0])
		requests := r.Emu.Requests(r.Secrets[0])
		if c.step == stepResult {
			r.Emu.Inject(emulator.Fault{Status: 500})
		}

		r.faults.arm(c.step, c.fault)
		res := r.rotate(r.engine("a"), false, faultedDeadline)
		hits := r.faults.disarm()
		if hits == 0 {
			t.Fatalf("the fault never hit %s (outcome %s: %s)", c.step, res.Outcome, res.Message)
		}
		if c.stored {
			// Every answer to the write was lost, but it landed; the engine reads AWSCURRENT to tell.
			expect(t, res, rotation.Rotated)
		} else {
			expect(t, res, rotation.Failed)
		}
		t.Logf("faulted attempt: %d hits, %s: %s", hits, res.Outcome, res.Message)

		if got := r.Emu.Requests(r.Secrets[0]) - requests; got != map[bool]int{false: 0, true: 1}[c.cleared] {
			t.Fatalf("the faulted attempt made %d Clear requests", got)
		}
		tok, id := r.MustCurrent()
		switch {
		case c.stored:
			if id == prevID || !r.Emu.Live(tok.AccessToken.Reveal()) {
				t.Fatal("the applied token write did not leave the new, live token in AWSCURRENT")
			}
		case id != prevID || tok.AccessToken.Reveal() != prev.AccessToken.Reveal():
			t.Fatal("AWSCURRENT changed although no token write was applied")
		case r.Emu.Issued(r.Secrets[0]) == issued && !r.Emu.Live(tok.AccessToken.Reveal()):
			t.Fatal("the previous token was revoked although Clear issued nothing")
		}
		checkCount(r.World, c.lostClaims)
		if got := r.faults.appliedClaims() - r.Emu.Requests(r.Secrets[0]); got != c.lostClaims+c.released {
			t.Fatalf("moto applied %d claims that never reached Clear, want %d", got, c.lostClaims+c.released)
		}

		// The fault has cleared: past the backoff and the stale claim's lease, the client rotates.
		r.Clock.Advance(timing.Lease(clear.DefaultTimeout) + time.Minute)
		res = r.rotate(r.steady("b"), false, 10*time.Second)
		if c.stored {
			expect(t, res, rotation.NotDue)
		} else {
			expect(t, res, rotation.Rotated)
		}
		if tok, _ := r.MustCurrent(); !r.Emu.Live(tok.AccessToken.Reveal()) {
			t.Fatal("AWSCURRENT is not live after recovery")
		}
		checkCount(r.World, c.lostClaims)
		r.checkHealthy(r.steady("status"))
	})
}

// TestSecretsManagerCallsAreBoundedWithoutADeadline holds the first read of a rotation until the
// client gives up, with no deadline on the caller's context, as `rotator rotate` calls the engine.
// Nothing but the store's own per-call bound (store.SecretsManager.Timeout, 20 s by default;
// 500 ms here) can end it: without one, a single unanswered request (a half-open connection)
// wedges the rotator for good. (Found by this suite and fixed in d6599e0; this guards it.)
func TestSecretsManagerCallsAreBoundedWithoutADeadline(t *testing.T) {
	t.Parallel() // it waits in real time for deadlines and retries, not for the CPU
	r := newWired(t, time.Hour)
	r.seed()
	for _, s := range []step{stepReadCurrent, stepClaim} {
		r.faults.arm(s, faultHold)
		sm := store.New(r.API)
		sm.Timeout = 500 * time.Millisecond
		e := r.engineOn("a-"+string(s), sm)
		done := make(chan rotation.Result, 1)
		go func() {
			r.faults.begin()
			done <- e.Rotate(context.Background(), r.client, false)
		}()
		const bound = 10 * time.Second
		select {
		case res := <-done:
			record(r.World, res)
			expect(t, res, rotation.Failed)
			t.Logf("%s held: %s", s, res.Message)
		case <-time.After(bound):
			r.faults.disarm()
			record(r.World, <-done)
			t.Fatalf("Rotate was still waiting for an unanswered %s after %s with no deadline on its context", s, bound)
		}
		r.faults.disarm()
	}
	checkCount(r.World, 0)
}

// TestTokenWriteAppliedButUnansweredIsNotReportedLost applies the token write in moto but loses
// every answer (a 500 after the write; a network that fails right after the first attempt lands
// behaves the same). The token is stored and live, so the rotation must not be reported as "lost
// and the previous token is revoked": that would make `rotator rotate` exit 1, fail the Lambda
// invocation (alarm) and invite an operator to force a rotation that revokes a good token. The
// write's version id is its ClientRequestToken, so the engine can tell that it landed. (Found by
// this suite and fixed in 57c6665; this guards it.)
func TestTokenWriteAppliedButUnansweredIsNotReportedLost(t *testing.T) {
	t.Parallel() // it waits in real time for deadlines and retries, not for the CPU
	r := newWired(t, time.Hour)
	r.seed()
	r.faults.arm(stepToken, faultLost)
	res := r.rotate(r.engine("a"), false, faultedDeadline)
	r.faults.disarm()
	tok, _ := r.MustCurrent()
	if !r.Emu.Live(tok.AccessToken.Reveal()) {
		t.Fatal("the applied write did not store a live token")
	}
	if res.Outcome != rotation.Rotated {
		t.Errorf("outcome %s (%s) for a token that is stored and live, want rotated", res.Outcome, res.Message)
	}
}
