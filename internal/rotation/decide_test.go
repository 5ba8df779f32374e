package rotation_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// snap is a snapshot of a client with a one-hour token issued at issued by API client apiClient.
func snap(now, issued time.Time, apiClient int, secrets ...string) rotation.Snapshot {
	vt := issued.Add(time.Hour)
	return rotation.Snapshot{
		Now: now, CurrentKnown: true, CurrentID: "v-current", StateKnown: true, StateID: "s1",
		HasToken: true, Token: document.Token{AccessToken: clear.NewAccessToken("tok"), IssuedAt: issued, ValidTill: &vt, APIClient: apiClient},
		Secrets: secrets,
	}
}

var policy = rotation.Policy{DailyLimit: 48, ClearTimeout: 30 * time.Second}

func TestDecideRenewsWhenAThirdIsLeft(t *testing.T) {
	s := snap(t0.Add(39*time.Minute), t0, 0, "fp1")
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Wait || d.Outcome != rotation.NotDue || !d.NextCheck.Equal(t0.Add(40*time.Minute)) || d.Health != rotation.HealthOK {
		t.Fatalf("before renewal: %+v", d)
	}
	s.Now = t0.Add(40 * time.Minute)
	d = rotation.Decide(s, policy, rotation.Request{Owner: "me"})
	if d.Action != rotation.Ask || d.Slot != 1 || d.Claim.Claim == nil || d.Claim.Claim.Base != "v-current" || d.Claim.Claim.Owner != "me" {
		t.Fatalf("at renewal: %+v", d)
	}
	if got := d.Claim.APIClient("fp1"); got.Requests != 1 || got.Day != "2026-11-21" {
		t.Fatalf("the claim does not count the request: %+v", got)
	}
	// The lease is sized to the work: Clear's timeout, the write window and a margin.
	if want := s.Now.Add(timing.Lease(30 * time.Second)); !d.Claim.Claim.LeaseUntil.Equal(want) {
		t.Fatalf("lease until %v, want %v", d.Claim.Claim.LeaseUntil, want)
	}
}

func TestDecideForceAlwaysAsksUnlessInFlight(t *testing.T) {
	// Issue 8 item 1: a force within a minute of any rotation asks Clear.
	s := snap(t0.Add(10*time.Second), t0, 0, "fp1")
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Action != rotation.Ask {
		t.Fatalf("force right after a rotation: %+v", d)
	}
	// A force lifts a 401 block and a backoff, but not the daily limit or a 429.
	retry := t0.Add(time.Hour)
	s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1", Failures: 3, RetryAt: &retry,
		Blocked: &document.Block{Kind: "unauthorized", Reason: "CLI-SEC-002"}}}}
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Action != rotation.Ask {
		t.Fatalf("force through a 401 block and a backoff: %+v", d)
	}
	s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 48}}}
	d := rotation.Decide(s, policy, rotation.Request{Force: true})
	var lim *rotation.LimitError
	if d.Action != rotation.Wait || d.Outcome != rotation.Limited || !errors.As(d.Err, &lim) || !d.NextCheck.Equal(timing.NextMidnightUTC(s.Now)) {
		t.Fatalf("force over the limit: %+v", d)
	}
	until := t0.Add(2 * time.Hour)
	s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1", Blocked: &document.Block{Kind: "rate-limited", Until: &until}}}}
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Outcome != rotation.Blocked || !d.NextCheck.Equal(until) {
		t.Fatalf("force through a 429: %+v", d)
	}
	// A live claim: busy, and look again when its lease ends.
	s.State = document.State{Claim: &document.Claim{Owner: "other", At: s.Now, LeaseUntil: s.Now.Add(time.Minute), Base: "v-current"}}
	d = rotation.Decide(s, policy, rotation.Request{Force: true})
	var busy *rotation.BusyError
	if d.Outcome != rotation.Busy || !errors.As(d.Err, &busy) || !d.NextCheck.Equal(s.Now.Add(time.Minute)) || d.Health != rotation.HealthInFlight {
		t.Fatalf("force during a claim: %+v", d)
	}
}

func TestDecideRecognisesDuplicatedEventsByID(t *testing.T) {
	s := snap(t0.Add(time.Minute), t0, 0, "fp1")
	d := rotation.Decide(s, policy, rotation.Request{Force: true, Event: "ev-1"})
	if d.Action != rotation.Ask || d.Claim.Claim.Event != "ev-1" {
		t.Fatalf("first delivery: %+v", d)
	}
	// Its rotation stored a token: the same event again, a minute or a day later, asks nothing.
	s.State, s.CurrentID = d.Claim, "v-1"
	s.Now = t0.Add(24 * time.Hour)
	if d := rotation.Decide(s, policy, rotation.Request{Force: true, Event: "ev-1"}); d.Outcome != rotation.Duplicate || !d.Outcome.OK() {
		t.Fatalf("second delivery: %+v", d)
	}
	// The state remembers a bounded number of events.
	for i := range 40 {
		d := rotation.Decide(s, policy, rotation.Request{Force: true, Event: fmt.Sprint("e", i)})
		s.State, s.CurrentID = d.Claim, fmt.Sprint("v-e", i)
	}
	st := rotation.Decide(s, policy, rotation.Request{}).Settled
	if len(st.Events) != document.MaxEvents || st.Events[document.MaxEvents-1] != "e39" {
		t.Fatalf("events %v", st.Events)
	}
}

