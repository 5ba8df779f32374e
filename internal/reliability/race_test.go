package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// TestRacingProcessesAndEngines starts 8 `rotator rotate` processes and 8 in-process engines at
// once on the same due secret (a proxy in front of moto holds their first reads until all 16 have
// arrived, so the fast in-process engines do not simply finish first), four rounds in a row, alternating plain and --force rotations
// (a forced round replaces a token two minutes old, older than the duplicate window). Every racer
// reads the same state, so their claims compete for the same ClientRequestToken, and exactly one
// may call Clear: each round must cost Clear one request, every racer must end rotated, not due
// or busy, and AWSCURRENT must hold a live token whose count matches Clear's.
func TestRacingProcessesAndEngines(t *testing.T) {
	const n = 8
	p := newProcWorld(t)
	wantExit(t, p.run("rotate"), 0, "default: rotated")
	// The engines reach moto through the proxy too, whose barrier lines all racers up.
	viaProxy := p.Moto.Client(func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(p.proxyURL) })
	client := p.Client()

	for round, force := range []bool{false, true, false, true} {
		args := []string{"rotate"}
		if force {
			args = append(args, "--force")
			p.makeDue(2 * time.Minute) // not due, but older than the duplicate window
		} else {
			p.makeDue(50 * time.Minute)
		}
		before := p.ClearRequests()
		p.proxy.barrier(2 * n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var outcomes []string
		for i := range n {
			wg.Go(func() {
				r := p.run(args...)
				f := strings.Fields(r.Stdout)
				out := "?"
				if len(f) > 1 {
					out = "proc:" + strings.TrimSuffix(f[1], ":")
				}
				mu.Lock()
				outcomes = append(outcomes, out)
				mu.Unlock()
				if r.Code != 0 {
					t.Errorf("process %d: exit %d: %s", i, r.Code, r.Output())
				}
			})
			wg.Go(func() {
				e := p.Engine(fmt.Sprintf("engine-%d-%d", round, i))
				e.Store, e.WriteRetry, e.Rand = store.New(viaProxy), 10*time.Millisecond, rand.Float64 // real jitter, not the rig's fixed one
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				r := e.Rotate(ctx, client, force)
				mu.Lock()
				outcomes = append(outcomes, "engine:"+string(r.Outcome))
				mu.Unlock()
				if !r.Outcome.OK() {
					t.Errorf("engine %d: %s: %s", i, r.Outcome, r.Message)
				}
			})
		}
		wg.Wait()
		sort.Strings(outcomes)
		t.Logf("round %d (force %v): %v", round, force, outcomes)
		if got := p.ClearRequests() - before; got != 1 {
			t.Fatalf("round %d: %d racers made %d Clear requests, want 1", round, 2*n, got)
		}
		rotated := 0
		for _, o := range outcomes {
			if strings.HasSuffix(o, ":rotated") {
				rotated++
			}
		}
		if rotated != 1 {
			t.Fatalf("round %d: %d racers report rotated, want 1", round, rotated)
		}
		tok, _ := p.MustCurrent()
		if !p.Emu.Live(tok.AccessToken.Reveal()) {
			t.Fatalf("round %d: AWSCURRENT is not live", round)
		}
		checkCount(p.World, 0)
	}
}
