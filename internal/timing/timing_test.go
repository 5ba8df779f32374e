package timing_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/timing"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ptr(t time.Time) *time.Time { return &t }

func TestRenewAt(t *testing.T) {
	issued := at("2026-11-21T10:00:00Z")
	tests := []struct {
		name                string
		validTill           *time.Time
		renewBefore, maxAge time.Duration
		want                string
		never               bool
	}{
		{name: "third of lifetime left", validTill: ptr(issued.Add(24 * time.Hour)), want: "2026-11-22T02:00:00Z"},
		{name: "renew before", validTill: ptr(issued.Add(24 * time.Hour)), renewBefore: 2 * time.Hour, want: "2026-11-22T08:00:00Z"},
		{name: "renew before longer than lifetime is floored at half", validTill: ptr(issued.Add(time.Hour)), renewBefore: 2 * time.Hour, want: "2026-11-21T10:30:00Z"},
		{name: "20s token", validTill: ptr(issued.Add(21 * time.Second)), want: "2026-11-21T10:00:14Z"},
		{name: "expired at issue", validTill: ptr(issued.Add(-time.Minute)), want: "2026-11-21T09:59:00Z"},
		{name: "never expires, no max age", never: true},
		{name: "never expires, max age", maxAge: 30 * 24 * time.Hour, want: "2026-12-21T10:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := timing.RenewAt(issued, tt.validTill, tt.renewBefore, tt.maxAge)
			if ok == tt.never {
				t.Fatalf("ok = %v", ok)
			}
			if !tt.never && !got.Equal(at(tt.want)) {
				t.Fatalf("RenewAt = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestRenewalsPerDay(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	in := func(d time.Duration) *time.Time { v := at.Add(d); return &v }
	for _, tc := range []struct {
		name                string
		validTill           *time.Time
		renewBefore, maxAge time.Duration
		want                int
	}{
		{"12m tokens, renewed at a third: every 8m", in(12 * time.Minute), 0, 0, 180},
		{"24h tokens: every 16h, up to two in a UTC day", in(24 * time.Hour), 0, 0, 2},
		{"an hour's, renewed 2h before: at half their life", in(time.Hour), 2 * time.Hour, 0, 48},
		{"7m tokens: every 280s, rounded up", in(7 * time.Minute), 0, 0, 309},
		{"never expiring, no max age: never", nil, 0, 0, 0},
		{"never expiring, max age 7d", nil, 0, 7 * 24 * time.Hour, 1},
		{"expired when stored: unknown", in(-time.Minute), 0, 0, 0},
	} {
		if got := timing.RenewalsPerDay(at, tc.validTill, tc.renewBefore, tc.maxAge); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// RenewalsLeft is the part of a day's renewals still to come before midnight UTC, rounded up, and
// stays bounded for absurd counts.
func TestRenewalsLeft(t *testing.T) {
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		now    time.Time
		perDay int
		want   int
	}{
		{"at midnight: the whole day", day, 36, 36},
		{"at noon: half", day.Add(12 * time.Hour), 36, 18},
		{"at 19:50: 4h10m of 24h, rounded up", day.Add(19*time.Hour + 50*time.Minute), 36, 7},
		{"a nanosecond before midnight: one", day.Add(24*time.Hour - 1), 36, 1},
		{"not renewed: none", day, 0, 0},
		{"negative: none", day, -5, 0},
		{"absurd: bounded", day, math.MaxInt, math.MaxInt32},
	} {
		if got := timing.RenewalsLeft(tc.now, tc.perDay); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestDayAndMidnight(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	// 04:00 IST on the 22nd is still the 21st in UTC.
	local := time.Date(2026, 11, 22, 4, 0, 0, 0, ist)
	if got := timing.Day(local); got != "2026-11-21" {
		t.Fatalf("Day = %s", got)
	}
	for in, want := range map[string]string{
		"2026-11-21T23:59:59Z": "2026-11-22T00:00:00Z",
		"2026-11-22T00:00:00Z": "2026-11-23T00:00:00Z",
		"2026-12-31T12:00:00Z": "2027-01-01T00:00:00Z",
		"2028-02-28T01:00:00Z": "2028-02-29T00:00:00Z",
	} {
		if got := timing.NextMidnightUTC(at(in)); !got.Equal(at(want)) {
			t.Errorf("NextMidnightUTC(%s) = %v, want %s", in, got, want)
		}
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := timing.Backoff{Base: 30 * time.Second, Cap: time.Hour}
	if b.Delay(0, 0.5) != 0 {
		t.Fatal("no failures, no wait")
	}
	prevMax := time.Duration(0)
	for n := 1; n <= 40; n++ {
		lo, hi := b.Delay(n, 0), b.Delay(n, 0.999999)
		if lo > hi || hi > time.Hour || lo < prevMax/2-time.Second {
			t.Fatalf("failures %d: [%v, %v]", n, lo, hi)
		}
		prevMax = hi
	}
	if got := b.Delay(1, 0); got != 15*time.Second {
		t.Fatalf("first delay floor %v", got)
	}
	if got := b.Delay(3, 1.5); got > 2*time.Minute || got < time.Minute {
		t.Fatalf("third delay with out-of-range jitter %v", got)
	}
	if got := b.Delay(1000, 0.5); got != 45*time.Minute {
		t.Fatalf("capped delay %v", got)
	}
}

func TestBackoffCeilingBoundsDelay(t *testing.T) {
	b := timing.Backoff{Base: 30 * time.Second, Cap: 5 * time.Minute}
	for n, want := range map[int]time.Duration{0: 0, 1: 30 * time.Second, 2: time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 1 << 30: 5 * time.Minute} {
		if got := b.Ceiling(n); got != want {
			t.Errorf("Ceiling(%d) = %s, want %s", n, got, want)
		}
		for _, r := range []float64{0, 0.5, 0.999999} {
			if d := b.Delay(n, r); d > b.Ceiling(n) || d < b.Ceiling(n)/2 {
				t.Errorf("Delay(%d, %v) = %s outside [%s, %s]", n, r, d, b.Ceiling(n)/2, b.Ceiling(n))
			}
		}
	}
}

// TestDefaultBackoffIsTheReleaseOne: a build without timing.TestBackoffFlag (every release build,
// and this test) backs off 15-30 s after a first failure, up to an hour.
func TestDefaultBackoffIsTheReleaseOne(t *testing.T) {
	b := timing.DefaultBackoff
	if b.Base != 30*time.Second || b.Cap != time.Hour {
		t.Fatalf("DefaultBackoff = %+v, want a 30 s base and a one-hour cap", b)
	}
	if lo, hi := b.Delay(1, 0), b.Delay(1, 0.999999); lo != 15*time.Second || hi < 29*time.Second || hi > 30*time.Second {
		t.Fatalf("first backoff [%s, %s], want 15-30 s", lo, hi)
	}
	if !strings.HasPrefix(timing.TestBackoffFlag, "-X github.com/clear-rotator/clear-rotator/internal/timing.testBackoffBase=") {
		t.Fatalf("TestBackoffFlag %q does not set timing.testBackoffBase", timing.TestBackoffFlag)
	}
}
