package rotation_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// TestTransition is the table of what each answer does to the state, in the manner of
// cert-manager's RenewalTime tests: a claimed state, an attempt, and the whole next state.
func TestTransition(t *testing.T) {
	at := t0.Add(10 * time.Second)
	sp := rotation.Spacing{Backoff: timing.Backoff{Base: 30 * time.Second, Cap: time.Hour}, Jitter: 0.5}
	ptr := func(t time.Time) *time.Time { return &t }
	midnight := timing.NextMidnightUTC(at)
	claim := &document.Claim{Owner: "me", At: t0, LeaseUntil: t0.Add(time.Minute), Base: "v1", Slot: 2, Secret: "fp2", Event: "ev", Replaces: "fp1"}
	claimed := func(mod func(*document.State)) document.State {
		st := document.State{
			APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4}, {Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 1, LastError: "earlier"}},
			Claim:      claim, LastRequest: ptr(t0), Events: []string{"old"},
		}
		if mod != nil {
			mod(&st)
		}
		return st
	}
	for name, c := range map[string]struct {
		from    document.State
		attempt rotation.Attempt
		want    document.State
	}{
		"stored: healthy again, event acted on, the replaced token retired": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptStored, At: at, Token: document.Token{IssuedAt: at}},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4, Retired: ptr(at)}, {Secret: "fp2", Day: "2026-11-21", Requests: 3}},
				LastRequest: ptr(t0), Events: []string{"old", "ev"}},
		},
		"stored: a retried event leaves the failed list": {
			from:    claimed(func(st *document.State) { st.Failed = []string{"ev"} }),
			attempt: rotation.Attempt{Kind: rotation.AttemptStored, At: at, Token: document.Token{IssuedAt: at}},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4, Retired: ptr(at)}, {Secret: "fp2", Day: "2026-11-21", Requests: 3}},
				LastRequest: ptr(t0), Events: []string{"old", "ev"}},
		},
		"suspicious: stored, and the backoff grows from the failures before": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptSuspicious, At: at, Token: document.Token{IssuedAt: at}, Reason: "expires at once"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4, Retired: ptr(at)},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "expires at once", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old", "ev"}},
		},
		"5xx: backs off, the event failed": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindTransient, Status: 500}, Reason: "500"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "500", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"5xx after the request left, with one API client: the token in use is suspect": {
			from:    claimed(func(st *document.State) { cl := *claim; cl.Replaces = ""; st.Claim = &cl }),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindTransient, Status: 500}, Reason: "500"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "500", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}, Suspect: "v1"},
		},
		"a timeout of the API client that issued the token in use: suspect": {
			from:    claimed(func(st *document.State) { cl := *claim; cl.Replaces = "fp2"; st.Claim = &cl }),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindTransient}, Reason: "timeout"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "timeout", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}, Suspect: "v1"},
		},
		"a 5xx with no token yet: nothing suspect": {
			from:    claimed(func(st *document.State) { cl := *claim; cl.Replaces, cl.Base = "", ""; st.Claim = &cl }),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindTransient, Status: 500}, Reason: "500"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "500", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"a failure before the request left: nothing suspect": {
			from:    claimed(func(st *document.State) { cl := *claim; cl.Replaces = ""; st.Claim = &cl }),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindTransient, Unsent: true}, Reason: "refused"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "refused", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"a failure that is not Clear's error counts as transient": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Reason: "network"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "network", RetryAt: ptr(at.Add(45 * time.Second))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"401: blocked until the client secret changes": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindAuth, Status: 401}, Reason: "CLI-SEC-002"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "CLI-SEC-002", Blocked: &document.Block{Kind: "unauthorized", Reason: "CLI-SEC-002"}}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"429 with Retry-After: blocked that long": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindRateLimited, Status: 429, RetryAfter: time.Hour}, Reason: "429"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "429", Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: ptr(at.Add(time.Hour))}}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"429 with a Retry-After shorter than the backoff: blocked for the backoff": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindRateLimited, Status: 429, RetryAfter: time.Second}, Reason: "429"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "429", Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: ptr(at.Add(sp.Backoff.Delay(2, sp.Jitter)))}}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"429 without Retry-After, or beyond midnight: blocked until midnight UTC": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptRefused, At: at, Clear: &clear.Error{Kind: clear.KindRateLimited, Status: 429, RetryAfter: 48 * time.Hour}, Reason: "429"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "429", Blocked: &document.Block{Kind: "rate-limited", Reason: "429", Until: ptr(midnight)}}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"}},
		},
		"lost: recorded, and the first retry is immediate": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptLost, At: at, Reason: "denied"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "denied"}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"},
				Lost: &document.Lost{At: at, Reason: "denied", Base: "v1", Slot: 2, Secret: "fp2", Certain: true}},
		},
		"lost again, the same AWSCURRENT: backs off from the first step": {
			from: claimed(func(st *document.State) {
				st.Lost = &document.Lost{At: t0, Reason: "denied", Base: "v1", Slot: 2, Secret: "fp2", Certain: true}
			}),
			attempt: rotation.Attempt{Kind: rotation.AttemptLost, At: at, Reason: "denied"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 3, Failures: 2, LastError: "denied", RetryAt: ptr(at.Add(22500 * time.Millisecond))}},
				LastRequest: ptr(t0), Events: []string{"old"}, Failed: []string{"ev"},
				Lost: &document.Lost{At: at, Reason: "denied", Base: "v1", Slot: 2, Secret: "fp2", Certain: true}},
		},
		"released after a failure: the request was never sent, and the next one backs off": {
			from:    claimed(nil),
			attempt: rotation.Attempt{Kind: rotation.AttemptReleased, At: at, Reason: "re-read failed"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 2, Failures: 2, LastError: "re-read failed", RetryAt: ptr(at.Add(22500 * time.Millisecond))}},
				LastRequest: ptr(t0), Events: []string{"old"}},
		},
		// The request the claim counted was never sent, as a release's; the token it set out to
		// replace was replaced by the time of the re-read, which is when consumers may first have
		// seen the other writer's, so its retirement dates from then (the later bound).
		"overtaken: another writer replaced AWSCURRENT, so nothing was asked; the API client's block stands, the event was not acted on": {
			from: claimed(func(st *document.State) {
				st.APIClients[1].Blocked = &document.Block{Kind: "unauthorized", Reason: "CLI-SEC-002"}
			}),
			attempt: rotation.Attempt{Kind: rotation.AttemptOvertaken, At: at},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4, Retired: ptr(at)},
				{Secret: "fp2", Day: "2026-11-21", Requests: 2, Failures: 1, LastError: "earlier", Blocked: &document.Block{Kind: "unauthorized", Reason: "CLI-SEC-002"}}},
				LastRequest: ptr(t0), Events: []string{"old"}},
		},
		"released first: the request was never sent, and the next may come at once": {
			from: claimed(func(st *document.State) {
				st.APIClients[1].Failures, st.APIClients[1].LastError = 0, ""
			}),
			attempt: rotation.Attempt{Kind: rotation.AttemptReleased, At: at, Reason: "re-read failed"},
			want: document.State{APIClients: []document.APIClient{{Secret: "fp1", Day: "2026-11-21", Requests: 4},
				{Secret: "fp2", Day: "2026-11-21", Requests: 2, Failures: 1, LastError: "re-read failed"}},
				LastRequest: ptr(t0), Events: []string{"old"}},
		},
		"no claim: nothing to apply": {
			from:    document.State{Events: []string{"old"}},
			attempt: rotation.Attempt{Kind: rotation.AttemptLost, At: at},
			want:    document.State{Events: []string{"old"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			before := render(c.from)
			got := rotation.Transition(c.from, c.attempt, sp)
			if !reflect.DeepEqual(normal(c.want), normal(got)) {
				t.Errorf("next state\n got %s\nwant %s", render(got), render(c.want))
			}
			if after := render(c.from); after != before {
				t.Errorf("the claimed state was changed:\n%s\nwas %s", after, before)
			}
		})
	}
}

// render is a state as its document, for messages and comparisons that ignore a time's location.
func render(st document.State) string {
	b, _ := json.Marshal(st)
	return string(b)
}

// normal is st as its document reads back: equal states compare equal however their slices and
// times were built.
func normal(st document.State) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(render(st)), &m)
	return m
}
