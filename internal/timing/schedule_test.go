package timing_test

import (
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/timing"
)

var scheduleNow = time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)

func TestParseSchedule(t *testing.T) {
	for _, s := range []string{"@every 5m", "@every 1s", "@hourly", "*/5 * * * *", "0 */5 * * * *", "TZ=UTC 0 3 * * *", "CRON_TZ=Asia/Kolkata 0 3 * * *"} {
		if _, err := timing.ParseSchedule(s, scheduleNow); err != nil {
			t.Errorf("ParseSchedule(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "@every 500ms", "@every -1m", "@every", "@weekday", "TZ=UTC", "CRON_TZ=", "TZ=Nowhere/Land 0 3 * * *", "* * *", "61 * * * *"} {
		if _, err := timing.ParseSchedule(s, scheduleNow); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", s)
		}
	}
}

// TestScheduleThatNeverFires: robfig/cron accepts February 30th and its Next returns the zero
// time, so a daemon would rotate once and never again.
func TestScheduleThatNeverFires(t *testing.T) {
	// "@every" past five years (up to the 292 years a duration holds) is as good as never for a
	// token that lives a day: the documented rule is that a spec fires within five years.
	for _, s := range []string{"0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *", "@every 43801h", "@every 100000h", "@every 2562047h"} {
		if _, err := timing.ParseSchedule(s, scheduleNow); err == nil || !strings.Contains(err.Error(), "never fires") {
			t.Errorf("ParseSchedule(%q) = %v, want never fires", s, err)
		}
	}
	// February 29th fires within five years from any instant.
	for _, now := range []time.Time{timing.ScheduleReference, time.Date(2029, 3, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := timing.ParseSchedule("0 0 29 2 *", now); err != nil {
			t.Errorf("Feb 29 from %s: %v", now, err)
		}
	}
	if _, err := timing.ParseSchedule("@every 43800h", scheduleNow); err != nil {
		t.Errorf("@every 43800h (five years of 365 days): %v", err)
	}
}