func TestDecideFloorHoldsForAbsurdInput(t *testing.T) {
	// Issue 9 D2: whatever valid_till, issue time or settings arrive, two automatic rotations are
	// at least timing.MinInterval apart, unless the token in AWSCURRENT was lost.
	rng := rand.New(rand.NewPCG(1, 2))
	durations := []time.Duration{-48 * time.Hour, -time.Hour, -time.Second, 0, time.Nanosecond, time.Second, 59 * time.Second, time.Hour, 1000 * time.Hour}
	for i := range 20000 {
		issued := t0.Add(durations[rng.IntN(len(durations))] / 100)
		now := t0.Add(time.Duration(rng.Int64N(int64(3 * time.Minute))))
		vt := issued.Add(durations[rng.IntN(len(durations))])
		s := snap(now, issued, 0, "fp1")
		switch rng.IntN(3) {
		case 0:
			s.Token.ValidTill = &vt
		case 1:
			s.Token.ValidTill = nil
		case 2:
			s.Token.ValidTill, s.Token.ValidTillUnknown = nil, true
		}
		p := rotation.Policy{DailyLimit: 1 + rng.IntN(250), RenewBefore: durations[rng.IntN(len(durations))], MaxAge: durations[rng.IntN(len(durations))]}
		d := rotation.Decide(s, p, rotation.Request{})
		if d.Action == rotation.Ask && now.Sub(issued) < timing.MinInterval && !now.Before(issued) {
			t.Fatalf("case %d: asked %s after the last issue (valid_till %v, policy %+v)", i, now.Sub(issued), s.Token.ValidTill, p)
		}
		if d.Action == rotation.Wait && d.Outcome == rotation.NotDue && !d.NextCheck.IsZero() && d.NextCheck.Before(now) {
			t.Fatalf("case %d: next check %v is before now %v", i, d.NextCheck, now)
		}
	}
}

// TestDecideAnIssueTimeInTheFutureCountsAsNow: a token document whose issued_at lies ahead of now
// (written by a rotator whose clock was ahead, or by hand) holds nothing off past now: the floor
// between two rotations ends a minute from now, not a minute after that issue; and a claim it
// completed retires the token it replaced now, not at that issue (which would keep the other
// API client from being asked for as long as consumers re-read after it).
func TestDecideAnIssueTimeInTheFutureCountsAsNow(t *testing.T) {
	now := t0.Add(time.Hour)
	ahead := now.Add(2 * time.Hour)
	for name, tc := range map[string]struct {
		snap  func() rotation.Snapshot
		check func(d rotation.Decision) string // "" when right
	}{
		"the floor ends a minute from now": {
			snap: func() rotation.Snapshot {
				// Expired already (valid_till before its issue), so due at once but for the floor.
				s := snap(now, ahead, 0, "fp1")
				vt := now.Add(-time.Second)
				s.Token.ValidTill = &vt
				return s
			},
			check: func(d rotation.Decision) string {
				if d.Outcome != rotation.NotDue || !d.NextCheck.Equal(now.Add(time.Minute)) {
					return fmt.Sprintf("%s, next check %v; want not due until %v", d.Outcome, d.NextCheck, now.Add(time.Minute))
				}
				return ""
			},
		},
		"a completed claim retires the token it replaced now": {
			snap: func() rotation.Snapshot {
				s := snap(now, ahead, 2, "fp1", "fp2")
				s.State = document.State{Claim: &document.Claim{Owner: "other", At: now.Add(-10 * time.Second), LeaseUntil: now.Add(50 * time.Second),
					Base: "v-before", Slot: 2, Secret: "fp2", Replaces: "fp1"}}
				return s
			},
			check: func(d rotation.Decision) string {
				if r := d.Settled.APIClient("fp1").Retired; r == nil || !r.Equal(now) {
					return fmt.Sprintf("API client 1 retired at %v, want %v", r, now)
				}
				return ""
			},
		},
	} {
		if msg := tc.check(rotation.Decide(tc.snap(), policy, rotation.Request{})); msg != "" {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

func TestDecideRotatesALostTokenAtOnce(t *testing.T) {
	// The token in AWSCURRENT was revoked by a request whose answer was lost: rotate now, within
	// the floor and before renewal is due, as soon as the backoff allows.
	s := snap(t0.Add(5*time.Second), t0, 0, "fp1")
	s.State = document.State{Lost: &document.Lost{At: t0, Reason: "write refused", Base: "v-current", Slot: 1, Secret: "fp1", Certain: true}}
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Health != rotation.HealthTokenLost {
		t.Fatalf("lost token: %+v", d)
	}
	// Once AWSCURRENT has moved on, the loss is over.
	s.CurrentID = "v-next"
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Action != rotation.Wait || d.Settled.Lost != nil || d.Health != rotation.HealthOK {
		t.Fatalf("after recovery: %+v", d)
	}
	// An abandoned claim (its owner vanished) is a possible loss once its lease has ended.
	s.CurrentID = "v-current"
	s.State = document.State{Claim: &document.Claim{Owner: "gone", At: t0, LeaseUntil: t0.Add(time.Second), Base: "v-current", Slot: 1, Secret: "fp1"}}
	d = rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Health != rotation.HealthTokenLost || d.Settled.Lost == nil || d.Settled.Lost.Certain {
		t.Fatalf("abandoned claim: %+v", d)
	}
}

func TestDecideTwoAPIClientsAlternate(t *testing.T) {
	s := snap(t0.Add(41*time.Minute), t0, 1, "fp1", "fp2")
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Slot != 2 || d.Secret != "fp2" || d.Degraded {
		t.Fatalf("token from API client 1: %+v", d)
	}
	if a, b := d.Claim.APIClient("fp1"), d.Claim.APIClient("fp2"); a.Requests != 0 || b.Requests != 1 {
		t.Fatalf("counts per API client: %+v %+v", a, b)
	}
	s.Token.APIClient = 2
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Slot != 1 {
		t.Fatalf("token from API client 2: %+v", d)
	}
	// A force with two API clients also asks the other one: the token it replaces stays valid.
	s.Now = t0.Add(2 * time.Minute)
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Action != rotation.Ask || d.Slot != 1 {
		t.Fatalf("force: %+v", d)
	}
}

// A second API client added to a client that had one: the token in AWSCURRENT was written while
// one API client was configured (no api_client in its document), so the first one issued it, and
// the next rotation asks the second, as the README's set-up promises ("The next rotation uses
// it"), not the first, which would revoke the token every ERP holds (an audit's walk-through). The
// token it replaces is the first's, retired from then on; and the first's backoff or a re-read
// hold applies as for any token of the first's.
func TestDecideTheFirstRotationWithASecondAPIClientAsksIt(t *testing.T) {
	s := snap(t0.Add(41*time.Minute), t0, 0, "fp1", "fp2")
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Slot != 2 || d.Claim.Claim.Replaces != "fp1" {
		t.Fatalf("a token written with one API client, now two: %+v", d)
	}
	s.Now = t0.Add(2 * time.Minute)
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Action != rotation.Ask || d.Slot != 2 {
		t.Fatalf("force: %+v", d)
	}
	// The second backs off after a transient failure: the first is not asked while the token in
	// use outlives the backoff (which would revoke it).
	s.Now = t0.Add(41 * time.Minute)
	retry := s.Now.Add(time.Minute)
	s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1"}, {Secret: "fp2", Failures: 1, RetryAt: &retry}}}
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Action == rotation.Ask {
		t.Fatalf("the second backing off: asked API client %d of a token the first issued", d.Slot)
	}
}

func TestDecideDegradedMode(t *testing.T) {
	s := snap(t0.Add(41*time.Minute), t0, 1, "fp1", "fp2")
	until := t0.Add(10 * time.Hour)
	for name, other := range map[string]document.APIClient{
		"401":     {Secret: "fp2", Blocked: &document.Block{Kind: "unauthorized", Reason: "CLI-SEC-002"}},
		"429":     {Secret: "fp2", Blocked: &document.Block{Kind: "rate-limited", Until: &until}},
		"limit":   {Secret: "fp2", Day: "2026-11-21", Requests: 48},
		"backoff": {Secret: "fp2", Failures: 2, RetryAt: &until},
	} {
		s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 3}, other}}
		d := rotation.Decide(s, policy, rotation.Request{})
		if d.Action != rotation.Ask || d.Slot != 1 || !d.Degraded {
			t.Fatalf("%s: %+v", name, d)
		}
		if st := rotation.Decide(snap(t0.Add(time.Minute), t0, 1, "fp1", "fp2"), policy, rotation.Request{}); st.Health != rotation.HealthOK {
			t.Fatalf("%s: a healthy pair reads %s", name, st.Health)
		}
		s2 := s
		s2.Now = t0.Add(time.Minute)
		if d := rotation.Decide(s2, policy, rotation.Request{}); d.Health != rotation.HealthDegraded || !d.Degraded {
			t.Fatalf("%s: health %s", name, d.Health)
		}
	}
	// Both unusable: the refusal of the one it would ask.
	s.State = document.State{APIClients: []document.APIClient{
		{Secret: "fp1", Blocked: &document.Block{Kind: "unauthorized", Reason: "x"}},
		{Secret: "fp2", Blocked: &document.Block{Kind: "unauthorized", Reason: "y"}}}}
	d := rotation.Decide(s, policy, rotation.Request{})
	var blk *rotation.BlockedError
	if d.Action != rotation.Wait || d.Outcome != rotation.Blocked || !errors.As(d.Err, &blk) || blk.Slot != 2 || d.Health != rotation.HealthBlocked {
		t.Fatalf("both blocked: %+v", d)
	}
}

