package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/logging"
)

// TestAccessJSONIsSlogs pins the gateway's own encoding of an access line to what logging.New's
// JSON handler writes for the same record, byte for byte: the access log stays one format
// whichever path wrote a line. A line it declines (a string that needs escaping) goes through
// slog, so declining is always safe; accepting must be exact.
func TestAccessJSONIsSlogs(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	cases := []accessEntry{
		{time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC), "GET", "/api/ping", 200, 1500 * time.Microsecond, "default", false},
		{time.Date(2026, 12, 2, 12, 0, 0, 123456789, ist), "POST", "/einvoice/v2/generate", 401, 10*time.Second + 3, "erp-1", true},
		{time.Date(2026, 12, 2, 23, 59, 59, 100000000, time.UTC), "DELETE", "/", 503, 0, "", false},
		{time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), "PATCH", "/a<b>&c'd%20e;f=g", 599, -time.Second, "a.b_c-d", true},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), "OPTIONS", "*", 100, time.Hour, "x", false},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		s := func(n int) string {
			b := make([]byte, r.IntN(n))
			for i := range b {
				b[i] = byte(0x20 + r.IntN(0x5f))
			}
			return string(b)
		}
		cases = append(cases, accessEntry{time.Unix(r.Int64N(1<<35), r.Int64N(1e9)).In(ist), s(10), "/" + s(60), r.IntN(600),
			time.Duration(r.Int64()), s(20), r.IntN(2) == 0})
	}
	for _, c := range cases {
		got, ok := appendAccessJSON(nil, &c)
		if !ok && !strings.ContainsAny(c.method+c.path+c.client, `"\`) {
			t.Fatalf("declined a plain line: %+v", c)
		}
		if !ok {
			continue // a quote or a backslash: slog's to escape
		}
		var want bytes.Buffer
		rec := slog.NewRecord(c.at, slog.LevelInfo, accessMsg, 0)
		rec.AddAttrs(c.attrs()...)
		if err := logging.New(&want, slog.LevelInfo, logging.FormatJSON).Handler().Handle(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Fatalf("the gateway's access line differs from slog's:\n got %s\nwant %s", got, want.String())
		}
	}
	// Strings that need escaping, and years slog refuses, are left to slog.
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, path := range []string{"/a\"b", "/a\\b", "/\x00", "/\x7f", "/ü", "/\xff", "/\u2028"} {
		if _, ok := appendAccessJSON(nil, &accessEntry{at: now, method: "GET", path: path, client: "c"}); ok {
			t.Errorf("took path %q, which needs escaping", path)
		}
	}
	if _, ok := appendAccessJSON(nil, &accessEntry{at: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), method: "GET", path: "/"}); ok {
		t.Error("took a year slog refuses")
	}
	if _, ok := appendAccessJSON(nil, &accessEntry{method: "GET", path: "/"}); ok {
		t.Error("took the zero time, which slog leaves out")
	}
}
