package reliability

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// clearCase is one misbehaviour of Clear's token API and what the rotator must make of it.
type clearCase struct {
	name  string
	fault emulator.Fault
	// slowBody sends the answer's body a byte at a time with this pause (headers at once).
	slowBody time.Duration
	// timeout is the engine's ClearTimeout (default 500ms).
	timeout time.Duration
	// rotated is whether the attempt succeeds; otherwise it fails with kind.
	rotated bool
	kind    clear.Kind
	// issued is whether Clear issues a token during the attempt, revoking the previous one.
	issued bool
	// recovery is how the client gets a token again: "backoff" (wait it out), "midnight" (a 429
	// blocks until 00:00 UTC) or "force" (a refusal blocks until an operator forces a rotation or
	// the configuration changes).
	recovery string
}

func clearCases() []clearCase {
	return []clearCase{
		{name: "500", fault: emulator.Fault{Status: 500}, kind: clear.KindTransient, recovery: "backoff"},
		{name: "502-html", fault: emulator.Fault{Status: 502, Body: "<html><body>502 Bad Gateway</body></html>"}, kind: clear.KindTransient, recovery: "backoff"},
		{name: "503", fault: emulator.Fault{Status: 503}, kind: clear.KindTransient, recovery: "backoff"},
		{name: "429", fault: emulator.Fault{Status: 429}, kind: clear.KindRateLimited, recovery: "midnight"},
		{name: "401-CLI-SEC-001", fault: emulator.Fault{Status: 401, Code: emulator.CodeMissingSecret}, kind: clear.KindAuth, recovery: "force"},
		{name: "401-CLI-SEC-002", fault: emulator.Fault{Status: 401, Code: emulator.CodeInvalidSecret}, kind: clear.KindAuth, recovery: "force"},
		{name: "401-CLI-SEC-003", fault: emulator.Fault{Status: 401, Code: emulator.CodeIPBlocked}, kind: clear.KindAuth, recovery: "force"},
		{name: "404", fault: emulator.Fault{Status: 404}, kind: clear.KindRejected, recovery: "force"},
		{name: "hang", fault: emulator.Fault{Hang: true}, kind: clear.KindTransient, recovery: "backoff"},
		{name: "slow-answer-in-time", fault: emulator.Fault{Delay: 100 * time.Millisecond}, rotated: true, issued: true},
		{name: "slow-answer-too-late", fault: emulator.Fault{Delay: 3 * time.Second}, kind: clear.KindTransient, recovery: "backoff"},
		{name: "slow-body-in-time", slowBody: time.Millisecond, timeout: 5 * time.Second, rotated: true, issued: true},
		{name: "slow-body-too-late", slowBody: 20 * time.Millisecond, kind: clear.KindTransient, issued: true, recovery: "backoff"},
		{name: "issued-then-500", fault: emulator.Fault{IssueThenFail: true}, kind: clear.KindTransient, issued: true, recovery: "backoff"},
		{name: "truncated-json", fault: emulator.Malformed(), kind: clear.KindMalformed, issued: true, recovery: "backoff"},
		{name: "html-200", fault: emulator.Fault{Body: "<html>maintenance</html>"}, kind: clear.KindMalformed, issued: true, recovery: "backoff"},
		{name: "oversized-token", fault: emulator.Oversized(), kind: clear.KindMalformed, issued: true, recovery: "backoff"},
		{name: "oversized-body", fault: emulator.Fault{Body: `{"access_token":"1.` + strings.Repeat("x", 70<<10) + `","valid_till":null}`}, kind: clear.KindMalformed, issued: true, recovery: "backoff"},
		{name: "non-printable-token", fault: emulator.NonPrintable(), kind: clear.KindMalformed, issued: true, recovery: "backoff"},
		{name: "empty-token", fault: emulator.Fault{Body: `{"access_token":"","valid_till":null}`}, kind: clear.KindMalformed, issued: true, recovery: "backoff"},
		// A usable token whose valid_till cannot be understood is stored with its expiry unknown
		// (issue 9, D9): issuing it has already revoked the previous token.
		{name: "bad-valid-till", fault: emulator.Fault{ValidTill: json.RawMessage(`"tomorrow"`)}, issued: true, rotated: true},
		{name: "200-with-errors", fault: emulator.Fault{Body: `{"errors":[{"error_code":"CLR-X","error_message":"?"}]}`}, kind: clear.KindMalformed, issued: true, recovery: "backoff"},
	}
}

