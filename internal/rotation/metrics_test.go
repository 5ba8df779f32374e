package rotation_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// show renders m in one line, "-" for a value that is not known, so that a scenario reads as what
// the metrics show.
func show(m rotation.Metrics) string {
	var b strings.Builder
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	flag := func(v *bool) string {
		switch {
		case v == nil:
			return "-"
		case *v:
			return "1"
		}
		return "0"
	}
	left, requests := "-", "-"
	if m.SecondsLeft != nil {
		left = fmt.Sprint(*m.SecondsLeft)
	}
	if m.RequestsToday != nil {
		requests = fmt.Sprint(*m.RequestsToday)
	}
	fmt.Fprintf(&b, "outcome=%s expires=%s left=%s issued=%s requests=%s per=%v limit=%d blocked=%s degraded=%s lost=%s",
		m.Outcome, at(m.ExpiresAt), left, at(m.IssuedAt), requests, m.PerAPIClient, m.DailyLimit,
		flag(m.Blocked), flag(m.Degraded), flag(m.TokenLost))
	return b.String()
}

func TestMetrics(t *testing.T) {
	now := t0
	ptr := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	n := func(v int) *int { return &v }
	s := func(v string) *string { return &v }
	healthy := func() rotation.Status {
		return rotation.Status{Name: "erp", State: rotation.HealthOK, ValidTill: ptr(time.Hour - 300*time.Millisecond),
			IssuedAt: ptr(-10 * time.Minute), RequestsToday: n(3), DailyLimit: 48,
			APIClients: []rotation.SlotView{{Slot: 1, RequestsToday: n(2)}, {Slot: 2, RequestsToday: n(1)}}}
	}
	with := func(f func(*rotation.Status)) rotation.Status { st := healthy(); f(&st); return st }
	statuses := map[string]struct {
		st     rotation.Status
		readAt time.Time
		want   string
	}{
		"healthy, read now: whole seconds left, rounded down": {healthy(), now,
			"outcome= expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=0"},
		"read earlier the same UTC day: the count still holds": {healthy(), now.Add(-9 * time.Hour),
			"outcome= expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=0"},
		"read on another UTC day: its count says nothing of today's": {healthy(), now.Add(-11 * time.Hour),
			"outcome= expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=- per=[] limit=48 blocked=0 degraded=0 lost=0"},
		"expired: nothing left, never a negative gauge": {with(func(st *rotation.Status) { st.ValidTill = ptr(-time.Minute) }), now,
			"outcome= expires=2026-11-21T09:59:00Z left=0 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=0"},
		"never expires: no expiry, not one about to expire": {with(func(st *rotation.Status) { st.ValidTill = nil }), now,
			"outcome= expires=- left=- issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=0"},
		"no token, state unread for one API client": {rotation.Status{Name: "erp", State: rotation.HealthNoToken, DailyLimit: 48,
			APIClients: []rotation.SlotView{{Slot: 1}}}, now,
			"outcome= expires=- left=- issued=- requests=- per=[] limit=48 blocked=0 degraded=0 lost=0"},
		"blocked and degraded": {with(func(st *rotation.Status) { yes := true; st.BlockedReason, st.Degraded = s("401"), &yes }), now,
			"outcome= expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=1 degraded=1 lost=0"},
		"lost by its state": {with(func(st *rotation.Status) { st.State = rotation.HealthTokenLost }), now,
			"outcome= expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=1"},
		"lost by a recorded loss": {with(func(st *rotation.Status) { st.TokenLost = &rotation.LostView{At: now} }), now,
			"outcome= expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=1"},
	}
	for name, tc := range statuses {
		t.Run(name, func(t *testing.T) {
			if got := show(tc.st.Metrics(tc.readAt, now)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}

	results := map[string]struct {
		r    rotation.Result
		want string
	}{
		"rotated: the status after it, its request counted": {rotation.Result{Outcome: rotation.Rotated, Requested: true, Status: healthy()},
			"outcome=rotated expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=0"},
		"unreadable: flags unknown, not a false zero": {rotation.Result{Outcome: rotation.Failed, ReadErr: errors.New("throttled"),
			Status: rotation.Status{Name: "erp", State: rotation.HealthUnknown, DailyLimit: 48}},
			"outcome=failed expires=- left=- issued=- requests=- per=[] limit=48 blocked=- degraded=- lost=-"},
		"refused, lost": {rotation.Result{Outcome: rotation.Failed, Err: errors.New("lost"), Status: with(func(st *rotation.Status) { st.State = rotation.HealthTokenLost })},
			"outcome=failed expires=2026-11-21T10:59:59Z left=3599 issued=2026-11-21T09:50:00Z requests=3 per=[{1 2} {2 1}] limit=48 blocked=0 degraded=0 lost=1"},
	}
	for name, tc := range results {
		t.Run(name, func(t *testing.T) {
			if got := show(tc.r.Metrics(now)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
