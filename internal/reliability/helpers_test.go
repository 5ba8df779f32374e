package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }

// t0 is when the fake clock of the in-process tests on the wire starts.
var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// wired is one client's world for the in-process tests on the wire: a rig.World on a fake clock
// whose engines reach moto through the real SDK client with faults injected on the wire (faults),
// and the configured client the tests rotate.
type wired struct {
	*rig.World
	faults *awsFaults
	client *rotation.Client
}

func newWired(t *testing.T, lifetime time.Duration) *wired {
	t.Helper()
	f := newAWSFaults()
	w := rig.New(t, rig.Options{Clock: fake.NewClock(t0), Lifetime: lifetime, SMOptions: []func(*secretsmanager.Options){onTheWire(f)}})
	return &wired{World: w, faults: f, client: w.Client()}
}

// onTheWire sends an SDK client's calls through f. The SDK's own retries stay on (three
// attempts); only their pauses are shortened, so that a fault that outlasts them costs
// milliseconds instead of seconds.
func onTheWire(f *awsFaults) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		o.HTTPClient = &http.Client{Transport: f}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxBackoff = 20 * time.Millisecond })
	}
}

// engine returns an engine on the world's faulted client.
func (r *wired) engine(owner string) *rotation.Engine {
	return r.engineOn(owner, r.API)
}

// steady returns an engine on the world's client for the work around a faulted attempt: the seed,
// the recovery, a rival that takes over, status reads. Nothing faults its calls, so its store
// bound is 5 s rather than the faulted engines' faultedStoreTimeout: under make test (three packages at once
// on two cores, moto_server among them) an unfaulted call has taken over a second, and the test
// then failed in its set-up instead of checking anything.
func (r *wired) steady(owner string) *rotation.Engine {
	e := r.engineWith(owner, r.API, steadyStoreTimeout)
	e.ClearTimeout = steadyClearTimeout
	return e
}

// The steady engine's bounds: its calls are not faulted, so the bounds only need to hold under a
// loaded make test. At the faulted engines' 500 ms Clear timeout, an unfaulted recovery request
// timed out once under make test with other work on the machine (TestClearFaults/issued-then-500);
// at 3 s, the seed rotation's 10 s deadline no longer left room to claim after slow reads (the
// engine claims only with ClearTimeout plus 5 s left). 1 s leaves 4 s for the reads.
const (
	steadyStoreTimeout = 5 * time.Second
	steadyClearTimeout = time.Second
)

// engineOn returns the world's engine on api: a store.API (wrapped in a store whose calls give up
// after faultedStoreTimeout) or a rotation.Store. Its Clear timeout is short, since the engine
// claims only when the caller's deadline leaves room for a Clear request and a token write
// (ClearTimeout plus 5 s).
func (r *wired) engineOn(owner string, api any) *rotation.Engine {
	return r.engineWith(owner, api, faultedStoreTimeout)
}

// faultedStoreTimeout is the store bound of an engine whose calls are faulted: the production
// bound of 20 s scaled down, so that a held request ends soon. It bounds that engine's unfaulted
// calls too, which under make test (three packages at once on two cores, a few dozen cases on one
// moto_server) have taken over a second: at 1 s, a read before the faulted step timed out now and
// then, and the case failed before its fault was reached.
const faultedStoreTimeout = 2 * time.Second

func (r *wired) engineWith(owner string, api any, storeTimeout time.Duration) *rotation.Engine {
	e := r.Engine(owner)
	switch a := api.(type) {
	case rotation.Store:
		e.Store = a
	case store.API:
		sm := store.New(a)
		sm.Timeout = storeTimeout
		e.Store = sm
	}
	e.ClearTimeout = 500 * time.Millisecond
	return e
}

// faultedDeadline is the deadline of a faulted rotation: enough for the engine to claim (its
// ClearTimeout plus 5 s, after a held call of faultedStoreTimeout, and slack for slow reads: at
// 7 s, reads that took two seconds under make test left too little to claim), short enough that
// the write retries a persistent fault provokes end soon.
const faultedDeadline = 10 * time.Second