// TestClearFaults makes Clear misbehave on a due rotation: 5xx answers (with Clear's error
// document or a proxy's HTML), 429, each 401 code, another 4xx, no answer at all (Hang, with a
// short ClearTimeout), answers that come slowly (within and beyond the timeout, held back whole or
// with a body that trickles), and malformed 200 answers (truncated, HTML, an oversized token or
// body, a control character, an empty token, a bad valid_till, errors in a 200).
//
// After each: AWSCURRENT still holds the previous token document, live unless Clear issued a
// token that was lost (a malformed answer, a body cut off by the timeout, a 500 after issuing);
// the state's count equals Clear's (every claim reached Clear); and the client recovers the way
// its failure calls for: after the backoff, at midnight UTC after a 429, or by a forced rotation
// after a refusal, which an unforced rotation must not override (and which must not call Clear).
func TestClearFaults(t *testing.T) {
	t.Parallel() // it waits in real time for deadlines and retries, not for the CPU
	runAll(t, clearCases(), func(c clearCase) string { return c.name }, func(t *testing.T, c clearCase) {
		r := newWired(t, time.Hour)
		prev, prevID := r.seed()
		issued := r.Emu.Issued(r.Secrets[0])
		if c.slowBody > 0 {
			r.Handle(clear.TokenPath, slowBody(r.Emu, c.slowBody))
		} else {
			r.Emu.Inject(c.fault)
		}
		// Only Clear is faulted here: the engine's store calls get the steady bound, as the
		// set-up's do (at the faulted engines' bound, a slow moto under make test failed a case
		// in a read before Clear was asked).
		e := r.steady("a")
		e.ClearTimeout = 500 * time.Millisecond
		if c.timeout > 0 {
			e.ClearTimeout = c.timeout
		}
		res := r.rotate(e, false, 20*time.Second)
		if got := r.Emu.Issued(r.Secrets[0]) - issued; got != map[bool]int{false: 0, true: 1}[c.issued] {
			t.Fatalf("Clear issued %d tokens, want issued=%v", got, c.issued)
		}
		tok, id := r.MustCurrent()
		if c.rotated {
			expect(t, res, rotation.Rotated)
			if !r.Emu.Live(tok.AccessToken.Reveal()) {
				t.Fatal("AWSCURRENT is not live")
			}
			checkCount(r.World, 0)
			return
		}
		expect(t, res, rotation.Failed)
		var ce *clear.Error
		if !errors.As(res.Err, &ce) || ce.Kind != c.kind {
			t.Fatalf("error %v, want a clear.Error of kind %s", res.Err, c.kind)
		}
		if id != prevID || tok.AccessToken.Reveal() != prev.AccessToken.Reveal() {
			t.Fatal("a failed request changed AWSCURRENT")
		}
		if live := r.Emu.Live(tok.AccessToken.Reveal()); live == c.issued {
			t.Fatalf("previous token live = %v, but Clear issued = %v", live, c.issued)
		}
		checkCount(r.World, 0)

		requests := r.Emu.Requests(r.Secrets[0])
		b := r.steady("b")
		switch c.recovery {
		case "backoff":
			r.Clock.Advance(2 * time.Minute)
		case "midnight":
			r.Clock.Advance(time.Hour)
			expect(t, r.rotate(b, true, 10*time.Second), rotation.Blocked)
			r.Clock.Set(timing.NextMidnightUTC(r.Clock.Now()).Add(time.Minute))
		case "force":
			r.Clock.Advance(time.Hour)
			expect(t, r.rotate(b, false, 10*time.Second), rotation.Blocked)
			if r.Emu.Requests(r.Secrets[0]) != requests {
				t.Fatal("a blocked client called Clear")
			}
		}
		res = r.rotate(b, c.recovery == "force", 10*time.Second)
		expect(t, res, rotation.Rotated)
		if r.Emu.Requests(r.Secrets[0]) != requests+1 {
			t.Fatalf("recovery made %d Clear requests, want 1", r.Emu.Requests(r.Secrets[0])-requests)
		}
		if tok, _ := r.MustCurrent(); !r.Emu.Live(tok.AccessToken.Reveal()) {
			t.Fatal("AWSCURRENT is not live after recovery")
		}
		checkCount(r.World, 0)
		r.checkHealthy(b)
	})
}
