package rotation

import (
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// A token that arrives with less than a minute to live (or already expired) is an anomaly: it is
// stored, and its API client backs off (AttemptSuspicious) rather than asking again at once. A
// minute or more is a token like any other.
func TestAnomaly(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	in := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for name, tc := range map[string]struct {
		g    clear.Grant
		want string // a part of the problem; "" for none
	}{
		"an hour to live":                      {clear.Grant{ValidTill: in(time.Hour)}, ""},
		"a minute to live":                     {clear.Grant{ValidTill: in(time.Minute)}, ""},
		"59 s to live":                         {clear.Grant{ValidTill: in(59 * time.Second)}, "only 59s after it was issued"},
		"expiring as it arrives":               {clear.Grant{ValidTill: in(0)}, "only 0s after it was issued"},
		"expired already":                      {clear.Grant{ValidTill: in(-time.Hour)}, "only -1h0m0s after it was issued"},
		"never expires":                        {clear.Grant{}, ""},
		"a valid_till that was not understood": {clear.Grant{Drift: "a number"}, "could not be understood (a number)"},
	} {
		got := anomaly(tc.g, now)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: anomaly = %q, want %q", name, got, tc.want)
		}
	}
}
