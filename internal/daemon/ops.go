package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := d.ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, reason+"\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, d.metrics(time.Now()))
	})
	return mux
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

// metrics renders every metric family at now. Families come in a fixed order and clients sorted by
// name, so that successive scrapes diff cleanly. Every per-client value comes from the client's
// status as last read from Secrets Manager, whoever wrote it; a value that is not known (nothing
// read yet, a count of another UTC day) is left out, never shown as zero.
func (d *daemon) metrics(now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	family := func(name, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, metricHelp[name], name, typ)
	}
	sample := func(name, labels string, v string) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(&b, "%s%s %s\n", name, labels, v)
	}
	names := d.names()
	perClient := func(name, typ string, value func(e *entry) (string, bool)) {
		family(name, typ)
		for _, n := range names {
			if v, ok := value(d.entries[n]); ok {
				sample(name, label("client", n), v)
			}
		}
	}
	// status returns a client's status as last read, if any.
	status := func(e *entry) (*rotation.Status, bool) { return e.status, e.status != nil }
	flag := func(on bool) string {
		if on {
			return "1"
		}
		return "0"
	}

	family(MetricBuildInfo, "gauge")
	sample(MetricBuildInfo, label("version", buildVersion(d.opts.Version))+","+label("go_version", runtime.Version()), "1")
	family(MetricProcessStart, "gauge")
	sample(MetricProcessStart, "", seconds(processStart))
	family(MetricTicks, "counter")
	sample(MetricTicks, "", strconv.FormatUint(d.ticks, 10))

	family(MetricChecks, "counter")
	for _, n := range names {
		e := d.entries[n]
		for _, o := range rotation.Outcomes {
			sample(MetricChecks, label("client", n)+","+label("outcome", string(o)), strconv.FormatUint(e.outcomes[o], 10))
		}
	}
	perClient(MetricExpiry, "gauge", func(e *entry) (string, bool) {
		if st, ok := status(e); ok && st.ValidTill != nil {
			return seconds(*st.ValidTill), true
		}
		return "", false
	})
	perClient(MetricIssued, "gauge", func(e *entry) (string, bool) {
		if st, ok := status(e); ok && st.IssuedAt != nil {
			return seconds(*st.IssuedAt), true
		}
		return "", false
	})
	family(MetricRequests, "gauge")
	today := timing.Day(now)
	for _, n := range names {
		e := d.entries[n]
		st, ok := status(e)
		if !ok || timing.Day(e.readAt) != today {
			continue // the count last read is of another day: today's is not known
		}
		for _, v := range st.APIClients {
			if v.RequestsToday != nil {
				sample(MetricRequests, label("client", n)+","+label("api_client", strconv.Itoa(v.Slot)), strconv.Itoa(*v.RequestsToday))
			}
		}
	}
	perClient(MetricDailyLimit, "gauge", func(e *entry) (string, bool) { return strconv.Itoa(e.key.DailyLimit), true })
	perClient(MetricLastSuccess, "gauge", func(e *entry) (string, bool) { return seconds(e.healthy), !e.healthy.IsZero() })
	perClient(MetricBlocked, "gauge", func(e *entry) (string, bool) {
		st, ok := status(e)
		return flag(ok && st.BlockedReason != nil), ok
	})
	perClient(MetricDegraded, "gauge", func(e *entry) (string, bool) {
		st, ok := status(e)
		return flag(ok && st.Degraded), ok
	})
	perClient(MetricTokenLost, "gauge", func(e *entry) (string, bool) {
		st, ok := status(e)
		return flag(ok && (st.State == rotation.HealthTokenLost || st.TokenLost != nil)), ok
	})
	family(MetricState, "gauge")
	for _, n := range names {
		cur := d.entries[n].state()
		if cur == "" {
			continue
		}
		for _, h := range rotation.Healths {
			sample(MetricState, label("client", n)+","+label("state", string(h)), flag(h == cur))
		}
	}
	perClient(MetricNextCheck, "gauge", func(e *entry) (string, bool) {
		if e.checked.IsZero() {
			return "", false
		}
		at := d.tickAt
		if w := e.wake(); !w.IsZero() && w.Before(at) {
			at = w
		}
		return seconds(at), true
	})
	family(MetricReady, "gauge")
	ok, _ := d.readyLocked()
	sample(MetricReady, "", flag(ok))
	d.push.stats.WriteMetrics(&b)
	return b.String()
}

// metricHelp is each family's HELP text; the README's metrics table says the same.
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
	// Push delivery's families are written by notify.Stats; their help is its own.
	notify.MetricFailures:    notify.HelpFailures,
	notify.MetricFailing:     notify.HelpFailing,
	notify.MetricLastFailure: notify.HelpLastFailure,
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

// opsLimits bound what clients of the ops port can hold. An idle keep-alive connection holds a file
// descriptor; without an idle timeout and a connection cap, a few dozen of them can leave the
// rotator none for Secrets Manager and Clear, and the token expires.
type opsLimits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
	maxConns                      int
}

// defaultOpsLimits suit probes and scrapes: their requests are a line and their answers small.
var defaultOpsLimits = opsLimits{
	readHeader:     5 * time.Second,
	read:           10 * time.Second,
	write:          10 * time.Second,
	idle:           30 * time.Second,
	maxHeaderBytes: 8 << 10,
	maxConns:       16,
}

// serveOps serves the ops endpoints on ln, capped and timed out as d.ops says, until the returned
// server is shut down.
func (d *daemon) serveOps(ln net.Listener) *http.Server {
	srv := &http.Server{
		Handler:           d.handler(),
		ReadHeaderTimeout: d.ops.readHeader,
		ReadTimeout:       d.ops.read,
		WriteTimeout:      d.ops.write,
		IdleTimeout:       d.ops.idle,
		MaxHeaderBytes:    d.ops.maxHeaderBytes,
	}
	go func() {
		if err := srv.Serve(limitListener(ln, d.ops.maxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger().Error("the ops listener stopped", "error", err)
		}
	}()
	return srv
}

// limitListener returns a listener that holds at most n connections open at once. A connection
// beyond that is closed as soon as it is accepted, rather than left waiting in the kernel's
// backlog: its client learns at once, and it costs a descriptor only for that instant.
func limitListener(ln net.Listener, n int) net.Listener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, max(n, 1))}
}

type limitedListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			c.Close()
		}
	}
}

// limitedConn gives its slot back when it is closed, once however often Close is called.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
