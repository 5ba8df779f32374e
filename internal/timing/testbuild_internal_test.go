package timing

import (
	"testing"
	"time"
)

// TestBuildTimeValuesFallBack: a build-time value that is missing or not a positive duration
// leaves the release values (a one-minute floor, a 30 s backoff base): no value can take either
// to zero or below.
func TestBuildTimeValuesFallBack(t *testing.T) {
	for _, s := range []string{"", "0", "-5s", "abc", "6"} {
		if got := floor(s); got != time.Minute {
			t.Errorf("floor(%q) = %s, want 1m", s, got)
		}
		if got := backoffBase(s); got != 30*time.Second {
			t.Errorf("backoffBase(%q) = %s, want 30s", s, got)
		}
	}
	if floor("500ms") != 500*time.Millisecond || backoffBase("6s") != 6*time.Second {
		t.Error("a valid build-time value is not used")
	}
}
