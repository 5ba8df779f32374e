package timing

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleParser accepts five fields, six with leading seconds, and descriptors such as "@hourly"
// and "@every 5m".
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ScheduleReference is an instant from which every schedule must fire, so that whether a spec is
// accepted does not depend on the day (now is checked as well).
var ScheduleReference = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// maxScheduleGap is the longest a schedule may wait to fire: five years of 365 days. robfig/cron
// gives up looking after about five years, but "@every" waits as long as it is told (up to the
// 292 years a duration holds), as good as never for a token that lives a day.
const maxScheduleGap = 5 * 365 * 24 * time.Hour

// ParseSchedule parses a ROTATOR_SCHEDULE spec; the configuration validates it and the daemon
// runs it with this one function, so that the two cannot disagree. It guards against robfig/cron
// v3.0.1's traps: a "TZ=..." prefix without a space panics; "@every" with less than a second
// silently becomes every second; and a spec that never fires ("0 0 30 2 *") makes Next return the
// zero time, so a daemon would rotate once and never again. A spec must fire within five years
// (maxScheduleGap) after now and after ScheduleReference.
func ParseSchedule(spec string, now time.Time) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("malformed schedule: %v", r)
		}
	}()
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, errors.New("a TZ= or CRON_TZ= prefix must be followed by a space and the schedule")
	}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, perr := time.ParseDuration(strings.TrimSpace(rest)); perr == nil && d < time.Second {
			return nil, fmt.Errorf("@every needs at least 1s, not %s", d)
		}
	}
	if sched, err = scheduleParser.Parse(spec); err != nil {
		return nil, err
	}
	for _, from := range []time.Time{ScheduleReference, now} {
		if next := sched.Next(from); next.IsZero() || next.Sub(from) > maxScheduleGap {
			return nil, errors.New("it never fires (no activation within five years, e.g. a day that does not exist in that month, or @every longer than 43800h)")
		}
	}
	return sched, nil
}