// runAll runs one subtest per case, all at once. The cases mostly wait (for holds, retries and
// deadlines), so running them side by side keeps the suite fast; t.Parallel would cap them at
// GOMAXPROCS.
func runAll[C any](t *testing.T, cases []C, name func(C) string, f func(*testing.T, C)) {
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { t.Run(name(c), func(t *testing.T) { f(t, c) }) })
	}
	wg.Wait()
}

// rotate runs one rotation with a deadline, as the daemon's tick or the Lambda gives one, and
// keeps its result for the leak scan.
func (r *wired) rotate(e *rotation.Engine, force bool, timeout time.Duration) rotation.Result {
	r.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r.faults.begin()
	res := e.Rotate(ctx, r.client, force)
	record(r.World, res)
	return res
}

// record gives a result to the leak scan.
func record(w *rig.World, res rotation.Result) {
	b, _ := json.Marshal(res)
	w.Record(string(b), res.Message)
	if res.Err != nil {
		w.Record(res.Err.Error(), fmt.Sprintf("%+v %#v", res.Err, res.Err))
	}
}

// state reads the ROTATOR_STATE document.
func state(w *rig.World) document.State {
	w.T.Helper()
	st, _, ok := w.State()
	if !ok {
		w.T.Fatal("there is no state document")
	}
	return st
}

// checkCount asserts the count invariant: the state's count for today equals the requests Clear
// received today plus the claims that never reached Clear.
func checkCount(w *rig.World, lostClaims int) {
	w.T.Helper()
	got := 0
	for _, a := range state(w).APIClients {
		got += a.RequestsOn(timing.Day(w.Now()))
	}
	if want := w.Emu.RequestsToday(w.Secrets[0]) + lostClaims; got != want {
		w.T.Fatalf("the state counts %d requests today; Clear received %d and %d claims never reached it (want %d)",
			got, w.Emu.RequestsToday(w.Secrets[0]), lostClaims, want)
	}
}

// checkHealthy asserts that the status shows a client with nothing pending: no rotation in
// progress, no block, no backoff, no error. (A successful rotation leaves its claim in the state
// document; the claim is complete because AWSCURRENT moved on, which Status takes into account.)
func (r *wired) checkHealthy(e *rotation.Engine) {
	r.T.Helper()
	s, err := e.Status(context.Background(), r.client)
	if err != nil {
		r.T.Fatal(err)
	}
	if s.InFlight != nil || s.BlockedUntil != nil || s.BlockedReason != nil || s.LastError != nil || !s.HasToken || !s.State.OK() || s.TokenLost != nil {
		r.T.Fatalf("status after recovery: state %s, in flight %v, blocked %v, last error %v, has token %v",
			s.State, s.InFlight != nil, deref(s.BlockedReason), deref(s.LastError), s.HasToken)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// seed makes the first rotation, then moves the clock to when the token is due (45 minutes into
// a one-hour token; due at 40).
func (r *wired) seed() (document.Token, string) {
	r.T.Helper()
	res := r.rotate(r.steady("seed"), false, 10*time.Second)
	expect(r.T, res, rotation.Rotated)
	tok, id := r.MustCurrent()
	r.Clock.Advance(45 * time.Minute)
	return tok, id
}

func expect(t testing.TB, r rotation.Result, want rotation.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %q (%s), want %q", r.Outcome, r.Message, want)
	}
}

// slowBody answers the token route once with the emulator's answer, but sends the body a byte at
// a time with a pause between bytes: headers arrive at once, the body takes len(body)*pause. Later
// requests go to the emulator unchanged.
func slowBody(emu http.Handler, pause time.Duration) http.Handler {
	var once atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if once.Swap(true) {
			emu.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, req)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		fl, _ := w.(http.Flusher)
		for _, b := range rec.Body.Bytes() {
			if _, err := w.Write([]byte{b}); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-req.Context().Done():
				return
			case <-time.After(pause):
			}
		}
	})
}
