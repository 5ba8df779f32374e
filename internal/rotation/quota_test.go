package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// versionsFrom returns n versions created one minute apart from first, labelled with stage when
// it is not empty.
func versionsFrom(n int, first time.Time, stage string) []store.VersionInfo {
	out := make([]store.VersionInfo, n)
	for i := range out {
		out[i] = store.VersionInfo{ID: fmt.Sprintf("%s-%d", first.Format("150405"), i), Created: first.Add(time.Duration(i) * time.Minute)}
		if stage != "" {
			out[i].Stages = []string{stage}
		}
	}
	return out
}

// TestVersionQuota is the rule that keeps a rotation's versions within Secrets Manager's quota of
// about 100 versions per secret (versions created in the last 24 hours, and labelled ones, hold
// it): a rotation that may add 3 versions asks Clear only while the count stays at most 90 after
// it; otherwise it waits, as for the daily limit, until enough versions are a day old.
func TestVersionQuota(t *testing.T) {
	now := t0.Add(40 * time.Minute) // the token (issued at t0, valid an hour) is due
	recent := now.Add(-23 * time.Hour)
	old := now.Add(-25 * time.Hour)
	cat := func(parts ...[]store.VersionInfo) []store.VersionInfo {
		var out []store.VersionInfo
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	day := 24 * time.Hour
	for name, tc := range map[string]struct {
		versions []store.VersionInfo
		unknown  bool
		force    bool
		notDue   bool
		held     int
		until    time.Time // zero: the rotation asks Clear
		short    bool      // the token in use (valid an hour from t0) expires before the quota frees
	}{
		"not listed (an idle check, or a failed listing)": {unknown: true},
		"87 recent: 90 after the rotation":                {versions: versionsFrom(87, recent, "")},
		"88 recent: waits for the oldest to age":          {versions: versionsFrom(88, recent, ""), held: 88, until: recent.Add(day)},
		"95 recent: waits for the 8th oldest":             {versions: versionsFrom(95, recent, ""), held: 95, until: recent.Add(7*time.Minute + day)},
		"a forced rotation waits too":                     {versions: versionsFrom(88, recent, ""), force: true, held: 88, until: recent.Add(day)},
		"old unlabelled versions do not count":            {versions: cat(versionsFrom(200, old.Add(-300*time.Minute), ""), versionsFrom(87, recent, ""))},
		"old labelled versions count and never age out": {
			versions: cat(versionsFrom(3, old, "AWSCURRENT"), versionsFrom(85, recent, "")), held: 88, until: recent.Add(day)},
		"a recent labelled version counts once": {
			versions: cat(versionsFrom(2, recent.Add(-time.Hour), "ROTATOR_STATE"), versionsFrom(86, recent, "")), held: 88, until: recent.Add(day)},
		"a creation time ahead of the clock counts": {versions: versionsFrom(88, now.Add(time.Hour), ""), held: 88, until: now.Add(time.Hour + day)},
		"labelled versions alone over the margin: look again in a day": {
			versions: versionsFrom(88, old, "X"), held: 88, until: now.Add(day)},
		"a token not due asks nothing anyway": {versions: versionsFrom(95, recent, ""), notDue: true},
		// The token in use expires before the quota frees: waiting is an outage for certain, so
		// the rotation asks while the versions stay under the quota itself.
		"a token expiring first: asks at 88":         {versions: versionsFrom(88, recent, ""), short: true},
		"a token expiring first: asks at 97":         {versions: versionsFrom(97, recent, ""), short: true},
		"a token expiring first: not past the quota": {versions: versionsFrom(98, recent, ""), short: true, held: 98, until: recent.Add(10*time.Minute + day)},
	} {
		t.Run(name, func(t *testing.T) {
			s := snap(now, t0, 0, "fp1")
			if !tc.short {
				// A token that outlives the wait for the quota (so that the margin is worth
				// waiting for), rotated by force since it is not due.
				till := t0.Add(48 * time.Hour)
				s.Token.ValidTill = &till
				tc.force = tc.force || !tc.notDue
			}
			if tc.notDue {
				s.Now = t0.Add(10 * time.Minute)
			}
			s.Versions, s.VersionsKnown = tc.versions, !tc.unknown
			d := rotation.Decide(s, policy, rotation.Request{Force: tc.force})
			var qe *rotation.QuotaError
			switch {
			case tc.notDue:
				if d.Outcome != rotation.NotDue {
					t.Fatalf("not due: %+v", d)
				}
			case tc.until.IsZero():
				if d.Action != rotation.Ask {
					t.Fatalf("want Ask: %v %v", d.Outcome, d.Err)
				}
			case d.Action != rotation.Wait || d.Outcome != rotation.Limited || !errors.As(d.Err, &qe):
				t.Fatalf("want a version quota refusal: %v %v %v", d.Action, d.Outcome, d.Err)
			case qe.Held != tc.held || !qe.Until.Equal(tc.until) || !d.NextCheck.Equal(tc.until):
				t.Fatalf("held %d until %v (next check %v), want %d until %v", qe.Held, qe.Until, d.NextCheck, tc.held, tc.until)
			case d.Health != rotation.HealthLimited:
				t.Fatalf("health %q, want limited", d.Health)
			}
		})
	}
}

// TestVersionQuotaHoldsARotation: a token secret that already holds some 90 versions created in
// the last day refuses a due rotation (forced or not) with the quota's error, before anything is
// written or asked of Clear, and rotates once the clock passes the time the refusal named. Only a
// rotation about to ask Clear lists the versions; an idle check makes no extra call, and a failed
// listing lets the rotation go on.
func TestVersionQuotaHoldsARotation(t *testing.T) {
	w, c := newWorld(t, rig.Options{Lifetime: time.Hour})
	// moto stamps versions with the real time, so the engine's clock starts there.
	w.Clock.Set(time.Now().UTC().Truncate(time.Second))
	e := w.Engine("a")
	ctx := context.Background()
	expect(t, e.Rotate(ctx, c, false), rotation.Rotated)

	w.API.TakeCalls()
	expect(t, e.Rotate(ctx, c, false), rotation.NotDue)
	if _, calls := w.API.TakeCalls(); calls["ListSecretVersionIds"] != 0 {
		t.Fatalf("an idle check listed the versions: %v", calls)
	}

	// 96 versions put by someone else: each takes the label PAD from the one before, which is
	// left unlabelled. With the three the first rotation made, 99 count: past what a rotation
	// may add even for an hourly token that expires before the quota frees.
	for i := range 96 {
		if _, err := w.SM.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(w.TokenID),
			SecretString: aws.String(fmt.Sprintf("pad-%d", i)), VersionStages: []string{"PAD"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, before := w.MustCurrent()
	w.Clock.Advance(41 * time.Minute) // the token is due
	for _, force := range []bool{false, true} {
		w.API.TakeCalls()
		r := e.Rotate(ctx, c, force)
		expect(t, r, rotation.Limited)
		var qe *rotation.QuotaError
		if !errors.As(r.Err, &qe) || qe.Held < 90 || !r.NextCheck.Equal(qe.Until) || r.Status.State != rotation.HealthLimited {
			t.Fatalf("force %v: %v (next check %v, state %s)", force, r.Err, r.NextCheck, r.Status.State)
		}
		if _, calls := w.API.TakeCalls(); calls["PutSecretValue"] != 0 || calls["ListSecretVersionIds"] != 1 {
			t.Fatalf("force %v: a refused rotation made these calls: %v", force, calls)
		}
		if n := w.Emu.Requests(w.Secrets[0]); n != 1 {
			t.Fatalf("force %v: Clear was asked %d times, want the first rotation only", force, n)
		}
		if qe.Until.Before(w.Clock.Now()) || qe.Until.After(time.Now().Add(24*time.Hour)) {
			t.Fatalf("until %v: not when the versions put now turn a day old", qe.Until)
		}
		if _, id := w.MustCurrent(); id != before {
			t.Fatal("a refused rotation changed AWSCURRENT")
		}
	}
	if st, err := e.Status(ctx, c); err != nil || st.State != rotation.HealthLimited {
		t.Fatalf("status says %q (%v) while the quota holds, want limited", st.State, err)
	}
	r := e.Rotate(ctx, c, false)
	w.Clock.Set(r.NextCheck.Add(time.Minute))
	expect(t, e.Rotate(ctx, c, false), rotation.Rotated)

	// A listing that fails lets the rotation go on, with one warning.
	w.API.Fail(func(op string, _ any) error {
		if op == "ListSecretVersionIds" {
			return errors.New("injected: AccessDenied")
		}
		return nil
	})
	w.Clock.Advance(41 * time.Minute)
	expect(t, e.Rotate(ctx, c, false), rotation.Rotated)
	if n := strings.Count(w.Logs.String(), "could not list the token secret's versions"); n != 1 {
		t.Fatalf("%d warnings about the failed listing, want 1:\n%s", n, w.Logs.String())
	}
}