func TestDecideAChangedClientSecretStartsAfresh(t *testing.T) {
	// Issue 8 item 3: a 401 block belongs to the client secret Clear refused; a new secret is not
	// blocked, in status as in rotate.
	s := snap(t0.Add(41*time.Minute), t0, 0, "fp-new")
	s.State = document.State{APIClients: []document.APIClient{{Secret: "fp-old", Day: "2026-11-21", Requests: 7, Blocked: &document.Block{Kind: "unauthorized", Reason: "CLI-SEC-002"}}}}
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Health == rotation.HealthBlocked || *d.RequestsToday != 0 {
		t.Fatalf("new secret: %+v", d)
	}
	if len(d.Claim.APIClients) != 1 || d.Claim.APIClients[0].Secret != "fp-new" {
		t.Fatalf("the old secret's bookkeeping was kept: %+v", d.Claim.APIClients)
	}
}

func TestDecideUnknownIsNeverAGuess(t *testing.T) {
	s := snap(t0, t0, 0, "fp1")
	s.CurrentKnown = false
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Action != rotation.Wait || d.Health != rotation.HealthUnknown || !errors.Is(d.Err, rotation.ErrUnknown) {
		t.Fatalf("current unknown: %+v", d)
	}
	s = snap(t0.Add(time.Hour), t0, 0, "fp1")
	s.StateKnown = false
	if d := rotation.Decide(s, policy, rotation.Request{Force: true}); d.Action != rotation.Wait || d.RequestsToday != nil || d.Health != rotation.HealthUnknown {
		t.Fatalf("state unknown: %+v", d)
	}
	// One client secret unreadable with two configured: the other is used.
	s = snap(t0.Add(41*time.Minute), t0, 1, "fp1", "")
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Action != rotation.Ask || d.Slot != 1 || !d.Degraded {
		t.Fatalf("second secret unreadable: %+v", d)
	}
}

func TestDecideHealth(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*rotation.Snapshot)
		want rotation.Health
	}{
		{"ok", func(s *rotation.Snapshot) {}, rotation.HealthOK},
		{"expiring", func(s *rotation.Snapshot) { s.Now = t0.Add(50 * time.Minute) }, rotation.HealthExpiring},
		{"expired", func(s *rotation.Snapshot) { s.Now = t0.Add(61 * time.Minute) }, rotation.HealthExpired},
		{"no token", func(s *rotation.Snapshot) { s.HasToken = false }, rotation.HealthNoToken},
		{"limited", func(s *rotation.Snapshot) {
			s.State.APIClients = []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 48}}
		}, rotation.HealthLimited},
		{"backing off", func(s *rotation.Snapshot) {
			at := t0.Add(time.Hour)
			s.State.APIClients = []document.APIClient{{Secret: "fp1", Failures: 1, RetryAt: &at}}
		}, rotation.HealthBackingOff},
	} {
		s := snap(t0.Add(10*time.Minute), t0, 0, "fp1")
		c.mod(&s)
		if d := rotation.Decide(s, policy, rotation.Request{}); d.Health != c.want {
			t.Errorf("%s: health %s, want %s", c.name, d.Health, c.want)
		}
	}
}

