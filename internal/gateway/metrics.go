package gateway

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Metric names: the operator contract (alert rules and dashboards use them).
const (
	MetricRequests       = "clear_rotator_gateway_requests_total"
	MetricReplays        = "clear_rotator_gateway_replays_total"
	MetricHold           = "clear_rotator_gateway_hold_seconds"
	MetricUpstream       = "clear_rotator_gateway_upstream_seconds"
	MetricRevokedOutside = "clear_rotator_gateway_revoked_outside_total"
	MetricKeyRefusals    = "clear_rotator_gateway_key_refusals_total"
	MetricNoToken        = "clear_rotator_gateway_no_token_total"
	MetricPassed         = "clear_rotator_gateway_refusals_passed_total"
	MetricStreamed       = "clear_rotator_gateway_streamed_bodies_total"
	MetricProbes         = "clear_rotator_gateway_probes_total"
	// MetricAccessLogDropped counts access log lines dropped because the log's writer did not
	// keep up (BatchWriter); exported by Service, which owns the writer.
	MetricAccessLogDropped = "clear_rotator_gateway_access_log_dropped_total"
)

// MetricHelp is each family's HELP line.
var MetricHelp = map[string]string{
	MetricRequests:         "Requests answered by the gateway, per client and status class (2xx, 3xx, 4xx, 5xx), its own answers included (with several clients, not a refusal made before the client is known, which is in the access log).",
	MetricReplays:          "Requests sent to Clear a second time, with a newer token, after Clear refused the first with 401.",
	MetricHold:             "Time requests were held waiting for a (newer) token, in seconds.",
	MetricUpstream:         "Time from sending a request to Clear to its response headers, in seconds, per attempt.",
	MetricRevokedOutside:   "Tokens Clear had accepted through the gateway, then refused while still AWSCURRENT and unexpired: revoked outside the rotator.",
	MetricKeyRefusals:      "Requests refused for a missing or wrong inbound key (x-clear-rotator-key).",
	MetricNoToken:          "Requests answered 503 because no live token was held.",
	MetricPassed:           "Clear's 401 answers passed on to the caller, by reason: not_replayable (the body was streamed, or the 401 was too large to hold), no_newer_token (none within the hold), replay_refused (the replay was refused too), call (Clear refuses this call whatever the token).",
	MetricProbes:           "Probes sent (ROTATOR_PROBE_PATH), by the status class a caller would have seen (2xx, 3xx, 4xx, 5xx).",
	MetricStreamed:         "Request bodies streamed to Clear rather than buffered, so not replayable after a 401, by reason: size (over the replay limit, or of unknown length and found over it) or budget (the buffered bodies' shared budget was full).",
	MetricAccessLogDropped: "Access log lines dropped because the log's writer did not keep up.",
}

var holdBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
var upstreamBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// histogram counts durations in fixed buckets with atomics: observing takes no lock, so requests
// do not queue behind each other (or behind a scrape) to be counted. A scrape may see a count a
// moment ahead of the sum; Prometheus tolerates that, and the next scrape agrees.
type histogram struct {
	bounds []time.Duration
	counts []atomic.Uint64 // per bucket, not cumulative; one more for +Inf
	sumNs  atomic.Int64
}

func newHistogram(bounds []float64) *histogram {
	h := &histogram{bounds: make([]time.Duration, len(bounds)), counts: make([]atomic.Uint64, len(bounds)+1)}
	for i, b := range bounds {
		h.bounds[i] = time.Duration(b * float64(time.Second))
	}
	return h
}

