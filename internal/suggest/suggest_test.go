package suggest_test

import (
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

func TestClosest(t *testing.T) {
	for _, tc := range []struct{ word, want string }{
		{"statsu", "status"}, {"rotat", "rotate"}, {"chek", "check"}, {"frobnicate", ""}, {"x", ""}, {"STATUS", "status"},
	} {
		if got := suggest.Closest(tc.word, []string{"run", "rotate", "status", "check", "revoke", "version", "help"}); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}
