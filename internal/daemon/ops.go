package daemon

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Metric names. They are part of the operator contract (dashboards and alerts use them).
const (
	MetricBuildInfo   = "clear_rotator_build_info"
	MetricTicks       = "clear_rotator_ticks_total"
	MetricExpiry      = "clear_rotator_token_expiry_timestamp_seconds"
	MetricIssued      = "clear_rotator_token_issued_timestamp_seconds"
	MetricRequests    = "clear_rotator_requests_today"
	MetricDailyLimit  = "clear_rotator_daily_limit"
	MetricRotations   = "clear_rotator_rotations_total"
	MetricLastSuccess = "clear_rotator_last_success_timestamp_seconds"
	MetricBlocked     = "clear_rotator_blocked"
	MetricNextCheck   = "clear_rotator_next_check_timestamp_seconds"
)

// handler serves the ops endpoints:
//
//   - /healthz answers 200 "ok" while the process runs: a liveness probe must not fail because
//     Secrets Manager or Clear does, or an orchestrator would restart a healthy daemon.
//   - /readyz answers 200 once a check has finished and no client's last check failed to read or
//     write its secrets; 503 with the reason otherwise, and while shutting down.
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

// ready reports readiness and why.
func (d *daemon) ready() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closing:
		return false, "not ready: shutting down"
	case d.app == nil:
		return false, "not ready: no configuration loaded"
	case !d.firstDone:
		return false, "not ready: the first check has not finished"
	}
	var failed []string
	for _, name := range d.names() {
		if e := d.entries[name]; e.storeErr != "" {
			failed = append(failed, fmt.Sprintf("client %s: %s", name, e.storeErr))
		}
	}
	if len(failed) > 0 {
		const show = 5
		n, more := len(failed), ""
		if n > show {
			more = fmt.Sprintf("; and %d more", n-show)
			failed = failed[:show]
		}
		return false, fmt.Sprintf("not ready: Secrets Manager access failed for %d client(s): %s%s", n, strings.Join(failed, "; "), more)
	}
	return true, "ok"
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

// metrics renders every metric family at now. Families come in a fixed order and clients sorted by
// name, so that successive scrapes diff cleanly.
func (d *daemon) metrics(now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name, labels string, v string) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(&b, "%s%s %s\n", name, labels, v)
	}
	names := d.names()
	perClient := func(name, typ, help string, value func(e *entry) (string, bool)) {
		family(name, typ, help)
		for _, n := range names {
			if v, ok := value(d.entries[n]); ok {
				sample(name, label("client", n), v)
			}
		}
	}
	limits := map[string]int{}
	for _, c := range d.app.Clients {
		limits[c.Name] = c.DailyLimit
	}
	tick := d.nextTick(now)

	family(MetricBuildInfo, "gauge", "The rotator's version; the value is always 1.")
	sample(MetricBuildInfo, label("version", d.opts.Version), "1")
	family(MetricTicks, "counter", "Checks run: cron ticks, early wake-ups for a renewal due before the next tick, start-up and reloads.")
	sample(MetricTicks, "", strconv.FormatUint(d.ticks, 10))

	perClient(MetricExpiry, "gauge", "When the token in AWSCURRENT expires (valid_till), in Unix seconds; absent for tokens that never expire.",
		func(e *entry) (string, bool) {
			if !e.hasToken || e.validTill == nil {
				return "", false
			}
			return seconds(*e.validTill), true
		})
	perClient(MetricIssued, "gauge", "When Clear issued the token in AWSCURRENT, in Unix seconds.",
		func(e *entry) (string, bool) { return seconds(e.issuedAt), e.hasToken })
	perClient(MetricRequests, "gauge", "Requests to Clear counted against the client secret's daily limit on the current UTC day, as last seen.",
		func(e *entry) (string, bool) {
			if e.requestsDay != timing.Day(now) {
				return "0", true // the count resets at midnight UTC
			}
			return strconv.Itoa(e.requests), true
		})
	perClient(MetricDailyLimit, "gauge", "The rotator's own limit of requests to Clear per client secret and UTC day.",
		func(e *entry) (string, bool) { return strconv.Itoa(limits[e.key.Name]), true })

	family(MetricRotations, "counter", "Checks of a client by outcome: rotated, not_due, busy (another rotator is at it), limited (daily limit), blocked (refused by Clear or backing off), failed.")
	for _, n := range names {
		e := d.entries[n]
		for _, o := range rotation.Outcomes {
			sample(MetricRotations, label("client", n)+","+label("outcome", string(o)), strconv.FormatUint(e.outcomes[o], 10))
		}
	}
	perClient(MetricLastSuccess, "gauge", "When a check last found the client as it should be (rotated, not due, or being rotated by another rotator), in Unix seconds.",
		func(e *entry) (string, bool) { return seconds(e.lastSuccess), !e.lastSuccess.IsZero() })
	perClient(MetricBlocked, "gauge", "1 while the client may not call Clear: refused by Clear, backing off after failures, or at its daily limit.",
		func(e *entry) (string, bool) {
			if e.blocked {
				return "1", true
			}
			return "0", true
		})
	perClient(MetricNextCheck, "gauge", "When the daemon next looks at the client, in Unix seconds.",
		func(e *entry) (string, bool) {
			if e.checked.IsZero() {
				return "", false
			}
			// A client whose engine named no time is read at the next tick; any other waits for its
			// time (or the cache's maximum age), whatever the ticks in between.
			at := e.wakeAt(d.recheck)
			if e.next.IsZero() && tick.Before(at) {
				at = tick
			}
			return seconds(at), true
		})
	return b.String()
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
