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
		if got := buildTime(s, time.Minute); got != time.Minute {
			t.Errorf("buildTime(%q, 1m) = %s, want 1m", s, got)
		}
	}
	if buildTime("500ms", time.Minute) != 500*time.Millisecond || buildTime("6s", 30*time.Second) != 6*time.Second {
		t.Error("a valid build-time value is not used")
	}
}
