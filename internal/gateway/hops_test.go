package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// A message's Connection headers are read once, however many headers it has and however many
// names they list: checked again for each header, a request of 4,000 headers and a Connection header
// of 16,000 names (64 KiB) cost two seconds of CPU (an audit). Counted in allocations, which each
// reading of a lower-case name makes, rather than timed.
func TestConnectionHeadersAreReadOnce(t *testing.T) {
	const headers, names = 300, 300
	in := http.Header{}
	for i := range headers {
		in["X-H"+strconv.Itoa(i)] = []string{"v"}
	}
	in["X-Named"] = []string{"v"}
	in["Connection"] = []string{strings.Repeat("x-filler,", names) + "x-named"}
	a := &attempt{route: &route{header: "X-Cleartax-Auth-Token"}}
	var out http.Header
	allocs := testing.AllocsPerRun(5, func() { out = outHeader(in, a) })
	if allocs > 10*names {
		t.Errorf("outHeader made %.0f allocations for %d headers and %d names; want them read once", allocs, headers, names)
	}
	if _, ok := out["X-Named"]; ok || len(out) != headers+2 { // plus User-Agent and the token
		t.Errorf("the header named by Connection passed, or others did not: %d headers", len(out))
	}
	resp := http.Header{"Connection": in["Connection"]}
	for k, v := range in {
		resp[k] = v
	}
	var rec *httptest.ResponseRecorder
	allocs = testing.AllocsPerRun(5, func() {
		rec = httptest.NewRecorder()
		(&Gateway{}).copyResponse(rec, &http.Response{StatusCode: 200, Header: resp, Body: io.NopCloser(strings.NewReader("ok"))}, a)
	})
	if allocs > 10*names {
		t.Errorf("copyResponse made %.0f allocations for %d headers and %d names; want them read once", allocs, headers, names)
	}
	if h := rec.Result().Header; h.Get("X-Named") != "" || h.Get("X-H1") == "" {
		t.Errorf("the answer's header named by Connection passed, or another did not: %v", h)
	}
}
