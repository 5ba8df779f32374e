package lambdafn

import (
	"encoding/json"
	"io"
	"math"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Namespace is the CloudWatch namespace of the function's metrics.
const Namespace = "ClearRotator"

// Metric names. The template's alarms refer to them, so they are part of the deployment contract.
const (
	MetricTokenSecondsRemaining = "TokenSecondsRemaining"
	MetricRequestsToday         = "RequestsToday"
	MetricDailyLimit            = "DailyLimit"
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

// sample is what one client's rotation contributes to the metrics.
type sample struct {
	client  string
	outcome rotation.Outcome
	// remaining is the validity left on the token in AWSCURRENT; nil when there is no token or it
	// never expires, so that a never-expiring token does not read as one about to expire.
	remaining *float64
	// requests is today's request count, nil when it could not be read.
	requests *int
	limit    int
	// degraded and tokenLost are nil when the client could not be read: a false zero would clear
	// an alarm on a client nobody could look at.
	degraded, tokenLost *bool
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

// write emits one line for s. Each line is a single Write, so that it cannot interleave with a log
// record written to the same stream by another goroutine.
func (e *emf) write(now time.Time, requestID string, s sample) error {
	line := map[string]any{
		"Client":  s.client,
		"Outcome": string(s.outcome),
	}
	if requestID != "" {
		line["request_id"] = requestID
	}
	var metrics []emfMetric
	if s.remaining != nil {
		metrics = append(metrics, emfMetric{MetricTokenSecondsRemaining, "Seconds"})
		line[MetricTokenSecondsRemaining] = *s.remaining
	}
	if s.requests != nil {
		metrics = append(metrics, emfMetric{MetricRequestsToday, "Count"})
		line[MetricRequestsToday] = *s.requests
	}
	metrics = append(metrics, emfMetric{MetricDailyLimit, "Count"})
	line[MetricDailyLimit] = s.limit
	for _, m := range []struct {
		name string
		v    *bool
	}{{MetricDegraded, s.degraded}, {MetricTokenLost, s.tokenLost}} {
		if m.v == nil {
			continue
		}
		metrics = append(metrics, emfMetric{m.name, "Count"})
		line[m.name] = b2i(*m.v)
	}
	for _, o := range rotation.Outcomes {
		name := OutcomeMetric(o)
		metrics = append(metrics, emfMetric{name, "Count"})
		if o == s.outcome {
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

// secondsLeft returns how long validTill is away from now, in whole seconds and never below zero:
// an expired token has nothing left, and a negative gauge would only confuse a dashboard.
func secondsLeft(validTill *time.Time, now time.Time) *float64 {
	if validTill == nil {
		return nil
	}
	left := math.Max(0, math.Floor(validTill.Sub(now).Seconds()))
	return &left
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
