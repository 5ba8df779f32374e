package notify

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Metric names, part of the operator contract like the daemon's own.
const (
	MetricFailures    = "clear_rotator_delivery_failures_total"
	MetricFailing     = "clear_rotator_delivery_failing"
	MetricLastFailure = "clear_rotator_delivery_last_failure_timestamp_seconds"
)

// Stats is a Recorder that keeps what the metrics and the status report: per client and kind, the
// failures reported, whether the latest delivery is failing, and when it last failed.
type Stats struct {
	mu sync.Mutex
	m  map[statsKey]*KindStats
}

type statsKey struct{ client, kind string }

// KindStats is one client's and kind's delivery record.
type KindStats struct {
	Client, Kind string
	Failures     uint64
	Failing      bool
	LastFailure  time.Time
	LastDelivery time.Time
}

func (s *Stats) get(client, kind string) *KindStats {
	if s.m == nil {
		s.m = map[statsKey]*KindStats{}
	}
	k := statsKey{client, kind}
	if s.m[k] == nil {
		s.m[k] = &KindStats{Client: client, Kind: kind}
	}
	return s.m[k]
}

// Failed implements Recorder.
func (s *Stats) Failed(ev Event, kind string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.get(ev.Client, kind)
	k.Failures++
	k.Failing = true
	k.LastFailure = at
}

// Delivered implements Recorder.
func (s *Stats) Delivered(ev Event, kind string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.get(ev.Client, kind)
	k.Failing = false
	k.LastDelivery = at
}

// Superseded implements Recorder: the client's latest token is a newer one, so this delivery's
// failure no longer counts as failing.
func (s *Stats) Superseded(ev Event, kind string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(ev.Client, kind).Failing = false
}

// Settle clears the failing mark of every record whose client and kind tells says are no longer
// delivered (a reload removed the webhook, the hook or the client): no delivery of them will
// succeed to clear it, and the alert on it would stay up until a restart. The counts stay.
func (s *Stats) Settle(tells func(client, kind string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.m {
		if !tells(k.client, k.kind) {
			r.Failing = false
		}
	}
}

// Snapshot returns the records, sorted by client and kind.
func (s *Stats) Snapshot() []KindStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]KindStats, 0, len(s.m))
	for _, k := range s.m {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b KindStats) int {
		if a.Client != b.Client {
			if a.Client < b.Client {
				return -1
			}
			return 1
		}
		if a.Kind < b.Kind {
			return -1
		} else if a.Kind > b.Kind {
			return 1
		}
		return 0
	})
	return out
}

// Metric help texts; docs/operations.md quotes them.
const (
	HelpFailures    = "Deliveries of a stored token (webhook or hook) reported as failed, by client and kind."
	HelpFailing     = "1 while the latest delivery of a client's token, by kind, has failed and is not yet delivered."
	HelpLastFailure = "When a delivery, by client and kind, was last reported as failed (Unix seconds)."
)

// MetricHelp is each delivery family's HELP text, by name.
var MetricHelp = map[string]string{MetricFailures: HelpFailures, MetricFailing: HelpFailing, MetricLastFailure: HelpLastFailure}

// WriteMetrics writes the delivery metrics in the Prometheus text format. Clients and kinds appear
// once they have a delivery; the families' HELP and TYPE lines always do.
func (s *Stats) WriteMetrics(w io.Writer) {
	snap := s.Snapshot()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", MetricFailures, HelpFailures, MetricFailures)
	for _, k := range snap {
		fmt.Fprintf(w, "%s{client=%s,kind=%s} %d\n", MetricFailures, strconv.Quote(k.Client), strconv.Quote(k.Kind), k.Failures)
	}
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", MetricFailing, HelpFailing, MetricFailing)
	for _, k := range snap {
		v := 0
		if k.Failing {
			v = 1
		}
		fmt.Fprintf(w, "%s{client=%s,kind=%s} %d\n", MetricFailing, strconv.Quote(k.Client), strconv.Quote(k.Kind), v)
	}
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", MetricLastFailure, HelpLastFailure, MetricLastFailure)
	for _, k := range snap {
		if !k.LastFailure.IsZero() {
			fmt.Fprintf(w, "%s{client=%s,kind=%s} %d\n", MetricLastFailure, strconv.Quote(k.Client), strconv.Quote(k.Kind), k.LastFailure.Unix())
		}
	}
}