func (h *histogram) observe(d time.Duration) {
	i, _ := slices.BinarySearch(h.bounds, d) // the first bound >= d; len(bounds) is +Inf
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// classes are the status classes requests are counted by, in their index order.
var classes = []string{"2xx", "3xx", "4xx", "5xx"}

// passReason is why Clear's 401 reached the caller: each is an ERP-visible refusal, and all but
// passCall one the gateway exists to avoid.
type passReason int

const (
	passNotReplayable passReason = iota
	passNoNewerToken
	passReplayRefused
	passCall
)

// passReasons are the reasons' label values, in their index order.
var passReasons = []string{"not_replayable", "no_newer_token", "replay_refused", "call"}

// streamReason is why a body was streamed rather than buffered; streamNone for a buffered one.
type streamReason int

const (
	streamNone streamReason = iota
	streamSize
	streamBudget
)

// streamReasons are the label values of streamSize and streamBudget, in order.
var streamReasons = []string{"size", "budget"}

// clientMetrics are one client's counters. Each route resolves its own once (Gateway.New), so the
// request path neither looks a client up nor takes a lock.
type clientMetrics struct {
	requests [4]atomic.Uint64 // by status class, as classes
	probes   [4]atomic.Uint64 // the same, of probes (not in requests)
	replays  atomic.Uint64
	revoked  atomic.Uint64
	noToken  atomic.Uint64
	passed   [4]atomic.Uint64 // by passReason
	streamed [2]atomic.Uint64 // by streamReason-1
	hold     *histogram
	upstream *histogram
}

// metrics are the gateway's counters. Hand-written text exposition, like the daemon's.
type metrics struct {
	clients     map[string]*clientMetrics // fixed at construction: read without a lock
	keyRefusals *atomic.Uint64
}

// newMetrics makes the metrics of the clients names; those prev (the metrics of the gateway this
// one replaces, or nil) counted carry on, as counters must across a reload.
func newMetrics(names []string, prev *metrics) *metrics {
	m := &metrics{clients: map[string]*clientMetrics{}, keyRefusals: &atomic.Uint64{}}
	if prev != nil {
		m.keyRefusals = prev.keyRefusals
	}
	for _, n := range names {
		if prev != nil && prev.clients[n] != nil {
			m.clients[n] = prev.clients[n]
			continue
		}
		m.clients[n] = &clientMetrics{hold: newHistogram(holdBuckets), upstream: newHistogram(upstreamBuckets)}
	}
	return m
}

// classIndex is a status code's index in classes; anything outside 100..599 counts as 5xx.
func classIndex(code int) int {
	switch {
	case code < 100 || code > 599:
		return 3
	case code < 300:
		return 0
	}
	return code/100 - 2
}

func (c *clientMetrics) request(code int)             { c.requests[classIndex(code)].Add(1) }
func (c *clientMetrics) probed(code int)              { c.probes[classIndex(code)].Add(1) }
func (c *clientMetrics) replay()                      { c.replays.Add(1) }
func (c *clientMetrics) revokedOutside()              { c.revoked.Add(1) }
func (c *clientMetrics) noTokenAnswer()               { c.noToken.Add(1) }
func (c *clientMetrics) passedOn(why passReason)      { c.passed[why].Add(1) }
func (c *clientMetrics) held(d time.Duration)         { c.hold.observe(d) }
func (c *clientMetrics) upstreamTook(d time.Duration) { c.upstream.observe(d) }
func (m *metrics) keyRefused()                        { m.keyRefusals.Add(1) }

// revokedOutside returns, per client, how many tokens were found revoked outside the rotator.
func (m *metrics) revokedOutside() map[string]uint64 {
	out := map[string]uint64{}
	for n, c := range m.clients {
		out[n] = c.revoked.Load()
	}
	return out
}

// write renders the families in the Prometheus text format, clients in name order.
func (m *metrics) write(b *strings.Builder) {
	names := make([]string, 0, len(m.clients))
	for n := range m.clients {
		names = append(names, n)
	}
	slices.Sort(names)
	family := func(name, typ string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, MetricHelp[name], name, typ)
	}
	byClass := func(name string, v func(c *clientMetrics) *[4]atomic.Uint64) {
		family(name, "counter")
		for _, n := range names {
			for i, cl := range classes {
				fmt.Fprintf(b, "%s{%s,code=%q} %d\n", name, clientLabel(n), cl, v(m.clients[n])[i].Load())
			}
		}
	}
	byClass(MetricRequests, func(c *clientMetrics) *[4]atomic.Uint64 { return &c.requests })
	counter := func(name string, v func(c *clientMetrics) *atomic.Uint64) {
		family(name, "counter")
		for _, n := range names {
			fmt.Fprintf(b, "%s{%s} %d\n", name, clientLabel(n), v(m.clients[n]).Load())
		}
	}
	counter(MetricReplays, func(c *clientMetrics) *atomic.Uint64 { return &c.replays })
	hist := func(name string, bounds []float64, h func(c *clientMetrics) *histogram) {
		family(name, "histogram")
		for _, n := range names {
			hh := h(m.clients[n])
			var cum uint64
			for i, bd := range bounds {
				cum += hh.counts[i].Load()
				fmt.Fprintf(b, "%s_bucket{%s,le=%q} %d\n", name, clientLabel(n), strconv.FormatFloat(bd, 'f', -1, 64), cum)
			}
			// +Inf is the sum of the buckets read, so that the buckets stay cumulative even
			// while observations land during the scrape.
			cum += hh.counts[len(bounds)].Load()
			fmt.Fprintf(b, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, clientLabel(n), cum)
			fmt.Fprintf(b, "%s_sum{%s} %s\n", name, clientLabel(n), strconv.FormatFloat(time.Duration(hh.sumNs.Load()).Seconds(), 'f', -1, 64))
			fmt.Fprintf(b, "%s_count{%s} %d\n", name, clientLabel(n), cum)
		}
	}
	hist(MetricHold, holdBuckets, func(c *clientMetrics) *histogram { return c.hold })
	hist(MetricUpstream, upstreamBuckets, func(c *clientMetrics) *histogram { return c.upstream })
	counter(MetricRevokedOutside, func(c *clientMetrics) *atomic.Uint64 { return &c.revoked })
	family(MetricKeyRefusals, "counter")
	fmt.Fprintf(b, "%s %d\n", MetricKeyRefusals, m.keyRefusals.Load())
	counter(MetricNoToken, func(c *clientMetrics) *atomic.Uint64 { return &c.noToken })
	byReason := func(name string, reasons []string, v func(c *clientMetrics, i int) *atomic.Uint64) {
		family(name, "counter")
		for _, n := range names {
			for i, why := range reasons {
				fmt.Fprintf(b, "%s{%s,reason=%q} %d\n", name, clientLabel(n), why, v(m.clients[n], i).Load())
			}
		}
	}
	byReason(MetricPassed, passReasons, func(c *clientMetrics, i int) *atomic.Uint64 { return &c.passed[i] })
	byReason(MetricStreamed, streamReasons, func(c *clientMetrics, i int) *atomic.Uint64 { return &c.streamed[i] })
	byClass(MetricProbes, func(c *clientMetrics) *[4]atomic.Uint64 { return &c.probes })
}

func clientLabel(name string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `client="` + r.Replace(name) + `"`
}