func TestDecideDeadlineTooShort(t *testing.T) {
	s := snap(t0.Add(45*time.Minute), t0, 0, "fp1")
	s.Deadline = s.Now.Add(20 * time.Second)
	d := rotation.Decide(s, policy, rotation.Request{})
	var le *rotation.LeaseError
	if d.Action != rotation.Wait || !errors.As(d.Err, &le) || !le.Deadline {
		t.Fatalf("deadline: %+v", d)
	}
}

func TestDecideEventCountsOnlyWhenStoredOrLive(t *testing.T) {
	// Issue 19 item 1: an event id counts as acted on only when its token was stored or its claim
	// is still live; a retry after a failure asks again, spaced by the API client's backoff.
	base := snap(t0.Add(time.Minute), t0, 0, "fp1")
	first := rotation.Decide(base, policy, rotation.Request{Force: true, Event: "ev-1", Owner: "me"})
	if first.Action != rotation.Ask || first.Claim.Claim.Event != "ev-1" {
		t.Fatalf("first delivery: %+v", first)
	}
	for name, c := range map[string]struct {
		mod     func(s *rotation.Snapshot)
		now     time.Duration
		outcome rotation.Outcome
		ask     bool
	}{
		"claim live": {mod: func(s *rotation.Snapshot) { s.State = first.Claim }, now: 10 * time.Second, outcome: rotation.Duplicate},
		"claim complete": {mod: func(s *rotation.Snapshot) {
			s.State, s.CurrentID = first.Claim, "v-next"
		}, now: 24 * time.Hour, outcome: rotation.Duplicate},
		"claim abandoned": {mod: func(s *rotation.Snapshot) { s.State = first.Claim }, now: time.Hour, ask: true},
		"failed, within its backoff": {mod: func(s *rotation.Snapshot) {
			s.State = failed(first.Claim, "ev-1", t0.Add(time.Minute+20*time.Second))
		}, now: 10 * time.Second, outcome: rotation.Blocked},
		"failed, after its backoff": {mod: func(s *rotation.Snapshot) {
			s.State = failed(first.Claim, "ev-1", t0.Add(time.Minute+20*time.Second))
		}, now: 30 * time.Second, ask: true},
	} {
		t.Run(name, func(t *testing.T) {
			s := base
			c.mod(&s)
			s.Now = base.Now.Add(c.now)
			d := rotation.Decide(s, policy, rotation.Request{Force: true, Event: "ev-1"})
			if c.ask {
				if d.Action != rotation.Ask || d.Claim.Claim.Event != "ev-1" {
					t.Fatalf("want a new attempt: %+v", d)
				}
				return
			}
			if d.Action != rotation.Wait || d.Outcome != c.outcome {
				t.Fatalf("outcome %s (%v), want %s", d.Outcome, d.Err, c.outcome)
			}
		})
	}
	// A new event lifts the backoff that a retried one respects. (It ends before the token's last
	// chance, which would end it sooner: TestDecideABackoffNeverOutlastsTheTokensLastChance.)
	s := base
	s.State = failed(first.Claim, "ev-1", t0.Add(30*time.Minute))
	if d := rotation.Decide(s, policy, rotation.Request{Force: true, Event: "ev-2"}); d.Action != rotation.Ask {
		t.Fatalf("a new event within the backoff: %+v", d)
	}
	var bo *rotation.BackoffError
	if d := rotation.Decide(s, policy, rotation.Request{Force: true, Event: "ev-1"}); d.Action != rotation.Wait || !errors.As(d.Err, &bo) || !d.NextCheck.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("a retried event within the backoff: %+v", d)
	}
	// The completed claim's event is remembered in the state the next write carries.
	s = base
	s.State, s.CurrentID = first.Claim, "v-next"
	if d := rotation.Decide(s, policy, rotation.Request{}); len(d.Settled.Events) != 1 || d.Settled.Events[0] != "ev-1" {
		t.Fatalf("settled events %v", d.Settled.Events)
	}
}

// failed is the state after claim's attempt failed: the claim gone, the event recorded as failed,
// its API client backing off until retry.
func failed(claim document.State, event string, retry time.Time) document.State {
	st := claim
	fp := st.Claim.Secret
	st.Claim = nil
	st.Failed = document.Remember(st.Failed, event)
	a := st.APIClient(fp)
	a.Failures, a.RetryAt, a.LastError = 1, &retry, "500"
	return st.WithAPIClient(a, fp)
}

func TestDecideTransientFailureWaitsWhileTheTokenInUseHasTime(t *testing.T) {
	// Issue 19 item 10: with two API clients, a transient failure of the due API client is retried
	// after its backoff while the token in use has time; only then does the decision fall back to
	// the API client whose token is in use (revoking it).
	for name, c := range map[string]struct {
		retryAt time.Duration // after t0
		force   bool
		slot    int // 0: wait
		health  rotation.Health
	}{
		"backoff ends well before expiry":     {retryAt: 41*time.Minute + 30*time.Second, health: rotation.HealthBackingOff},
		"backoff ends too close to expiry":    {retryAt: 59 * time.Minute, slot: 1, health: rotation.HealthDegraded},
		"backoff ends after expiry":           {retryAt: 10 * time.Hour, slot: 1, health: rotation.HealthDegraded},
		"forced: lifts the due one's backoff": {retryAt: 41*time.Minute + 30*time.Second, force: true, slot: 2, health: rotation.HealthBackingOff},
	} {
		t.Run(name, func(t *testing.T) {
			s := snap(t0.Add(41*time.Minute), t0, 1, "fp1", "fp2")
			retry := t0.Add(c.retryAt)
			s.State = document.State{APIClients: []document.APIClient{{Secret: "fp2", Failures: 1, RetryAt: &retry, LastError: "500"}}}
			d := rotation.Decide(s, policy, rotation.Request{Force: c.force})
			if d.Health != c.health {
				t.Errorf("health %s, want %s", d.Health, c.health)
			}
			if c.slot == 0 {
				var bo *rotation.BackoffError
				if d.Action != rotation.Wait || !errors.As(d.Err, &bo) || bo.Slot != 2 || !d.NextCheck.Equal(retry) || d.Degraded {
					t.Fatalf("want a wait for API client 2's backoff: %+v", d)
				}
				return
			}
			if d.Action != rotation.Ask || d.Slot != c.slot || d.Degraded != (c.slot == 1) {
				t.Fatalf("want API client %d: %+v", c.slot, d)
			}
		})
	}
}

