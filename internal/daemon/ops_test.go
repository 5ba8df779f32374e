package daemon

import (
	"bufio"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/ops"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// sampleLine is one sample of the text exposition format: a name, optional labels, a number.
var sampleLine = regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+]+)$`)

// /metrics is well-formed: every family has one HELP and one TYPE line before its samples, families
// do not interleave, two scrapes without a check in between are identical, and the values match the
// tokens in Secrets Manager. Unknown values are absent, never zero.
func TestMetricsExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		// Push delivery wired as rotator run wires it: its families follow the daemon's own.
		a, opts := h.app(h.client("hourly", time.Hour, 48), h.client("forever", 0, 10)), Options{}
		NewPush(a).Wire(&opts)
		h.start(a, opts)
		time.Sleep(time.Minute)
		code, body := h.get("/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics = %d", code)
		}
		if _, again := h.get("/metrics"); again != body {
			t.Error("two scrapes differ")
		}
		var families []string
		typed := map[string]bool{}
		for line := range strings.SplitSeq(strings.TrimSuffix(body, "\n"), "\n") {
			switch {
			case strings.HasPrefix(line, "# HELP "):
				name := strings.Fields(line)[2]
				if slices.Contains(families, name) {
					t.Errorf("family %s described twice", name)
				}
				families = append(families, name)
			case strings.HasPrefix(line, "# TYPE "):
				f := strings.Fields(line)
				if len(f) != 4 || f[2] != families[len(families)-1] || (f[3] != "gauge" && f[3] != "counter") {
					t.Errorf("bad TYPE line %q", line)
				}
				typed[f[2]] = true
			default:
				m := sampleLine.FindStringSubmatch(line)
				if m == nil {
					t.Errorf("malformed sample %q", line)
					continue
				}
				if m[1] != families[len(families)-1] || !typed[m[1]] {
					t.Errorf("sample %q outside its family", line)
				}
			}
		}
		want := []string{MetricBuildInfo, MetricProcessStart, MetricTicks, MetricChecks, MetricExpiry, MetricIssued,
			MetricRequests, MetricDailyLimit, MetricLastSuccess, MetricBlocked, MetricDegraded, MetricTokenLost,
			MetricState, MetricNextCheck, MetricReady, notify.MetricFailures, notify.MetricFailing, notify.MetricLastFailure}
		if !slices.Equal(families, want) {
			t.Errorf("families\n  %v\nwant\n  %v", families, want)
		}

		tok, _ := h.current("hourly")
		for series, want := range map[string]string{
			`clear_rotator_build_info{version="test-1.0",go_version="` + runtime.Version() + `"}`: "1",
			`process_start_time_seconds`:                                     seconds(processStart),
			`clear_rotator_token_expiry_timestamp_seconds{client="hourly"}`:  seconds(*tok.ValidTill),
			`clear_rotator_token_expiry_timestamp_seconds{client="forever"}`: "",
			`clear_rotator_token_issued_timestamp_seconds{client="forever"}`: seconds(day0),
			`clear_rotator_requests_today{client="hourly",api_client="1"}`:   "1",
			`clear_rotator_daily_limit{client="forever"}`:                    "10",
			`clear_rotator_checks_total{client="hourly",outcome="rotated"}`:  "1",
			`clear_rotator_checks_total{client="hourly",outcome="failed"}`:   "0",
			`clear_rotator_last_success_timestamp_seconds{client="hourly"}`:  seconds(day0),
			`clear_rotator_blocked{client="hourly"}`:                         "0",
			`clear_rotator_degraded{client="hourly"}`:                        "0",
			`clear_rotator_token_lost{client="hourly"}`:                      "0",
			`clear_rotator_state{client="hourly",state="ok"}`:                "1",
			`clear_rotator_state{client="hourly",state="unknown"}`:           "0",
			`clear_rotator_next_check_timestamp_seconds{client="hourly"}`:    seconds(day0.Add(5 * time.Minute)),
			`clear_rotator_next_check_timestamp_seconds{client="forever"}`:   seconds(day0.Add(5 * time.Minute)),
			`clear_rotator_ticks_total`:                                      "1",
			`clear_rotator_ready`:                                            "1",
		} {
			if got := h.metric(series); got != want {
				t.Errorf("%s = %q, want %q", series, got, want)
			}
		}
		if n := strings.Count(body, `clear_rotator_state{client="hourly"`); n != len(rotation.Healths) {
			t.Errorf("%d state series for a client, want one per state (%d)", n, len(rotation.Healths))
		}
	})
}

// Before a client's first check nothing about it is known, and its metrics say nothing rather than
// zero.
func TestMetricsBeforeTheFirstCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.prepare(h.app(h.client("erp", time.Hour, 48)), Options{})
		_, body := h.get("/metrics")
		for _, family := range []string{MetricExpiry, MetricIssued, MetricRequests, MetricLastSuccess, MetricBlocked,
			MetricDegraded, MetricTokenLost, MetricState, MetricNextCheck} {
			if strings.Contains(body, family+"{") {
				t.Errorf("%s has a sample before any check:\n%s", family, body)
			}
		}
		if !strings.Contains(body, "clear_rotator_ready 0\n") {
			t.Error("ready is not 0 before the first tick")
		}
	})
}

func TestLabelEscaping(t *testing.T) {
	if got, want := label("client", `a"b\c`+"\n"), `client="a\"b\\c\n"`; got != want {
		t.Errorf("label = %s, want %s", got, want)
	}
	if got := seconds(time.Unix(1763769600, 250e6)); got != "1763769600.25" {
		t.Errorf("seconds = %s", got)
	}
	for in, want := range map[string]string{"clear-rotator v1.2.3 (go1.26.8)": "v1.2.3", "dev": "dev", "": "unknown"} {
		if got := buildVersion(in); got != want {
			t.Errorf("buildVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// The README's metrics table describes each family exactly as its HELP line does (issue 12: they
// disagreed), and lists every family.
func TestMetricHelpMatchesREADME(t *testing.T) {
	f, err := os.Open("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([a-z_]+)(?:\\{[a-z_,]+\\})?` \\| (gauge|counter|histogram) \\| (.*) \\|$")
	documented := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			documented[m[1]] = strings.ReplaceAll(m[3], "`", "")
		}
	}
	// The embedded gateway's families and push delivery's join the daemon's /metrics.
	served := maps.Clone(metricHelp)
	maps.Copy(served, gateway.MetricHelp)
	maps.Copy(served, notify.MetricHelp)
	for name, help := range served {
		if got, ok := documented[name]; !ok {
			t.Errorf("the README's metrics table lacks %s", name)
		} else if got != help {
			t.Errorf("%s: the README says\n  %s\nthe HELP line says\n  %s", name, got, help)
		}
	}
	for name := range documented {
		if _, ok := served[name]; !ok {
			t.Errorf("the README documents %s, which /metrics does not have", name)
		}
	}
}

