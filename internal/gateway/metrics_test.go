package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// The exposition passes promtool's lint, when promtool is installed (make test installs it).
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.h.Set(f.rotate())
	f.do(httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	var b strings.Builder
	f.gw.WriteMetrics(&b)
	for _, name := range []string{
		`clear_rotator_gateway_requests_total{client="erp",code="2xx"} 1`,
		`clear_rotator_gateway_replays_total{client="erp"} 0`,
		`clear_rotator_gateway_hold_seconds_count{client="erp"} 0`,
		`clear_rotator_gateway_upstream_seconds_count{client="erp"} 1`,
		`clear_rotator_gateway_revoked_outside_total{client="erp"} 0`,
		`clear_rotator_gateway_key_refusals_total 0`,
		`clear_rotator_gateway_no_token_total{client="erp"} 0`,
	} {
		if !strings.Contains(b.String(), name+"\n") {
			t.Errorf("the exposition lacks %s", name)
		}
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		// Never a silent skip: make test installs promtool (scripts/test-deps.sh).
		t.Fatal("promtool is not installed (apt-get install prometheus, or run make test-deps)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// The README's metrics table describes each of the gateway's families exactly as its HELP line
// does, and lists every family (the daemon's test does the same for the daemon's).
func TestGatewayMetricHelpMatchesREADME(t *testing.T) {
	data, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(clear_rotator_gateway_[a-z_]+)(?:\\{[a-z_,]+\\})?` \\| (?:gauge|counter|histogram) \\| (.*) \\|$")
	documented := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			documented[m[1]] = strings.ReplaceAll(m[2], "`", "")
		}
	}
	for name, help := range gateway.MetricHelp {
		if got, ok := documented[name]; !ok {
			t.Errorf("the README's metrics table lacks %s", name)
		} else if got != help {
			t.Errorf("%s: the README says\n  %s\nthe HELP line says\n  %s", name, got, help)
		}
	}
	for name := range documented {
		if _, ok := gateway.MetricHelp[name]; !ok {
			t.Errorf("the README documents %s, which the gateway does not export", name)
		}
	}
}