func TestDecideDoesNotAskAnAPIClientWhoseTokenConsumersMayHold(t *testing.T) {
	// Issue 19 item 9: API client 1's token was AWSCURRENT until t0, when API client 2's replaced
	// it. Consumers re-read every 20 minutes (the consumers' rule for an hour's token renewed with
	// a third left), so until t0+20m some may hold API client 1's token: asking API client 1 would
	// revoke it.
	retired := t0
	held := func(now time.Duration) rotation.Snapshot {
		s := snap(t0.Add(now), t0, 2, "fp1", "fp2")
		s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1", Retired: &retired}, {Secret: "fp2"}}}
		return s
	}
	var re *rotation.RereadError
	for name, c := range map[string]struct {
		snap  rotation.Snapshot
		req   rotation.Request
		slot  int // 0: wait
		until time.Time
	}{
		"a force minutes later":                  {snap: held(5 * time.Minute), req: rotation.Request{Force: true}, until: t0.Add(20 * time.Minute)},
		"a force after the re-read interval":     {snap: held(21 * time.Minute), req: rotation.Request{Force: true}, slot: 1},
		"an explicit API client (revoke)":        {snap: held(5 * time.Minute), req: rotation.Request{Force: true, Slot: 1}, slot: 1},
		"a forced native rotation minutes later": {snap: held(5 * time.Minute), req: rotation.Request{Force: true, Event: "rotation/x", TokenVersion: "x"}, until: t0.Add(20 * time.Minute)},
		// A gateway found the token in use revoked outside the rotator (someone asked Clear with
		// API client 2's secret): asking API client 2 again revokes nothing live, while the held
		// calls wait for a token.
		"the token in use was revoked outside": {snap: held(5 * time.Minute),
			req: rotation.Request{Force: true, Event: "gateway-revoked:v-current", Replaces: "v-current"}, slot: 2},
		"the token in use is lost": {snap: func() rotation.Snapshot {
			s := held(5 * time.Minute)
			s.State.Lost = &document.Lost{At: t0.Add(4 * time.Minute), Base: "v-current", Slot: 2, Secret: "fp2", Certain: true}
			return s
		}(), slot: 2},
	} {
		t.Run(name, func(t *testing.T) {
			d := rotation.Decide(c.snap, policy, c.req)
			if c.slot == 0 {
				if d.Action != rotation.Wait || !errors.As(d.Err, &re) || re.Slot != 1 || !re.Until.Equal(c.until) || !d.NextCheck.Equal(c.until) || d.Outcome != rotation.Blocked {
					t.Fatalf("want a refusal until %v: %+v", c.until, d)
				}
				return
			}
			if d.Action != rotation.Ask || d.Slot != c.slot {
				t.Fatalf("want API client %d: %+v", c.slot, d)
			}
		})
	}
	// The state learns when a token was retired from the claim that replaced it: the claim names
	// the API client whose token it replaces, and once it completes, that token's retirement is the
	// new token's issue time.
	s := snap(t0.Add(41*time.Minute), t0, 1, "fp1", "fp2")
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Slot != 2 || d.Claim.Claim.Replaces != "fp1" {
		t.Fatalf("claim %+v", d.Claim.Claim)
	}
	issued := t0.Add(41*time.Minute + time.Second)
	s.State, s.CurrentID, s.Token.IssuedAt, s.Token.APIClient = d.Claim, "v-next", issued, 2
	s.Now = issued.Add(time.Minute)
	d = rotation.Decide(s, policy, rotation.Request{Force: true})
	if got := d.Settled.APIClient("fp1").Retired; got == nil || !got.Equal(issued) {
		t.Fatalf("API client 1 retired at %v, want %v", got, issued)
	}
	if d.Action != rotation.Wait || !errors.As(d.Err, &re) {
		t.Fatalf("a force a minute after the rotation: %+v", d)
	}
}

func TestDecideAReplacementIsMootOnceAWSCURRENTMoved(t *testing.T) {
	// A gateway that saw the token in AWSCURRENT revoked outside asks for a forced rotation that
	// replaces that version. If another rotation stored a token between the gateway's judgement and
	// its request, forcing again would revoke a token that is fine: the request names the version it
	// replaces, and asks nothing once AWSCURRENT is another.
	s := snap(t0.Add(time.Minute), t0, 0, "fp1")
	req := rotation.Request{Force: true, Event: "gateway-revoked:" + s.CurrentID, Replaces: s.CurrentID}
	if d := rotation.Decide(s, policy, req); d.Action != rotation.Ask {
		t.Fatalf("the revoked version is still AWSCURRENT: %+v", d)
	}
	s.CurrentID = "v-stored-meanwhile"
	d := rotation.Decide(s, policy, req)
	var busy *rotation.BusyError
	if d.Action != rotation.Wait || d.Outcome != rotation.Busy || !errors.As(d.Err, &busy) {
		t.Fatalf("AWSCURRENT moved on: outcome %s (%v), want busy", d.Outcome, d.Err)
	}
}

