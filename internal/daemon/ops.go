package daemon

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/ops"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Metric names. They are part of the operator contract (dashboards and alerts use them); the README
// lists them with the same descriptions as their HELP lines, and a test holds the two together.
const (
	MetricBuildInfo    = "clear_rotator_build_info"
	MetricProcessStart = "process_start_time_seconds"
	MetricTicks        = "clear_rotator_ticks_total"
	MetricChecks       = "clear_rotator_checks_total"
	MetricExpiry       = "clear_rotator_token_expiry_timestamp_seconds"
	MetricIssued       = "clear_rotator_token_issued_timestamp_seconds"
	MetricRequests     = "clear_rotator_requests_today"
	MetricDailyLimit   = "clear_rotator_daily_limit"
	MetricLastSuccess  = "clear_rotator_last_success_timestamp_seconds"
	MetricBlocked      = "clear_rotator_blocked"
	MetricDegraded     = "clear_rotator_degraded"
	MetricTokenLost    = "clear_rotator_token_lost"
	MetricState        = "clear_rotator_state"
	MetricNextCheck    = "clear_rotator_next_check_timestamp_seconds"
	MetricReady        = "clear_rotator_ready"
)

// processStart is when this process started, near enough: when the package was initialised.
var processStart = time.Now()

// Readiness reason codes: /readyz answers one of them, never the text of an AWS error, which names
// secrets, principals and accounts. The details go to the log.
const (
	reasonOK         = "ok"
	reasonStarting   = "starting"
	reasonClosing    = "shutting-down"
	reasonUnreadable = "secrets-manager-unreadable"
)

// handler serves the ops endpoints:
//
//   - /healthz answers 200 "ok" while the process runs: a liveness probe must not fail because
//     Secrets Manager or Clear does, or an orchestrator would restart a healthy daemon.
//   - /readyz answers 200 "ok" once the first tick has finished and every client's last read of
//     Secrets Manager succeeded; 503 with a reason code otherwise ("starting", "shutting-down",
//     "secrets-manager-unreadable: N client(s)").
//   - /metrics is the Prometheus text exposition format, written by hand to need no client library.
func (d *daemon) handler() http.Handler {
	return ops.Handler(d.ready, func(w io.Writer) { io.WriteString(w, d.metrics(time.Now())) })
}

// ready reports readiness and its reason code.
func (d *daemon) ready() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readyLocked()
}

func (d *daemon) readyLocked() (bool, string) {
	switch {
	case d.closing:
		return false, reasonClosing
	case !d.firstDone:
		return false, reasonStarting
	}
	n := 0
	for _, e := range d.entries {
		if e.readFails > 0 {
			n++
		}
	}
	if n > 0 {
		return false, fmt.Sprintf("%s: %d client(s)", reasonUnreadable, n)
	}
	return true, reasonOK
}

// names returns the configured client names in sorted order, for stable output. d.mu must be held.
func (d *daemon) names() []string {
	names := make([]string, 0, len(d.entries))
	for n := range d.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// buildVersion reduces the line `rotator version` prints to the version itself.
func buildVersion(v string) string {
	v = strings.TrimPrefix(v, "clear-rotator ")
	if i := strings.Index(v, " ("); i >= 0 {
		v = v[:i]
	}
	if v == "" {
		return "unknown"
	}
	return v
}

// metrics renders every metric family at now: the daemon's own (see families), then those of
// Options.Metrics. Families come in a fixed order and clients sorted by name, so that successive
// scrapes diff cleanly. Every per-client value comes from the client's status as last read from
// Secrets Manager, whoever wrote it, through rotation.Metrics, the values the Lambda's EMF lines
// carry too; a value that is not known (nothing read yet, a count of another UTC day) is left out,
// never shown as zero. The values are copied under the daemon's lock and rendered outside it, so a
// slow scrape never holds up a check.
func (d *daemon) metrics(now time.Time) string {
	s := d.snapshot(now)
	var b strings.Builder
	for _, f := range families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, metricHelp[f.name], f.name, f.typ)
		f.samples(&s, func(labels, value string) {
			if labels != "" {
				labels = "{" + labels + "}"
			}
			fmt.Fprintf(&b, "%s%s %s\n", f.name, labels, value)
		})
	}
	for _, m := range d.opts.Metrics {
		m(&b)
	}
	return b.String()
}

