package daemon

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// sampleLine is one sample of the text exposition format: a name, optional labels, a number.
var sampleLine = regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+]+)$`)

// /metrics is well-formed: every family has one HELP and one TYPE line before its samples, families
// do not interleave, two scrapes without a check in between are identical, and the values match the
// tokens in Secrets Manager.
func TestMetricsExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.start(h.app(h.client("hourly", time.Hour, 48), h.client("forever", 0, 10)), Options{})
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
		want := []string{MetricBuildInfo, MetricTicks, MetricExpiry, MetricIssued, MetricRequests, MetricDailyLimit,
			MetricRotations, MetricLastSuccess, MetricBlocked, MetricNextCheck}
		if !slices.Equal(families, want) {
			t.Errorf("families\n  %v\nwant\n  %v", families, want)
		}

		tok, _ := h.current("hourly")
		start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		for series, want := range map[string]string{
			`clear_rotator_build_info{version="test-1.0"}`:                     "1",
			`clear_rotator_token_expiry_timestamp_seconds{client="hourly"}`:    seconds(*tok.ValidTill),
			`clear_rotator_token_expiry_timestamp_seconds{client="forever"}`:   "",
			`clear_rotator_token_issued_timestamp_seconds{client="forever"}`:   seconds(start),
			`clear_rotator_requests_today{client="hourly"}`:                    "1",
			`clear_rotator_daily_limit{client="forever"}`:                      "10",
			`clear_rotator_rotations_total{client="hourly",outcome="rotated"}`: "1",
			`clear_rotator_rotations_total{client="hourly",outcome="failed"}`:  "0",
			`clear_rotator_last_success_timestamp_seconds{client="hourly"}`:    seconds(start),
			`clear_rotator_blocked{client="hourly"}`:                           "0",
			`clear_rotator_next_check_timestamp_seconds{client="hourly"}`:      seconds(start.Add(40 * time.Minute)),
			`clear_rotator_next_check_timestamp_seconds{client="forever"}`:     seconds(start.Add(5 * time.Minute)),
			`clear_rotator_ticks_total`:                                        "1",
		} {
			if got := h.metric(series); got != want {
				t.Errorf("%s = %q, want %q", series, got, want)
			}
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
}
