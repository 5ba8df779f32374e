package daemon

import (
	"slices"
	"testing"
	"time"
)

// When the daemon looks at whom: a table of named scenarios, with the times as input.
func TestSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tick := at(5 * time.Minute)
	for name, tc := range map[string]struct {
		now     time.Time
		clients []look
		want    plan
	}{
		"nothing checked yet: the tick": {
			now: at(time.Minute), clients: []look{{name: "a"}}, want: plan{wake: tick}},
		"the tick has come": {
			now: tick, clients: []look{{name: "a", checked: t0, next: at(time.Minute)}}, want: plan{tick: true}},
		"the tick has come, and a client too: the tick covers it": {
			now: at(6 * time.Minute), clients: []look{{name: "a", checked: t0, next: at(2 * time.Minute)}}, want: plan{tick: true}},
		"a renewal point before the tick": {
			now: at(time.Minute), clients: []look{{name: "a", checked: t0, next: at(2 * time.Minute)}}, want: plan{wake: at(2 * time.Minute)}},
		"a renewal point after the tick: the tick": {
			now: at(time.Minute), clients: []look{{name: "a", checked: t0, next: at(time.Hour)}}, want: plan{wake: tick}},
		"the expiry of the token seen comes first": {
			now: at(time.Minute), clients: []look{{name: "a", checked: t0, next: at(time.Hour), expires: at(3 * time.Minute)}},
			want: plan{wake: at(3 * time.Minute)}},
		"an expiry already past when checked is no reason to wake": {
			now: at(time.Minute), clients: []look{{name: "a", checked: t0, expires: t0.Add(-time.Hour)}}, want: plan{wake: tick}},
		"a failed read is retried after the backoff": {
			now: at(time.Second), clients: []look{{name: "a", checked: t0, readFails: 1}}, want: plan{wake: t0.Add(readRetry.Ceiling(1))}},
		"never sooner than minGap after a check": {
			now: t0, clients: []look{{name: "a", checked: t0, next: t0.Add(-time.Hour)}}, want: plan{wake: t0.Add(minGap)}},
		// After a lost token the engine names the check's own time (release); the retry comes one
		// second later, not at once (a timer that spins) nor later (the ERP holds a dead token).
		"a lost token is looked at again one second after the check that lost it": {
			now: t0, clients: []look{{name: "a", checked: t0, next: t0}}, want: plan{wake: at(time.Second)}},
		"and is due then": {
			now: at(time.Second), clients: []look{{name: "a", checked: t0, next: t0}}, want: plan{due: []string{"a"}}},
		"due clients in the order given, the others not": {
			now: at(2 * time.Minute),
			clients: []look{
				{name: "c", checked: t0, next: at(time.Minute)},
				{name: "b", checked: t0, next: at(3 * time.Minute)},
				{name: "a", checked: t0, next: at(2 * time.Minute)},
			},
			want: plan{due: []string{"c", "a"}}},
		"no clients: the tick": {now: t0, want: plan{wake: tick}},
	} {
		got := schedule(tc.now, tick, tc.clients)
		if got.tick != tc.want.tick || !slices.Equal(got.due, tc.want.due) || !got.wake.Equal(tc.want.wake) {
			t.Errorf("%s: schedule = %+v, want %+v", name, got, tc.want)
		}
	}
}

// The next look the metrics report is the earlier of the client's wake and the next tick.
func TestNextLook(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tick := t0.Add(5 * time.Minute)
	if got := (look{checked: t0, next: t0.Add(time.Minute)}).nextLook(tick); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("nextLook = %s, want the wake", got)
	}
	if got := (look{checked: t0, next: t0.Add(time.Hour)}).nextLook(tick); !got.Equal(tick) {
		t.Errorf("nextLook = %s, want the tick", got)
	}
}