// snapshot is what /metrics shows, copied under the daemon's lock.
type snapshot struct {
	version string
	ticks   uint64
	ready   bool
	clients []clientRow // sorted by name
}

// clientRow is one client's values: its metrics (rotation.Metrics, from its status as last read;
// no values before the first read) and what only the daemon knows of it.
type clientRow struct {
	name     string
	m        rotation.Metrics
	outcomes map[rotation.Outcome]uint64
	state    rotation.Health // "" before the first check
	healthy  time.Time       // when last found healthy; zero: never
	nextLook time.Time       // zero: never checked
}

func (d *daemon) snapshot(now time.Time) snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := snapshot{version: buildVersion(d.opts.Version), ticks: d.ticks}
	s.ready, _ = d.readyLocked()
	for _, n := range d.names() {
		e := d.entries[n]
		row := clientRow{name: n, m: rotation.Metrics{DailyLimit: e.key.DailyLimit}, outcomes: maps.Clone(e.outcomes),
			state: e.state(), healthy: e.healthy}
		if e.status != nil {
			row.m = e.status.Metrics(e.readAt, now)
		}
		if !e.checked.IsZero() {
			row.nextLook = e.look(n).nextLook(d.tickAt)
		}
		s.clients = append(s.clients, row)
	}
	return s
}

// family is one metric family of /metrics: its name (and so its HELP line, from metricHelp), its
// type, and its samples, each passed to add as its labels and value.
type family struct {
	name, typ string
	samples   func(s *snapshot, add func(labels, value string))
}

// families are the daemon's own metric families, in the order /metrics shows them.
var families = []family{
	{MetricBuildInfo, "gauge", func(s *snapshot, add func(string, string)) {
		add(label("version", s.version)+","+label("go_version", runtime.Version()), "1")
	}},
	{MetricProcessStart, "gauge", func(_ *snapshot, add func(string, string)) { add("", seconds(processStart)) }},
	{MetricTicks, "counter", func(s *snapshot, add func(string, string)) { add("", strconv.FormatUint(s.ticks, 10)) }},
	{MetricChecks, "counter", func(s *snapshot, add func(string, string)) {
		for _, c := range s.clients {
			for _, o := range rotation.Outcomes {
				add(label("client", c.name)+","+label("outcome", string(o)), strconv.FormatUint(c.outcomes[o], 10))
			}
		}
	}},
	perClient(MetricExpiry, func(c *clientRow) (string, bool) { return timestamp(c.m.ExpiresAt) }),
	perClient(MetricIssued, func(c *clientRow) (string, bool) { return timestamp(c.m.IssuedAt) }),
	{MetricRequests, "gauge", requestsToday},
	perClient(MetricDailyLimit, func(c *clientRow) (string, bool) { return strconv.Itoa(c.m.DailyLimit), true }),
	perClient(MetricLastSuccess, func(c *clientRow) (string, bool) { return seconds(c.healthy), !c.healthy.IsZero() }),
	perFlag(MetricBlocked, func(m *rotation.Metrics) *bool { return m.Blocked }),
	perFlag(MetricDegraded, func(m *rotation.Metrics) *bool { return m.Degraded }),
	perFlag(MetricTokenLost, func(m *rotation.Metrics) *bool { return m.TokenLost }),
	{MetricState, "gauge", func(s *snapshot, add func(string, string)) {
		for _, c := range s.clients {
			if c.state == "" {
				continue
			}
			for _, h := range rotation.Healths {
				add(label("client", c.name)+","+label("state", string(h)), flag(h == c.state))
			}
		}
	}},
	perClient(MetricNextCheck, func(c *clientRow) (string, bool) { return seconds(c.nextLook), !c.nextLook.IsZero() }),
	{MetricReady, "gauge", func(s *snapshot, add func(string, string)) { add("", flag(s.ready)) }},
}

// perClient is a gauge with one sample per client whose value is known.
func perClient(name string, value func(c *clientRow) (string, bool)) family {
	return family{name, "gauge", func(s *snapshot, add func(string, string)) {
		for i := range s.clients {
			if v, ok := value(&s.clients[i]); ok {
				add(label("client", s.clients[i].name), v)
			}
		}
	}}
}