func TestDecideALeaseNoRotatorCouldWriteEndsAtTheLongestLease(t *testing.T) {
	// A claim whose lease_until lies further from its start than any rotator's lease (a hand-edited
	// state, a damaged one) holds others off no longer than the longest lease a rotator writes:
	// timing.Lease of the largest CLEAR_TIMEOUT. Past that, it is a claim whose owner vanished.
	longest := timing.Lease(config.MaxClearTimeout)
	s := snap(t0.Add(45*time.Minute), t0, 0, "fp1")
	at := s.Now.Add(-longest)
	s.State = document.State{Claim: &document.Claim{Owner: "gone", At: at, LeaseUntil: at.AddDate(10, 0, 0), Base: "v-current", Slot: 1, Secret: "fp1"}}
	d := rotation.Decide(s, policy, rotation.Request{})
	if d.Action != rotation.Ask || d.Health != rotation.HealthTokenLost || d.Settled.Lost == nil || !d.Settled.Lost.At.Equal(s.Now) {
		t.Fatalf("a ten-year lease %s after its claim: %s (%v), health %s, lost %+v", longest, d.Outcome, d.Err, d.Health, d.Settled.Lost)
	}
	// Before then the claim is live, and the decision looks again when the capped lease ends.
	s.Now = at.Add(longest - time.Second)
	d = rotation.Decide(s, policy, rotation.Request{})
	if d.Outcome != rotation.Busy || !d.NextCheck.Equal(at.Add(longest)) {
		t.Fatalf("within the longest lease: %s, next check %v, want busy until %v", d.Outcome, d.NextCheck, at.Add(longest))
	}
}

func TestDecideABlockOrBackoffNoRotatorCouldWriteIsOver(t *testing.T) {
	// A 429's block ends within clear.MaxRetryAfter (or at the next midnight UTC) of Clear's
	// answer, and a backoff within the backoff's cap (an hour) of the failure. One that ends ten
	// years ahead (a hand-edited ROTATOR_STATE, or one written by a rotator whose
	// clock was years ahead) would hold a due rotation off, and for a 429 a force too, for ten
	// years: it is over. Clear's next 429, if it comes, records a block of its own.
	s := snap(t0.Add(45*time.Minute), t0, 0, "fp1")
	far := s.Now.AddDate(10, 0, 0)
	for name, a := range map[string]document.APIClient{
		"429":     {Secret: "fp1", Failures: 1, Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: &far}},
		"backoff": {Secret: "fp1", Failures: 3, RetryAt: &far, LastError: "500"},
	} {
		s.State = document.State{APIClients: []document.APIClient{a}}
		if d := rotation.Decide(s, policy, rotation.Request{}); d.Action != rotation.Ask {
			t.Errorf("%s until %v, token due: %s (%v), want ask", name, far, d.Outcome, d.Err)
		}
	}
	// Those within a day still hold.
	day := s.Now.Add(clear.MaxRetryAfter)
	for name, a := range map[string]document.APIClient{
		"429":     {Secret: "fp1", Failures: 1, Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: &day}},
		"backoff": {Secret: "fp1", Failures: 30, RetryAt: &day, LastError: "500"},
	} {
		s.State = document.State{APIClients: []document.APIClient{a}}
		if d := rotation.Decide(s, policy, rotation.Request{}); d.Action != rotation.Wait {
			t.Errorf("%s for as long as a rotator writes one: %s, want wait", name, d.Outcome)
		}
	}
}

// TestDecideTheHorizonOfAStoredBlockOrBackoff pins where "further ahead than any rotator writes"
// begins: a day (clear.MaxRetryAfter) and the longest lease (a 120 s Clear timeout and the 30 s
// write window) from now. A block or backoff ending there holds; one ending a second later is
// over, for a 429's block and for a backoff alike.
func TestDecideTheHorizonOfAStoredBlockOrBackoff(t *testing.T) {
	s := snap(t0.Add(45*time.Minute), t0, 0, "fp1") // due
	horizon := s.Now.Add(24*time.Hour + 150*time.Second)
	later := horizon.Add(time.Second)
	for name, tc := range map[string]struct {
		a    document.APIClient
		want rotation.Action
	}{
		"a 429 ending at the horizon holds": {
			document.APIClient{Secret: "fp1", Failures: 1, Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: &horizon}}, rotation.Wait},
		"a 429 ending a second past it is over": {
			document.APIClient{Secret: "fp1", Failures: 1, Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: &later}}, rotation.Ask},
		"a backoff ending at the horizon holds": {
			document.APIClient{Secret: "fp1", Failures: 30, RetryAt: &horizon, LastError: "500"}, rotation.Wait},
		"a backoff ending a second past it is over": {
			document.APIClient{Secret: "fp1", Failures: 30, RetryAt: &later, LastError: "500"}, rotation.Ask},
	} {
		s.State = document.State{APIClients: []document.APIClient{tc.a}}
		if d := rotation.Decide(s, policy, rotation.Request{}); d.Action != tc.want {
			t.Errorf("%s: action %d, %s (%v); want action %d (0 wait, 1 ask)", name, d.Action, d.Outcome, d.Err, tc.want)
		}
	}
}

