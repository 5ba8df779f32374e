package lambdafn

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Namespace is the CloudWatch namespace of the function's metrics.
const Namespace = "ClearRotator"

// Metric names. The template's alarms refer to them, so they are part of the deployment contract.
const (
	MetricTokenSecondsRemaining = "TokenSecondsRemaining"
	// MetricRequestsToday is today's (UTC) count of the API client that made the most requests;
	// MetricDailyLimit applies to each API client.
	MetricRequestsToday = "RequestsToday"
	MetricDailyLimit    = "DailyLimit"
	// MetricDegraded is 1 while two API clients are configured and only one can be asked: each
	// rotation then revokes the token in use, as with one API client.
	MetricDegraded = "Degraded"
	// MetricTokenLost is 1 while a token Clear issued was not stored (or a claim was abandoned) and
	// no rotation has recovered since: the ERP may hold a revoked token.
	MetricTokenLost = "TokenLost"
)

// OutcomeMetric returns the name of the count metric of an outcome, e.g. "OutcomeFailed". Every
// rotation emits all of them, 1 for its outcome and 0 for the others, so that a Sum over any period
// is a real number rather than missing data, and an alarm on one outcome needs no metric math.
func OutcomeMetric(o rotation.Outcome) string {
	switch o {
	case rotation.Rotated:
		return "OutcomeRotated"
	case rotation.NotDue:
		return "OutcomeNotDue"
	case rotation.Busy:
		return "OutcomeBusy"
	case rotation.Duplicate:
		return "OutcomeDuplicate"
	case rotation.Limited:
		return "OutcomeLimited"
	case rotation.Blocked:
		return "OutcomeBlocked"
	default:
		return "OutcomeFailed"
	}
}

// emf writes CloudWatch Embedded Metric Format lines. Lambda ships every stdout line to CloudWatch
// Logs, which extracts the metrics from lines shaped like these: no agent, no PutMetricData
// permission, and no API call that could slow down or fail an invocation.
type emf struct {
	mu  sync.Mutex
	out io.Writer
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// write emits one line with client's metrics m (rotation.Result.Metrics: the values the daemon's
// /metrics shows too), under this function's names. Each line is a single Write, so that it cannot
// interleave with a log record written to the same stream by another goroutine.
func (e *emf) write(now time.Time, requestID, client string, m rotation.Metrics) error {
	line := map[string]any{
		"Client":  client,
		"Outcome": string(m.Outcome),
	}
	if requestID != "" {
		line["request_id"] = requestID
	}
	var metrics []emfMetric
	if m.SecondsLeft != nil {
		metrics = append(metrics, emfMetric{MetricTokenSecondsRemaining, "Seconds"})
		line[MetricTokenSecondsRemaining] = *m.SecondsLeft
	}
	if n := busiest(m); n != nil {
		metrics = append(metrics, emfMetric{MetricRequestsToday, "Count"})
		line[MetricRequestsToday] = *n
	}
	metrics = append(metrics, emfMetric{MetricDailyLimit, "Count"})
	line[MetricDailyLimit] = m.DailyLimit
	for _, f := range []struct {
		name string
		v    *bool
	}{{MetricDegraded, m.Degraded}, {MetricTokenLost, m.TokenLost}} {
		if f.v == nil {
			continue
		}
		metrics = append(metrics, emfMetric{f.name, "Count"})
		line[f.name] = b2i(*f.v)
	}
	for _, o := range rotation.Outcomes {
		name := OutcomeMetric(o)
		metrics = append(metrics, emfMetric{name, "Count"})
		if o == m.Outcome {
			line[name] = 1
		} else {
			line[name] = 0
		}
	}
	line["_aws"] = emfMeta{
		Timestamp: now.UnixMilli(),
		CloudWatchMetrics: []emfDirective{{
			Namespace:  Namespace,
			Dimensions: [][]string{{"Client"}},
			Metrics:    metrics,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.out.Write(b)
	return err
}

// busiest is the RequestsToday metric: the count of the API client that made the most requests
// today, or the client's count when the counts per API client are not known. DailyLimit applies to
// each API client, and the budget alarm divides this by it: the sum across two API clients used in
// turn would reach 80% while each had used 40%.
func busiest(m rotation.Metrics) *int {
	if len(m.PerAPIClient) == 0 {
		return m.RequestsToday
	}
	n := 0
	for _, a := range m.PerAPIClient {
		n = max(n, a.Requests)
	}
	return &n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