// perFlag is a per-client 0/1 gauge; absent while the flag is not known (before the first read).
func perFlag(name string, value func(m *rotation.Metrics) *bool) family {
	return perClient(name, func(c *clientRow) (string, bool) {
		if v := value(&c.m); v != nil {
			return flag(*v), true
		}
		return "", false
	})
}

// timestamp formats a time that may not be known.
func timestamp(t *time.Time) (string, bool) {
	if t == nil {
		return "", false
	}
	return seconds(*t), true
}

// requestsToday samples each API client's count of today's requests, where it is known.
func requestsToday(s *snapshot, add func(string, string)) {
	for _, c := range s.clients {
		for _, v := range c.m.PerAPIClient {
			add(label("client", c.name)+","+label("api_client", strconv.Itoa(v.APIClient)), strconv.Itoa(v.Requests))
		}
	}
}

func flag(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// metricHelp is each family's HELP text; docs/operations.md's metrics table says the same.
var metricHelp = map[string]string{
	MetricBuildInfo:    "The rotator's version and the Go version it was built with; the value is always 1.",
	MetricProcessStart: "When the process started, in Unix seconds.",
	MetricTicks:        "Ticks: rounds that looked at every client (start-up, each activation of the schedule, each reload).",
	MetricChecks:       "Checks of a client by this process, by outcome: rotated, not_due, busy, duplicate, limited, blocked, failed.",
	MetricExpiry:       "When the token in AWSCURRENT expires (valid_till), in Unix seconds; absent when it never expires or is not known.",
	MetricIssued:       "When the token in AWSCURRENT was issued, in Unix seconds; absent when not known.",
	MetricRequests:     "Requests to Clear counted today (UTC) against the daily limit, per API client, as last read from Secrets Manager (by any rotator).",
	MetricDailyLimit:   "The rotator's own limit of requests to Clear per API client and UTC day (ROTATOR_DAILY_LIMIT).",
	MetricLastSuccess:  "When the daemon last found the client healthy (state ok, expiring or in-flight), in Unix seconds.",
	MetricBlocked:      "1 while no rotation may call Clear: refused by Clear (401, 429), backing off after failures, or at the daily limit.",
	MetricDegraded:     "1 while two API clients are configured but only one may be asked, so a rotation revokes the token in use.",
	MetricTokenLost:    "1 while a token Clear issued was not stored (or a rotation was abandoned) and the token in AWSCURRENT may be revoked.",
	MetricState:        "The client's state as last read: 1 for the current one (ok, expiring, expired, no-token, blocked, limited, backing-off, in-flight, token-lost, degraded, unknown).",
	MetricNextCheck:    "When the daemon next looks at the client, in Unix seconds.",
	MetricReady:        "1 when /readyz answers 200: the first tick finished and every client's last read of Secrets Manager succeeded.",
}

// seconds formats t as Unix seconds with millisecond precision.
func seconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

// label renders name="value" with the exposition format's escapes.
func label(name, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return name + `="` + r.Replace(value) + `"`
}

// serveOps serves the ops endpoints on ln, capped and timed out as d.ops says, until the returned
// server is shut down.
func (d *daemon) serveOps(ln net.Listener) *http.Server {
	return ops.Serve(ln, d.handler(), d.ops, func(err error) { d.logger().Error("the ops listener stopped", "error", err) })
}

// opsService is the ops listener as a Service: it listens on addr when started.
type opsService struct {
	d    *daemon
	addr string
	// bound is the address actually bound: with port 0 (any free port) it is the only way to learn
	// where the probes must go. Empty until started.
	bound string
	srv   *http.Server
}

func (o *opsService) Start() error {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("ops listener (%s): %w; set it to another address, or empty to turn it off", config.EnvHTTPAddr, err)
	}
	o.srv, o.bound = o.d.serveOps(ln), ln.Addr().String()
	return nil
}

// Stop lets the requests under way finish, within ctx; then it closes whatever is still open.
func (o *opsService) Stop(ctx context.Context) error {
	if o.srv == nil {
		return nil
	}
	err := o.srv.Shutdown(ctx)
	if err != nil {
		o.srv.Close()
	}
	return err
}
