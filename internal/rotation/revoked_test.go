package rotation

import (
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/document"
)

// The last revocation outside the rotator is the newest gateway event the state remembers; other
// forced requests (a command's, a Lambda event's) are not revocations.
func TestLastRevokedOutside(t *testing.T) {
	for name, tc := range map[string]struct {
		events []string
		want   string // "" for none
	}{
		"no events":                {nil, ""},
		"other forced requests":    {[]string{"cli-1", "revoke/1"}, ""},
		"one":                      {[]string{"cli-1", RevokedEvent("v1"), "cli-2"}, "v1"},
		"the newest of two":        {[]string{RevokedEvent("v1"), "cli", RevokedEvent("v2")}, "v2"},
		"a prefix with no version": {[]string{RevokedEvent("v1"), RevokedEventPrefix}, "v1"},
	} {
		t.Run(name, func(t *testing.T) {
			got := lastRevokedOutside(document.State{Events: tc.events})
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("got %+v, want none", got)
			case tc.want != "" && (got == nil || got.Version != tc.want || got.At != nil):
				t.Fatalf("got %+v, want version %s and no time (the shell reads it)", got, tc.want)
			}
		})
	}
	if a, b, again := HealVersion("v1"), HealVersion("v2"), HealVersion("v1"); a == b || a != again {
		t.Error("HealVersion is not a function of the revoked version")
	}
}