// TestDecideAbandonedClaimsNeverHoldOffATokenAboutToDie is the safe side of the crash loop's rule,
// which any backoff after abandoned claims must keep: a claim abandoned while an earlier loss of
// the same token is unrecovered (a rotator that dies at the same step every time) is retried at
// once, with the API client that lost it, whenever the token in use (AWSCURRENT) would not
// outlive a wait, a rotation after it (the lease) and a scheduled rotator's next look (five
// minutes), or is known dead (absent, expired, of unknown expiry, revoked by a refused write).
// The first backoff of this kind (780fd88, reverted) backed off in every row but the first loss
// and the other token's, and make soak left a two-API-client token expired for five minutes
// (TestSoakMonth/engine-loop/1h-two-api-clients, seed 104). The token lives an hour from t0.
func TestDecideAbandonedClaimsNeverHoldOffATokenAboutToDie(t *testing.T) {
	lease := timing.Lease(policy.ClearTimeout)
	for name, c := range map[string]struct {
		slots    int           // API clients configured
		leaseEnd time.Duration // the abandoned claim's lease end, after t0
		failures int           // the lost API client's failures before this loss
		mod      func(s *rotation.Snapshot)
	}{
		"one API client, the token in use dies during the shortest wait of the 7th step": {slots: 1, leaseEnd: 41 * time.Minute, failures: 7},
		"one API client, the token in use dies before a look after the wait":             {slots: 1, leaseEnd: 60*time.Minute - 15*time.Second - lease - 5*time.Minute, failures: 1},
		"one API client, the token in use has expired":                                   {slots: 1, leaseEnd: 61 * time.Minute, failures: 1},
		"one API client, the earlier loss was certain (a refused token write)": {slots: 1, leaseEnd: 41 * time.Minute, failures: 1,
			mod: func(s *rotation.Snapshot) { s.State.Lost.Certain = true }},
		"one API client, no token in AWSCURRENT": {slots: 1, leaseEnd: 41 * time.Minute, failures: 1,
			mod: func(s *rotation.Snapshot) { s.HasToken, s.Token = false, document.Token{} }},
		"one API client, the token in use's expiry is unknown": {slots: 1, leaseEnd: 41 * time.Minute, failures: 1,
			mod: func(s *rotation.Snapshot) { s.Token.ValidTill, s.Token.ValidTillUnknown = nil, true }},
		"the first loss": {slots: 1, leaseEnd: 41 * time.Minute, failures: 1,
			mod: func(s *rotation.Snapshot) { s.State.Lost = nil }},
		"an earlier loss of another token": {slots: 1, leaseEnd: 41 * time.Minute, failures: 1,
			mod: func(s *rotation.Snapshot) { s.State.Lost.Base = "v-before" }},
		"two API clients, the token in use dies before a look after the wait": {slots: 2, leaseEnd: 55 * time.Minute, failures: 1},
		"two API clients, the token in use dies during the wait":              {slots: 2, leaseEnd: 50 * time.Minute, failures: 6},
	} {
		t.Run(name, func(t *testing.T) {
			secrets := []string{"fp1", "fp2"}[:c.slots]
			// With two API clients, API client 1 issued the token in use and API client 2 (the due
			// one) keeps losing its claims; with one, the lost claims are API client 1's own.
			lostSlot := c.slots
			s := snap(t0.Add(c.leaseEnd+time.Second), t0, c.slots-1, secrets...)
			fp := secrets[lostSlot-1]
			end := t0.Add(c.leaseEnd)
			s.State = document.State{
				APIClients: []document.APIClient{{Secret: fp, Day: "2026-11-21", Requests: 3, Failures: c.failures, LastError: "an earlier loss"}},
				Lost:       &document.Lost{At: end.Add(-time.Minute), Reason: "an earlier abandoned claim", Base: "v-current", Slot: lostSlot, Secret: fp},
				Claim:      &document.Claim{Owner: "gone", At: end.Add(-lease), LeaseUntil: end, Base: "v-current", Slot: lostSlot, Secret: fp},
			}
			if c.mod != nil {
				c.mod(&s)
			}
			d := rotation.Decide(s, policy, rotation.Request{Owner: "me"})
			a := d.Settled.APIClient(fp)
			if a.Failures != c.failures+1 || d.Settled.Lost == nil || d.Settled.Lost.Certain {
				t.Fatalf("the abandoned claim is not recorded as an uncertain loss: %+v, lost %+v", a, d.Settled.Lost)
			}
			if a.RetryAt != nil || d.Action != rotation.Ask || d.Slot != lostSlot {
				t.Fatalf("want API client %d asked at once, no backoff: retry at %v, %+v", lostSlot, a.RetryAt, d)
			}
		})
	}
}

