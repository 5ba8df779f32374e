package reliability

import (
	"testing"
	"time"
)

// TestProcessDaemonReplacesALostTokenAtOnce: the daemon's token write is refused once, after Clear
// answered: the token in AWSCURRENT is revoked and the new one is lost. The README promises that
// the next check rotates again at once. This measures, with the built daemon, how long AWSCURRENT
// holds no live token (issue 19 item 5: 19-26 s before the fix, the first step of the backoff).
func TestProcessDaemonReplacesALostTokenAtOnce(t *testing.T) {
	t.Parallel()
	p := newProcWorld(t)
	wantExit(t, p.run("rotate"), 0, "rotated")
	p.makeDue(41 * time.Minute)
	p.proxy.arm(stepToken, refuseOnce)
	d := p.start("run")
	defer d.Kill()

	var deadAt, liveAt time.Time
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		live, now := p.Live(), time.Now()
		if !live && deadAt.IsZero() {
			deadAt = now
		}
		if live && !deadAt.IsZero() {
			liveAt = now
			break
		}
	}
	switch {
	case deadAt.IsZero():
		t.Fatalf("the token in AWSCURRENT never died: the refused write did not happen\n%s", d.Output())
	case liveAt.IsZero():
		t.Fatalf("AWSCURRENT held no live token for 45 s after the lost token\n%s", d.Output())
	}
	gap := liveAt.Sub(deadAt)
	t.Logf("AWSCURRENT held no live token for %v after the lost token", gap.Round(10*time.Millisecond))
	if gap > 5*time.Second {
		t.Fatalf("AWSCURRENT held no live token for %v after the lost token; the README promises the next check rotates again at once", gap)
	}
	if !d.Logged("the token in AWSCURRENT is lost") && !d.Logged("rotation failed") {
		t.Errorf("the loss was not logged:\n%s", d.Output())
	}
}
