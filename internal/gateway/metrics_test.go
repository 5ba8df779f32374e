package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
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
		t.Skip("promtool is not installed")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
