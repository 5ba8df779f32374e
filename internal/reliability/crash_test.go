package reliability

import (
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
)

// crashCase is a point of a rotation at which `rotator rotate` is SIGKILLed.
type crashCase struct {
	name string
	// arm sets up the stall the process is killed in, and wait returns once it is there.
	arm  func(p *procWorld)
	wait func(t *testing.T, p *procWorld)
	// issued is whether Clear issued a token the process took to its grave (revoking the old).
	issued bool
	// lost is how many claims the crash left counted without a request to Clear.
	lost int
	// stale is whether the crash leaves a claim that must wait out its lease.
	stale bool
}

func crashCases() []crashCase {
	heldAt := func(s step) func(*testing.T, *procWorld) {
		return func(t *testing.T, p *procWorld) { p.proxy.waitHeld(t, s) }
	}
	return []crashCase{
		{
			name: "claim-write-held",
			arm:  func(p *procWorld) { p.proxy.arm(stepClaim, holdBefore) },
			wait: heldAt(stepClaim),
		},
		{
			name: "claim-applied-answer-held",
			arm:  func(p *procWorld) { p.proxy.arm(stepClaim, holdAfter) },
			wait: heldAt(stepClaim), lost: 1, stale: true,
		},
		{
			name: "reread-held",
			arm:  func(p *procWorld) { p.proxy.arm(stepReread, holdBefore) },
			wait: heldAt(stepReread), lost: 1, stale: true,
		},
		{
			name: "clear-answer-slow",
			arm:  func(p *procWorld) { p.Emu.Inject(emulator.Fault{Delay: time.Minute}) },
			wait: func(t *testing.T, p *procWorld) {
				deadline := time.Now().Add(30 * time.Second)
				for p.Emu.Requests(p.Secrets[0]) < 2 {
					if time.Now().After(deadline) {
						t.Fatal("the request never reached Clear")
					}
					time.Sleep(10 * time.Millisecond)
				}
			},
			stale: true,
		},
		{
			name: "token-write-held",
			arm:  func(p *procWorld) { p.proxy.arm(stepToken, holdBefore) },
			wait: heldAt(stepToken), issued: true, stale: true,
		},
		{
			name: "token-applied-answer-held",
			arm:  func(p *procWorld) { p.proxy.arm(stepToken, holdAfter) },
			wait: heldAt(stepToken),
		},
	}
}

// TestKillAtEveryStep SIGKILLs the built `rotator rotate` at each step of a due rotation: while
// its claim write is held (before and after moto applied it), while its re-read is held, while
// Clear's answer is slow, and between Clear's answer and the token write (a proxy between the
// binary and moto holds the write; before and after moto applied it).
//
// After the kill: AWSCURRENT holds a token document, the previous one unless the token write was
// applied, and it is live unless Clear issued a token that died with the process; the state
// counts Clear's requests plus the claim the crash lost, if any. Then a fresh `rotator rotate`
// (after the stale claim's lease, which the test ends by rewriting lease_until in the past)
// recovers: the token is live, the count stays exact, and the crash cost at most one extra
// request to Clear.
//
// Each case has its own world, proxy and processes, so the cases run side by side: each waits on
// its processes, not on the CPU. The test itself is not parallel: beside the thirty cases of
// TestSecretsManagerFaultsAtEveryStep on the same moto_server, a loaded machine made a one-second
// store call time out.
func TestKillAtEveryStep(t *testing.T) {
	runAll(t, crashCases(), func(c crashCase) string { return c.name }, func(t *testing.T, c crashCase) {
		p := newProcWorld(t)
		wantExit(t, p.run("rotate"), 0, "default: rotated")
		p.makeDue(50 * time.Minute)
		prev, prevID := p.MustCurrent()
		issued := p.Emu.Issued(p.Secrets[0])

		c.arm(p)
		proc := p.start("rotate")
		c.wait(t, p)
		proc.Kill()
		p.proxy.disarm()

		tok, id := p.MustCurrent()
		applied := c.name == "token-applied-answer-held"
		switch {
		case applied:
			if id == prevID || !p.Emu.Live(tok.AccessToken.Reveal()) {
				t.Fatal("the applied token write did not leave a live token in AWSCURRENT")
			}
		case id != prevID || tok.AccessToken.Reveal() != prev.AccessToken.Reveal():
			t.Fatal("AWSCURRENT changed although no token write landed")
		}
		if got := p.Emu.Issued(p.Secrets[0]) - issued; (got == 1) != (c.issued || applied) {
			t.Fatalf("Clear issued %d tokens during the killed rotation", got)
		}
		if !applied && p.Emu.Live(tok.AccessToken.Reveal()) == c.issued {
			t.Fatalf("previous token live = %v, though Clear issued = %v", !c.issued, c.issued)
		}
		checkCount(p.World, c.lost)

		if st := state(p.World); (st.Claim != nil && st.Claim.Base == id) != c.stale {
			t.Fatalf("stale claim left = %v, want %v", st.Claim != nil && st.Claim.Base == id, c.stale)
		}
		if c.stale {
			// Another rotator must wait for the lease; the test lets it pass at once.
			wantExit(t, p.run("rotate"), 0, "default: busy")
			p.expireLease()
		}
		r := p.run("rotate")
		t.Logf("after the crash: %s", r.Stdout)
		if applied {
			wantExit(t, r, 0, "default: not_due")
		} else {
			wantExit(t, r, 0, "default: rotated")
		}
		tok, _ = p.MustCurrent()
		if !p.Emu.Live(tok.AccessToken.Reveal()) {
			t.Fatal("AWSCURRENT is not live after recovery")
		}
		checkCount(p.World, c.lost)
		// Two rotations succeeded (the seed and the recovery, or the killed one whose write
		// landed); anything more is what the crash cost.
		if extra := p.Emu.Requests(p.Secrets[0]) - 2; extra > 1 {
			t.Fatalf("the crash cost %d extra Clear requests", extra)
		}
	})
}
