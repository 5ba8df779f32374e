package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// clearStub answers every request in memory: 200, or 401 while refuse is set; it counts them.
type clearStub struct {
	refuse atomic.Bool
	n      atomic.Int64
}

func (c *clearStub) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	code := http.StatusOK
	if c.refuse.Load() {
		code = http.StatusUnauthorized
	}
	return &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{}`)), Request: r}, nil
}

// TestProbeLoop: on a fake clock, the loop probes each client every interval, and within a second
// of a new token whatever the interval; it says once that the probe is not accepted, and once that
// it is again, not at every probe.
func TestProbeLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stub := &clearStub{}
		h := &Holder{}
		h.Set(Token{Value: clear.NewAccessToken("tok-1"), Version: "v1"})
		logs := &proctest.Buffer{}
		gw, err := New(Options{Clients: []Client{{Name: "erp", BaseURL: "https://clear.example", Source: h, ProbePath: "/v1/ping"}},
			Transport: stub, Hold: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		s := &Service{log: slog.New(slog.NewTextHandler(logs, nil))}
		s.set.Store(&clientSet{gw: gw, holders: map[string]*Holder{"erp": h}})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { s.probes(ctx, time.Minute) })

		time.Sleep(5*time.Minute + 500*time.Millisecond)
		synctest.Wait()
		if n := stub.n.Load(); n != 5 {
			t.Errorf("%d probes in 5 minutes at an interval of 1m, want 5", n)
		}
		h.Set(Token{Value: clear.NewAccessToken("tok-2"), Version: "v2"})
		time.Sleep(time.Second)
		synctest.Wait()
		if n := stub.n.Load(); n != 6 {
			t.Errorf("%d probes a second after a new token, want 6", n)
		}
		stub.refuse.Store(true)
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		stub.refuse.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel()
		wg.Wait()
		if n := strings.Count(logs.String(), "the probe was not accepted"); n != 1 {
			t.Errorf("the refusal was logged %d times, want once:\n%s", n, logs)
		}
		if n := strings.Count(logs.String(), "the probe is accepted again"); n != 1 {
			t.Errorf("the recovery was logged %d times, want once:\n%s", n, logs)
		}
		if v := gw.metrics.clients["erp"].probes[classIndex(401)].Load(); v != 3 {
			t.Errorf("%d refused probes counted, want 3", v)
		}
	})
}
