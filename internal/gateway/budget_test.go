package gateway_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// The bodies buffered for a replay share one budget: a body that does not fit in what is left of
// it, while others are held, is streamed as one over the replay limit is (its 401 passes through);
// the budget is given back on every path, and a gateway that replaces another (a reload) shares
// its predecessor's.
func TestBufferedBodiesShareOneBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *gateway.Options) { o.ReplayLimit, o.BodyBudget = 1000, 1500 })
	old, next := f.rotate(), f.rotate()
	arrived, release := make(chan struct{}), make(chan struct{})
	attempts := map[string]int{}
	// Clear under /base/budget/: /hold keeps its caller until released; any other path refuses
	// the old token, and the rotator stores the next one the moment Clear refuses: a request whose
	// body was buffered is replayed at once, one streamed gets the 401.
	f.w.Handle("/base/budget/", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/hold") {
			arrived <- struct{}{}
			<-release
			io.WriteString(rw, "held")
			return
		}
		attempts[r.URL.Path]++ // one request at a time reaches this
		if r.Header.Get(clear.HeaderAuthToken) == old.Value.Reveal() {
			f.h.Set(next)
			rw.WriteHeader(http.StatusUnauthorized)
			io.WriteString(rw, `{"errors":[{"error_code":"CLI-TOK-002"}]}`)
			return
		}
		io.WriteString(rw, "ok")
	}))
	reloaded, err := gateway.New(gateway.Options{Clients: []gateway.Client{{Name: "erp", BaseURL: f.w.ClearURL + "/base", Source: f.h}},
		Transport: f.w.Transport(), ReplayLimit: 1000, BodyBudget: 1 << 30, Continues: f.gw})
	if err != nil {
		t.Fatal(err)
	}
	post := func(gw *gateway.Gateway, path string, body io.Reader) *httptest.ResponseRecorder {
		t.Helper()
		f.h.Rewind(old)
		r := httptest.NewRequest(http.MethodPost, path, body)
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, r)
		return rec
	}
	replayed := func(gw *gateway.Gateway, path string, body io.Reader, held int64) {
		t.Helper()
		if rec := post(gw, path, body); rec.Code != http.StatusOK || attempts["/base"+path] != 2 {
			t.Errorf("%s: %d %q after %d attempts; want 200 after a replay", path, rec.Code, rec.Body, attempts["/base"+path])
		}
		if n := gateway.BufferedBytes(f.gw); n != held {
			t.Errorf("after %s, %d bytes of the budget are taken, want %d", path, n, held)
		}
	}

	held := make(chan *httptest.ResponseRecorder, 1)
	f.h.Rewind(old)
	go func() {
		r := httptest.NewRequest(http.MethodPost, "/budget/hold", bytes.NewReader(make([]byte, 1000)))
		rec := httptest.NewRecorder()
		f.gw.ServeHTTP(rec, r)
		held <- rec
	}()
	select { // 1000 of the 1500 bytes are taken until /hold is answered
	case <-arrived:
	case rec := <-held:
		t.Fatalf("/hold was answered before it reached Clear: %d %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		name string
		gw   *gateway.Gateway
		body io.Reader
	}{
		{"/budget/known-length", f.gw, bytes.NewReader(make([]byte, 1000))},
		{"/budget/chunked", f.gw, io.MultiReader(strings.NewReader(strings.Repeat("x", 600)), strings.NewReader(strings.Repeat("y", 400)))},
		{"/budget/reloaded", reloaded, bytes.NewReader(make([]byte, 1000))},
	} {
		rec := post(tc.gw, tc.name, tc.body)
		if rec.Code != http.StatusUnauthorized || attempts["/base"+tc.name] != 1 {
			t.Errorf("%s, while the budget is taken: %d after %d attempts; want Clear's 401, sent once", tc.name, rec.Code, attempts["/base"+tc.name])
		}
	}
	// Each was streamed for want of budget, not for its size, and the operator can tell.
	f.wantMetric(`clear_rotator_gateway_streamed_bodies_total{client="erp",reason="budget"}`, "3")
	f.wantMetric(`clear_rotator_gateway_streamed_bodies_total{client="erp",reason="size"}`, "0")
	// What fits is still buffered.
	replayed(reloaded, "/budget/small", strings.NewReader(strings.Repeat("s", 400)), 1000)
	close(release)
	if rec := <-held; rec.Code != http.StatusOK {
		t.Fatalf("/hold: %d", rec.Code)
	}
	if n := gateway.BufferedBytes(f.gw); n != 0 {
		t.Fatalf("after /hold was answered, %d bytes of the budget are still taken", n)
	}

	// Given back on every path: a replay (above), a body over the limit, a body that breaks off,
	// a 401 passed through, Clear unreachable, no live token.
	replayed(f.gw, "/budget/after-hold", bytes.NewReader(make([]byte, 1000)), 0)
	post(f.gw, "/budget/over-limit", io.MultiReader(strings.NewReader(strings.Repeat("z", 999)), strings.NewReader("zz")))
	if rec := post(f.gw, "/budget/broken", io.MultiReader(strings.NewReader("partial"), errReader{})); rec.Code != http.StatusBadRequest {
		t.Errorf("a body that breaks off: %d", rec.Code)
	}
	// Sharing the budget: a gateway that cannot reach Clear, then holds no live token.
	down, err := gateway.New(gateway.Options{Clients: []gateway.Client{{Name: "erp", BaseURL: f.w.ClearURL + "/base", Source: f.h}},
		Transport: failing{}, ReplayLimit: 1000, Hold: time.Millisecond, Continues: f.gw})
	if err != nil {
		t.Fatal(err)
	}
	if rec := post(down, "/budget/unreachable", bytes.NewReader(make([]byte, 1000))); rec.Code != http.StatusBadGateway {
		t.Errorf("Clear unreachable: %d", rec.Code)
	}
	expired := f.rotate()
	past := time.Now().Add(-time.Hour)
	expired.ValidTill = &past
	f.h.Set(expired)
	rec := httptest.NewRecorder()
	down.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/budget/no-token", bytes.NewReader(make([]byte, 1000))))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("no live token: %d", rec.Code)
	}
	replayed(f.gw, "/budget/after-errors", bytes.NewReader(make([]byte, 1000)), 0)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("the caller went away") }

// A replay limit no one would set still leaves the budget whole and the body delivered: the guard
// holds for absurd input (limit+1 overflows).
func TestAnAbsurdReplayLimitStillDelivers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *gateway.Options) { o.ReplayLimit = math.MaxInt64 })
	f.h.Set(f.rotate())
	body := io.MultiReader(strings.NewReader("chunked "), strings.NewReader("body")) // no length
	if rec := f.do(httptest.NewRequest(http.MethodPost, "/v1/x", body)); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got := f.up.requests(); len(got) != 1 || string(got[0].Body) != "chunked body" {
		t.Fatalf("Clear got %d requests", len(got))
	}
	if n := gateway.BufferedBytes(f.gw); n != 0 {
		t.Errorf("%d bytes of the budget are still taken", n)
	}
}