// TestDecideABackoffNeverOutlastsTheTokensLastChance: a backoff after failures of the due rotation
// ends no later than the token's last chance (its expiry less a rotation's lease), so that a look
// still renews it while it lives; the token the ERP holds is worth one more request. Once a request
// was made at or after the last chance, the backoff holds again, so that a Clear that keeps failing
// cannot spend the day's budget in the token's last minute. A dead token (expired, lost) is looked
// at timing.DeadRetry after the last request while the day's budget keeps what the rest of the
// day's renewals need (make soak: a token dead after five Clear faults in a row, its backoff
// skipping the next five-minute tick). The token lives an hour from t0; its last chance is at 59
// minutes (the lease is a minute).
func TestDecideABackoffNeverOutlastsTheTokensLastChance(t *testing.T) {
	last := t0.Add(time.Hour - timing.Lease(policy.ClearTimeout))
	for name, c := range map[string]struct {
		now, retryAt time.Duration // after t0
		lastRequest  time.Duration // after t0; zero: none recorded
		mod          func(s *rotation.Snapshot, p *rotation.Policy)
		ask          bool
		next         time.Time // the wait's NextCheck, when not asked
	}{
		"the backoff ends after the expiry: it ends at the last chance": {now: 50 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, next: last},
		"at the last chance, the due token is renewed":                  {now: 59 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, ask: true},
		"a backoff that ends before the last chance holds":              {now: 50 * time.Minute, retryAt: 55 * time.Minute, lastRequest: 49 * time.Minute, next: t0.Add(55 * time.Minute)},
		"the last chance was taken: the backoff holds":                  {now: 59*time.Minute + 30*time.Second, retryAt: 80 * time.Minute, lastRequest: 59 * time.Minute, next: t0.Add(80 * time.Minute)},
		// A dead token (expired, or lost) has no last chance, but the ERPs are failing already: a
		// look every timing.DeadRetry is worth its request while the day keeps what the rest of its
		// renewals need (here 20 of 48: 36 a day, 13 hours left).
		"the token has expired: the backoff ends DeadRetry after the last request": {now: 61 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 60 * time.Minute, next: t0.Add(60*time.Minute + timing.DeadRetry)},
		"the token has expired: asked DeadRetry after the last request":            {now: 61 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, ask: true},
		"the token has expired: a backoff that ends sooner holds":                  {now: 61 * time.Minute, retryAt: 62 * time.Minute, lastRequest: 60 * time.Minute, next: t0.Add(62 * time.Minute)},
		"the token was lost: the backoff ends DeadRetry after the last request": {now: 50 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, next: t0.Add(49*time.Minute + timing.DeadRetry),
			mod: func(s *rotation.Snapshot, p *rotation.Policy) {
				s.State.Lost = &document.Lost{At: t0.Add(49 * time.Minute), Base: "v-current", Slot: 1, Secret: "fp1"}
			}},
		"the token has expired and the day keeps only its renewals: the backoff holds": {now: 61 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, next: t0.Add(80 * time.Minute),
			mod: func(s *rotation.Snapshot, p *rotation.Policy) { s.State.APIClients[0].Requests = 28 }},
		"the token has expired, no request on record: the backoff holds": {now: 61 * time.Minute, retryAt: 80 * time.Minute, next: t0.Add(80 * time.Minute)},
		"a token that never expires has no last chance": {now: 50 * time.Minute, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, next: t0.Add(80 * time.Minute),
			mod: func(s *rotation.Snapshot, p *rotation.Policy) { s.Token.ValidTill, p.MaxAge = nil, 40*time.Minute }},
		// A token too short-lived to be due before its last chance (a Clear or clock problem, which
		// the backoff after a suspicious answer spaces) gets none: every look would ask. This one
		// lives 150 s, is due at 60:10 and would have its last chance at 60:00.
		"a token due only after its last chance has none": {now: 60*time.Minute + 15*time.Second, retryAt: 80 * time.Minute, lastRequest: 49 * time.Minute, next: t0.Add(80 * time.Minute),
			mod: func(s *rotation.Snapshot, p *rotation.Policy) {
				vt := t0.Add(61 * time.Minute)
				s.Token.IssuedAt, s.Token.ValidTill = t0.Add(58*time.Minute+30*time.Second), &vt
			}},
	} {
		t.Run(name, func(t *testing.T) {
			s := snap(t0.Add(c.now), t0, 0, "fp1")
			retry := t0.Add(c.retryAt)
			s.State = document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 6, Failures: 6, RetryAt: &retry, LastError: "500"}}}
			if c.lastRequest > 0 {
				lr := t0.Add(c.lastRequest)
				s.State.LastRequest = &lr
			}
			pol := policy
			if c.mod != nil {
				c.mod(&s, &pol)
			}
			d := rotation.Decide(s, pol, rotation.Request{Owner: "me"})
			if c.ask {
				if d.Action != rotation.Ask {
					t.Fatalf("want ask: %s (%v), next %v", d.Outcome, d.Err, d.NextCheck)
				}
				return
			}
			var bo *rotation.BackoffError
			if d.Action != rotation.Wait || !errors.As(d.Err, &bo) || !d.NextCheck.Equal(c.next) || !bo.Until.Equal(c.next) {
				t.Fatalf("want a backoff until %v: %s (%v), next %v", c.next, d.Outcome, d.Err, d.NextCheck)
			}
			if v := d.Slots[0]; v.BlockedUntil == nil || !v.BlockedUntil.Equal(c.next) {
				t.Fatalf("status shows the backoff until %v, want %v", v.BlockedUntil, c.next)
			}
		})
	}
}

// A force held back for the consumers names first the way to replace the token in AWSCURRENT (ask
// the API client that issued it), which is what the incident it happens in needs, and revoke only
// after it: revoke would revoke the other API client's live token too (an audit's walk-through).
func TestAHeldForceNamesTheAPIClientToAsk(t *testing.T) {
	msg := (&rotation.RereadError{Slot: 1, Interval: time.Minute}).Error()
	if i, j := strings.Index(msg, "--api-client 2"), strings.Index(msg, "revoke every"); i < 0 || j < i {
		t.Errorf("the message: %s", msg)
	}
}

// A token a failed request may have revoked (State.Suspect) is due, not at its renewal: once the
// backoff allows, as soon as it is read; the backoff still spaces the request. A suspect version
// that is no longer AWSCURRENT says nothing.
func TestDecideASuspectTokenIsDue(t *testing.T) {
	s := snap(t0.Add(5*time.Minute), t0, 0, "fp1")
	retry := t0.Add(5*time.Minute + 20*time.Second)
	s.State = document.State{Suspect: "v-current", APIClients: []document.APIClient{{Secret: "fp1", Failures: 1, RetryAt: &retry}}}
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Action == rotation.Ask || !d.NextCheck.Equal(retry) {
		t.Fatalf("within the backoff: %+v", d)
	}
	s.Now = retry
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Action != rotation.Ask {
		t.Fatalf("the backoff over: %+v", d)
	}
	s.State.Suspect = "v-older"
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Action == rotation.Ask || d.Settled.Suspect != "" {
		t.Fatalf("a suspect version no longer AWSCURRENT: %+v", d)
	}
}

// One rule for the API client of a token without api_client (issuer): when a second API client was
// added, the token in AWSCURRENT is the first's, so a loss of the second's token (its write failed)
// does not make the token ERPs hold dead (a review: lostCurrent counted any loss against it).
func TestALossOfTheSecondAPIClientSparesTheFirstsToken(t *testing.T) {
	s := snap(t0.Add(41*time.Minute), t0, 0, "fp1", "fp2")
	d := rotation.Decide(s, policy, rotation.Request{}) // asks API client 2
	sp := rotation.Spacing{Backoff: timing.Backoff{Base: 30 * time.Second, Cap: time.Hour}, Jitter: 0.5}
	s.State = rotation.Transition(d.Claim, rotation.Attempt{Kind: rotation.AttemptLost, At: s.Now, Reason: "write failed"}, sp)
	s.Now = s.Now.Add(time.Second)
	if d := rotation.Decide(s, policy, rotation.Request{}); d.Health == rotation.HealthTokenLost {
		t.Errorf("API client 2's token lost, and API client 1's, in AWSCURRENT, is taken for dead: %+v", d)
	}
}
