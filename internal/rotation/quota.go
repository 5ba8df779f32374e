package rotation

import (
	"fmt"
	"slices"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Secrets Manager's quota of versions per secret: it keeps every version created in the last 24
// hours, and every labelled one, and refuses new versions (LimitExceededException) beyond about
// 100 of them. The quota cannot be raised. The daily limit does not keep a rotator under it (two
// API clients, a day's requests spent late followed by a day's spent early, a floor of one
// rotation a minute for tokens that live two minutes), and a token write refused there loses the
// token Clear issued. So a rotation asks Clear only while what it may add stays under the quota,
// with a margin for other writers (an operator's put, Secrets Manager's own rotation).
const (
	// versionQuota is Secrets Manager's quota of versions per secret.
	versionQuota = 100
	// quotaMargin is kept free below the quota after a rotation.
	quotaMargin = 10
	// rotationVersions is what one rotation may add: the claim, then the token or the failure
	// record, and an anomaly record or a release after a lost token.
	rotationVersions = 3
	// versionLife is how long Secrets Manager keeps an unlabelled version whatever the quota.
	versionLife = 24 * time.Hour
)

// QuotaError is a rotation refused because the token secret holds too many versions that count
// against Secrets Manager's version quota for the versions it would add; Until is when enough of
// them turn a day old.
type QuotaError struct {
	// Held is the number of versions that count: created within the last day, or labelled.
	Held int
	// Max is the most that may count before a rotation, so that the quota keeps its margin after.
	Max   int
	Until time.Time
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("refused by Secrets Manager's version quota: the token secret holds %d versions created in the last 24 hours or labelled, "+
		"of the about %d it may hold; a rotation adds up to %d and the rotator keeps %d free, so it asks Clear nothing until %s, when enough of them are a day old",
		e.Held, versionQuota, rotationVersions, quotaMargin, e.Until.UTC().Format(time.RFC3339))
}

// quotaGate: a rotation whose versions would take the token secret past the quota's margin waits
// until enough versions are a day old, forced or not. It judges only a listing of the versions
// (the engine lists them only when a rotation is about to ask Clear); without one it lets the
// rotation go on, as before the guard, rather than block it on an optional read.
func quotaGate(in gateInput) *stop {
	if !in.s.VersionsKnown {
		return nil
	}
	err := versionQuotaCheck(in.s.Versions, in.now)
	if err == nil {
		return nil
	}
	// The margin is worth a wait only while the token in use stays valid until the quota frees.
	// When it expires (or is lost) first, waiting is an outage for certain, while asking with
	// the versions still under the quota itself stores the new token: the soak's hourly tokens,
	// refused at the margin after a few faults, expired for 20 minutes before this rule.
	if err.Held+rotationVersions <= versionQuota && !(in.s.HasToken && !lostCurrent(in.s, in.st) && outlives(in.s.Token, err.Until)) {
		return nil
	}
	return &stop{Limited, err, err.Until}
}

// versionQuotaCheck is the quota's rule: nil when a rotation's versions fit, otherwise the
// refusal with the time when enough of the counted versions are a day old. Only unlabelled ones
// age out; when labelled ones alone pass the margin (absurd: only an operator adds labels), it
// looks again in a day.
func versionQuotaCheck(versions []store.VersionInfo, now time.Time) *QuotaError {
	limit := versionQuota - quotaMargin - rotationVersions
	held := 0
	var aging []time.Time
	for _, v := range versions {
		recent := now.Sub(v.Created) < versionLife
		switch {
		case len(v.Stages) > 0:
			held++
		case recent:
			held++
			aging = append(aging, v.Created)
		}
	}
	if held <= limit {
		return nil
	}
	e := &QuotaError{Held: held, Max: limit, Until: now.Add(versionLife)}
	if free := held - limit; free <= len(aging) {
		slices.SortFunc(aging, time.Time.Compare)
		e.Until = aging[free-1].Add(versionLife)
	}
	return e
}