// Issue 9 D3: clients of the ops port cannot hold more than its connection cap, a connection beyond
// the cap takes the place of the least recently used one, and idle keep-alive connections are closed after the idle timeout, so
// that the port can never take the descriptors rotation needs. The limits are shortened for the
// test; nothing here measures time, it waits for the closes.
func TestOpsListenerLimits(t *testing.T) {
	h := newHarness(t, "@every 5m")
	h.prepare(h.app(h.client("erp", time.Hour, 48)), Options{})
	d := h.d
	d.ops = ops.Limits{ReadHeader: time.Minute, Read: time.Minute, Write: time.Minute, Idle: 300 * time.Millisecond,
		MaxHeaderBytes: 1 << 10, MaxConns: 4}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := d.serveOps(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	// request sends one keep-alive GET /healthz on c and reads the answer.
	request := func(c net.Conn, br *bufio.Reader) error {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// A guard against a hang, not a measurement: every read below ends long before.
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c, bufio.NewReader(c)
	}
	// closed waits until the server closes c.
	closed := func(br *bufio.Reader) error {
		_, err := br.ReadByte()
		if err == nil {
			return errors.New("the server sent more bytes")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errors.New("the server did not close the connection")
		}
		return nil
	}

	// Fill the cap with keep-alive clients that made one request each and now sit idle.
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var idle []conn
	for range 4 {
		c, br := dial()
		if err := request(c, br); err != nil {
			t.Fatalf("a connection within the cap: %v", err)
		}
		idle = append(idle, conn{c, br})
	}
	// One more is served (issue 19 item 11: it was closed unanswered, so a full port starved the
	// probes), and the least recently used connection gives way to it.
	c, br := dial()
	if err := request(c, br); err != nil {
		t.Fatalf("a connection beyond the cap was not served: %v", err)
	}
	if err := closed(idle[0].br); err != nil {
		t.Fatalf("the least recently used connection: %v", err)
	}
	// The other idle ones are closed by the server after the idle timeout.
	for i, ic := range idle[1:] {
		if err := closed(ic.br); err != nil {
			t.Fatalf("idle connection %d: %v", i+1, err)
		}
	}
	// Their slots are free again: a new client is served. The server releases a slot just after
	// closing its connection, so the first attempts may still find the cap full.
	for attempt := 0; ; attempt++ {
		c, br := dial()
		err := request(c, br)
		c.Close()
		if err == nil {
			break
		}
		if attempt == 100 {
			t.Fatalf("no connection served after the idle ones were closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A header larger than the cap is refused.
	c, br = dial()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ops\r\nX-Big: "+strings.Repeat("a", 8<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("an oversized header got %v %v, want 431", resp, err)
	}
}

// The default limits are set, and the listener is capped, when the daemon serves its ops port.
func TestOpsDefaults(t *testing.T) {
	l := ops.DefaultLimits
	if l.ReadHeader <= 0 || l.Read <= 0 || l.Write <= 0 || l.Idle <= 0 || l.MaxHeaderBytes <= 0 || l.MaxConns <= 0 {
		t.Fatalf("an ops limit is unset: %+v", l)
	}
	d, err := newDaemon(Options{}, &app.App{Config: &config.Config{}, Engine: rotation.NewEngine(rotation.Engine{})})
	if err != nil {
		t.Fatal(err)
	}
	if d.ops != ops.DefaultLimits {
		t.Errorf("a new daemon's limits are %+v", d.ops)
	}
}

// Issue 19 item 11: connections that hold the ops port (silent, slowloris, idle keep-alive), three
// times its connection cap, do not keep the probes from being answered: 16 busy connections left 0
// of 20 probes answered, since every connection beyond the cap was closed unanswered. Two crowds:
// one from another address (another pod) that reconnects the instant it is closed, and one from
// the probes' own address that reconnects after a pause.
func TestProbesAnsweredUnderConnectionPressure(t *testing.T) {
	for name, crowd := range map[string]struct {
		from  net.Addr
		pause time.Duration
		// same: the crowd shares the probes' address. It cannot be told from them but by
		// behaviour, and on a loaded machine a probe may lose a race with a burst of reconnects;
		// what must never happen is what restarts the pod, probes of one path failing in a row
		// (deploy/kubernetes restarts after 3). A crowd from another address never wins.
		same bool
	}{
		"another address, reconnecting at once": {from: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}},
		"the probes' address":                   {pause: time.Second, same: true},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "@every 5m")
			h.prepare(h.app(h.client("erp", time.Hour, 48)), Options{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := h.d.serveOps(ln)
			t.Cleanup(func() { srv.Close() })
			addr := ln.Addr().String()

			p := rig.Press(t, addr, crowd.from, 3*ops.DefaultLimits.MaxConns, crowd.pause)
			time.Sleep(300 * time.Millisecond) // let the crowd take the port
			r := rig.Probes(addr, []string{"/healthz", "/readyz"}, 20, 20*time.Millisecond)
			p.Close()
			for _, e := range r.Errors {
				t.Log(e)
			}
			if crowd.same && (r.Run > 1 || r.Failed > r.Sent/10) || !crowd.same && r.Failed > 0 {
				t.Errorf("%d of %d probes unanswered under connection pressure, %d in a row", r.Failed, r.Sent, r.Run)
			}
		})
	}
}
