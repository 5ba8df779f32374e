package gateway

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
)

// MetricHelp is each family's HELP line.
var MetricHelp = map[string]string{
	MetricRequests:       "Requests answered by the gateway, per client and status class (2xx, 3xx, 4xx, 5xx), its own answers included.",
	MetricReplays:        "Requests sent to Clear a second time, with a newer token, after Clear refused the first with 401.",
	MetricHold:           "Time requests were held waiting for a (newer) token, in seconds.",
	MetricUpstream:       "Time from sending a request to Clear to its response headers, in seconds, per attempt.",
	MetricRevokedOutside: "Tokens Clear had accepted through the gateway, then refused while still AWSCURRENT and unexpired: revoked outside the rotator.",
	MetricKeyRefusals:    "Requests refused for a missing or wrong inbound key (x-clear-rotator-key).",
	MetricNoToken:        "Requests answered 503 because no live token was held.",
}

var holdBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
var upstreamBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func (h *histogram) observe(bounds []float64, v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(bounds))
	}
	for i, b := range bounds {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += v
	h.n++
}

type clientMetrics struct {
	requests map[string]uint64 // by status class
	replays  uint64
	revoked  uint64
	noToken  uint64
	hold     histogram
	upstream histogram
}

// metrics are the gateway's counters. Hand-written text exposition, like the daemon's.
type metrics struct {
	mu          sync.Mutex
	clients     map[string]*clientMetrics
	keyRefusals uint64
}

func newMetrics(names []string) *metrics {
	m := &metrics{clients: map[string]*clientMetrics{}}
	for _, n := range names {
		m.clients[n] = &clientMetrics{requests: map[string]uint64{}}
	}
	return m
}

func (m *metrics) with(client string, f func(c *clientMetrics)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.clients[client]
	if c == nil {
		return // refused before a client was chosen: counted only as a key refusal, if at all
	}
	f(c)
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "5xx"
	}
	return strconv.Itoa(code/100) + "xx"
}

func (m *metrics) request(client string, code int) {
	m.with(client, func(c *clientMetrics) { c.requests[statusClass(code)]++ })
}
func (m *metrics) replay(client string)  { m.with(client, func(c *clientMetrics) { c.replays++ }) }
func (m *metrics) revoked(client string) { m.with(client, func(c *clientMetrics) { c.revoked++ }) }
func (m *metrics) noToken(client string) { m.with(client, func(c *clientMetrics) { c.noToken++ }) }
func (m *metrics) hold(client string, d time.Duration) {
	m.with(client, func(c *clientMetrics) { c.hold.observe(holdBuckets, d.Seconds()) })
}
func (m *metrics) upstream(client string, d time.Duration) {
	m.with(client, func(c *clientMetrics) { c.upstream.observe(upstreamBuckets, d.Seconds()) })
}
func (m *metrics) keyRefused() {
	m.mu.Lock()
	m.keyRefusals++
	m.mu.Unlock()
}

// RevokedOutside returns, per client, how many tokens were found revoked outside the rotator.
func (m *metrics) revokedOutside() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]uint64{}
	for n, c := range m.clients {
		out[n] = c.revoked
	}
	return out
}

var classes = []string{"2xx", "3xx", "4xx", "5xx"}

// write renders the families in the Prometheus text format, clients in name order.
func (m *metrics) write(b *strings.Builder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.clients))
	for n := range m.clients {
		names = append(names, n)
	}
	slices.Sort(names)
	family := func(name, typ string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, MetricHelp[name], name, typ)
	}
	family(MetricRequests, "counter")
	for _, n := range names {
		for _, cl := range classes {
			fmt.Fprintf(b, "%s{%s,code=%q} %d\n", MetricRequests, clientLabel(n), cl, m.clients[n].requests[cl])
		}
	}
	counter := func(name string, v func(c *clientMetrics) uint64) {
		family(name, "counter")
		for _, n := range names {
			fmt.Fprintf(b, "%s{%s} %d\n", name, clientLabel(n), v(m.clients[n]))
		}
	}
	counter(MetricReplays, func(c *clientMetrics) uint64 { return c.replays })
	hist := func(name string, bounds []float64, h func(c *clientMetrics) *histogram) {
		family(name, "histogram")
		for _, n := range names {
			hh := h(m.clients[n])
			var cum uint64
			for i, bd := range bounds {
				if hh.counts != nil {
					cum += hh.counts[i]
				}
				fmt.Fprintf(b, "%s_bucket{%s,le=%q} %d\n", name, clientLabel(n), strconv.FormatFloat(bd, 'f', -1, 64), cum)
			}
			fmt.Fprintf(b, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, clientLabel(n), hh.n)
			fmt.Fprintf(b, "%s_sum{%s} %s\n", name, clientLabel(n), strconv.FormatFloat(hh.sum, 'f', -1, 64))
			fmt.Fprintf(b, "%s_count{%s} %d\n", name, clientLabel(n), hh.n)
		}
	}
	hist(MetricHold, holdBuckets, func(c *clientMetrics) *histogram { return &c.hold })
	hist(MetricUpstream, upstreamBuckets, func(c *clientMetrics) *histogram { return &c.upstream })
	counter(MetricRevokedOutside, func(c *clientMetrics) uint64 { return c.revoked })
	family(MetricKeyRefusals, "counter")
	fmt.Fprintf(b, "%s %d\n", MetricKeyRefusals, m.keyRefusals)
	counter(MetricNoToken, func(c *clientMetrics) uint64 { return c.noToken })
}

func clientLabel(name string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `client="` + r.Replace(name) + `"`
}
