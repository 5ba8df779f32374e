package cleartoken

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/apicall"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// The tests of this file come from a review of the session that taught the Source to tell calls
// apart (cd6c13e, 979595a): a call was taken for one "Clear refuses for a reason of its own" on
// evidence that does not show it, and from then on got its 401 at once.

// pinger calls ping through client every half second from start until end, and records the
// times (since start) of the calls sent after from that did not get 200.
func pinger(t *testing.T, wg *sync.WaitGroup, client *http.Client, url string, start time.Time, from, end time.Duration) func() []time.Duration {
	var mu sync.Mutex
	var failed []time.Duration
	wg.Go(func() {
		for time.Since(start) < end {
			sent := time.Since(start)
			resp, err := client.Get(url)
			code := 0
			if err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			if code != http.StatusOK && sent > from {
				mu.Lock()
				failed = append(failed, sent)
				mu.Unlock()
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	return func() []time.Duration { mu.Lock(); defer mu.Unlock(); return failed }
}

// TestARotatorThatStoresLateIsWaitedForOnEveryCall: Clear revoked the token and the rotator's
// write of the next one lands 15 s later (Secrets Manager slow, the rotator retrying), after a
// whole wait. That wait ending with the revoked token still in AWSCURRENT says nothing about the
// calls refused during it: Clear accepted the token for no call since. Every call refused after
// the newer token is stored must get it, not a 401 at once until the cache's TTL runs out.
func TestARotatorThatStoresLateIsWaitedForOnEveryCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client := clearClient(t, noJitter)
		start := time.Now()
		tok2 := sm.w.Issue() // Clear revoked the token in AWSCURRENT
		var wg sync.WaitGroup
		const storedAt = 15 * time.Second
		wg.Go(func() { time.Sleep(storedAt); sm.put(tok2) })
		failed := pinger(t, &wg, client, sm.url(rig.PingPath), start, storedAt+time.Second, 90*time.Second)
		wg.Wait()
		if f := failed(); len(f) > 0 {
			t.Errorf("%d calls failed after the newer token was stored at %v: first sent at %v, last at %v", len(f), storedAt, f[0], f[len(f)-1])
		}
	})
}

// incidentClient is a Source and a client through its Transport to a Clear that refuses every
// call while incident is set (refusingAll).
func incidentClient(t *testing.T) (*secret, *http.Client, *atomic.Bool) {
	t.Helper()
	sm, clear := newClear(t)
	incident := &atomic.Bool{}
	src := NewSource(sm.api(), sm.id(), noJitter)
	return sm, &http.Client{Transport: NewTransport(src, refusingAll(clear, incident))}, incident
}

// post POSTs body to url through client and returns the answer's status, 0 when there is none.
func post(client *http.Client, url string, body io.Reader) int {
	req, _ := http.NewRequest(http.MethodPost, url, body)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// refusingAll is base, but that every call gets a 401 while on is set: an incident of Clear's.
func refusingAll(base http.RoundTripper, on *atomic.Bool) http.RoundTripper {
	return refusing(base, func(*http.Request) bool { return on.Load() })
}

// refusing is base, but that Clear answers 401 to the calls refused says, whatever their token.
func refusing(base http.RoundTripper, refused func(*http.Request) bool) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if refused(r) {
			if r.Body != nil {
				r.Body.Close()
			}
			return &http.Response{StatusCode: http.StatusUnauthorized, Body: io.NopCloser(bytes.NewReader(nil)), Request: r, Header: http.Header{}}, nil
		}
		return base.RoundTrip(r)
	})
}

// TestAnIncidentOfClearsMarksNoCall: Clear answers 401 to every call for 12 s, an incident of its
// own, which outlasts a whole wait. Twenty seconds after it ends, an ordinary rotation (the newer
// token stored 300 ms after the revocation) must be as invisible as any: the calls refused in the
// incident were refused with every other call, not for a reason of their own.
func TestAnIncidentOfClearsMarksNoCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, client, incident := incidentClient(t)
		start := time.Now()
		incident.Store(true)
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(12 * time.Second); incident.Store(false) })
		wg.Go(func() {
			time.Sleep(30 * time.Second)
			tok2 := sm.w.Issue()
			time.Sleep(300 * time.Millisecond)
			sm.put(tok2)
		})
		failed := pinger(t, &wg, client, sm.url(rig.PingPath), start, 13*time.Second, 90*time.Second)
		wg.Wait()
		if f := failed(); len(f) > 0 {
			t.Errorf("%d calls failed after the incident (the rotation at 30 s): first sent at %v, last at %v", len(f), f[0], f[len(f)-1])
		}
	})
}

// TestARefusalIsRetriedWithTheNewerTokenCachedMeanwhile: a call was refused in an incident of
// Clear's, and later, at a rotation, it is refused again after its answer took 2 s, by when
// another call's wait has put the newer token in the cache. Whatever was remembered of the call,
// it is retried with that token (Refused: "If the cache already holds another token, that is
// returned at once").
func TestARefusalIsRetriedWithTheNewerTokenCachedMeanwhile(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, clear := newClear(t)
		var incident, slowPing atomic.Bool
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == rig.PingPath && slowPing.Load() {
				time.Sleep(2 * time.Second)
			}
			return clear.RoundTrip(r)
		})
		src := NewSource(sm.api(), sm.id(), noJitter)
		client := &http.Client{Transport: NewTransport(src, refusingAll(base, &incident))}
		incident.Store(true)
		if resp, err := client.Get(sm.url(rig.PingPath)); err == nil {
			resp.Body.Close()
		}
		incident.Store(false)
		time.Sleep(20 * time.Second)
		tok2 := sm.w.Issue() // the rotation: Clear revoked the cached token
		slowPing.Store(true)
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(300 * time.Millisecond); sm.put(tok2) })
		code := 0
		wg.Go(func() {
			if resp, err := client.Get(sm.url(rig.PingPath)); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
		})
		time.Sleep(100 * time.Millisecond)
		req, _ := http.NewRequest(http.MethodPost, sm.url(rig.InvoicePath), bytes.NewReader([]byte(`{"invoice":1}`)))
		if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the invoice call: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		wg.Wait()
		if code != http.StatusOK {
			t.Errorf("the call refused after the cache held the newer token: %d, want 200", code)
		}
	})
}

// TestManyRoutesClearRefusesHoldNoCallOnceKnown: an ERP calls, in turn, nine APIs its API client
// lacks, one every 12 s. Once each has been waited on once, their refusals hold no other call:
// the calls remembered must not forget, to make room for the ninth, the one that comes next.
func TestManyRoutesClearRefusesHoldNoCallOnceKnown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, clear := newClear(t)
		var routes []string
		for i := range 9 {
			p := fmt.Sprintf("/_rig/api/not-in-scope-%c", 'a'+i)
			sm.w.Handle("GET "+p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"error_code":"PRODUCT-NOT-ENABLED"}]}`)
			}))
			routes = append(routes, p)
		}
		src := NewSource(sm.api(), sm.id(), noJitter)
		client := &http.Client{Transport: NewTransport(src, clear)}
		start := time.Now()
		const slot, rounds = 12 * time.Second, 4
		end := rounds * 9 * slot
		var wg sync.WaitGroup
		wg.Go(func() {
			for k := 0; time.Since(start) < end; k++ {
				time.Sleep(time.Duration(k)*slot - time.Since(start))
				if resp, err := client.Get(sm.url(routes[k%9])); err == nil {
					resp.Body.Close()
				}
			}
		})
		var mu sync.Mutex
		held := map[int]bool{} // the slots after the first round in which a call was held over a second
		wg.Go(func() {
			for time.Since(start) < end {
				sent := time.Since(start)
				resp, err := client.Get(sm.url(rig.PingPath))
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("a call at %v: %v %v", sent, resp, err)
				} else {
					resp.Body.Close()
				}
				if took := time.Since(start) - sent; took > time.Second && sent > 9*slot {
					mu.Lock()
					held[int(sent/slot)] = true
					mu.Unlock()
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
		wg.Wait()
		if len(held) > 0 {
			t.Errorf("after the first round, calls were held in %d of %d refusals", len(held), (rounds-1)*9)
		}
	})
}

// TestASecondRefusalOfATokenAWaitOutlivedHoldsNoOtherCaller: a program that calls Refused itself
// (not through the Transport) is refused the token for a call Clear refuses for its own reason;
// two whole waits show AWSCURRENT still holds it (one is no proof: a rotator that stores late
// outlasts it too). A refusal right after holds only its caller (Refused's documentation): a Get
// then is answered at once, with the token.
func TestASecondRefusalOfATokenAWaitOutlivedHoldsNoOtherCaller(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id(), noJitter)
		old, err := src.Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := src.Refused(t.Context(), old); err == nil {
				t.Fatal("a newer token, where AWSCURRENT never changed")
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = src.Refused(t.Context(), old) })
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		got, err := src.Token(t.Context())
		took := time.Since(start)
		wg.Wait()
		if err != nil || got != tok1 || took > time.Second {
			t.Errorf("a Get after a second refusal of the outlived token: %v after %s, want the token at once", err, took)
		}
	})
}

// TestEveryCallClearAcceptsIsForgottenAsRefused: Clear refuses every call for 12 s (an incident
// of its own), while the ERP pings and posts invoices; then it accepts both, many times. At the
// next rotation every invoice must get the newer token. Only the first call Clear accepted after
// the incident was forgotten as refused (the Source stopped listening to acceptances once it had
// one), so the invoice route stayed taken for one Clear refuses, and its refusals at the rotation
// got their 401 at once (a second review of 99fdb38).
func TestEveryCallClearAcceptsIsForgottenAsRefused(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, client, incident := incidentClient(t)
		start := time.Now()
		invoice := func() int { return post(client, sm.url(rig.InvoicePath), bytes.NewReader([]byte(`{"invoice":1}`))) }
		incident.Store(true)
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(12 * time.Second); incident.Store(false) })
		pinger(t, &wg, client, sm.url(rig.PingPath), start, time.Hour, 60*time.Second)
		wg.Go(func() { // invoices every 2 s, from during the incident on
			time.Sleep(2 * time.Second)
			for time.Since(start) < 60*time.Second {
				invoice()
				time.Sleep(2 * time.Second)
			}
		})
		wg.Wait()
		tok2 := sm.w.Issue() // the rotation: Clear revoked the cached token
		go func() { time.Sleep(300 * time.Millisecond); sm.put(tok2) }()
		rotation := time.Now()
		var failed []time.Duration
		for range 20 {
			if code := invoice(); code != http.StatusOK {
				failed = append(failed, time.Since(rotation))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if len(failed) > 0 {
			t.Errorf("%d of 20 invoices failed at the rotation, from %v to %v after it", len(failed), failed[0], failed[len(failed)-1])
		}
		time.Sleep(DefaultMaxWait + 2*time.Second)
	})
}

// TestARefusedCallerAfterOneWaitHoldsTheTransportsCalls: a program uses the Transport for most
// calls and Refused itself for one client of its own. That client was refused once for a reason
// of its own, a whole wait. At the next rotation it is the first refused: its wait must hold the
// Transport's calls, since one wait is no proof (a rotator that stores late outlasts it too), as it
// is not for the Transport's own calls (a second review of 99fdb38).
func TestARefusedCallerAfterOneWaitHoldsTheTransportsCalls(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, src, client := clearClient(t, noJitter)
		old, err := src.Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Refused(t.Context(), old); err == nil {
			t.Fatal("a newer token, where AWSCURRENT never changed")
		}
		time.Sleep(time.Minute)
		cur, _ := src.Get(t.Context())
		tok2 := sm.w.Issue() // the rotation: Clear revoked the token
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(time.Second); sm.put(tok2) })
		wg.Go(func() {
			if got, err := src.Refused(t.Context(), cur); err != nil || got.Value() != tok2 {
				t.Errorf("Refused at the rotation: %v", err)
			}
		})
		time.Sleep(100 * time.Millisecond)
		postUnreplayable(t, sm, client, &wg, "made during the wait of a Refused caller")
		time.Sleep(DefaultMaxWait + 2*time.Second)
	})
}

// TestACallRefusedOnlyInAnIncidentIsRetriedAtTheRotation: Clear refuses every call for 12 s, an
// incident of its own; the ERP pings throughout and posts one invoice during it. Clear accepts
// the pings after the incident, so the invoice route is taken for one Clear may refuse for its own
// reason, but its own refusal was never judged. At an ordinary rotation 20 s later, the invoice is
// the first call refused: it must wait for the newer token, not get its 401 at once, and no later
// invoice may fail (a second review of 99fdb38: 9 of 20 failed over 4.5 s). One whose body cannot
// be replayed gets its 401, being the first refused; the next ones must not.
//
// An incident over two whole waits, with the route refused in each, is no more evidence than one
// wait once Clear accepts the token again (a review found the invoices failing for about 5 s at
// the rotation, answered at once as refused whatever the token).
func TestACallRefusedOnlyInAnIncidentIsRetriedAtTheRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		incident time.Duration
		invoices []time.Duration // when the invoice route is called in the incident
	}{
		{"one wait", 12 * time.Second, []time.Duration{2 * time.Second}},
		{"two waits", 25 * time.Second, []time.Duration{2 * time.Second, 14 * time.Second}},
	} {
		for _, replayable := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s replayable %v", tc.name, replayable), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { incidentThenRotation(t, tc.incident, tc.invoices, replayable) })
			})
		}
	}
}

func incidentThenRotation(t *testing.T, incidentFor time.Duration, invoices []time.Duration, replayable bool) {
	sm, client, incident := incidentClient(t)
	invoice := func(body io.Reader) int { return post(client, sm.url(rig.InvoicePath), body) }
	start := time.Now()
	incident.Store(true)
	var wg sync.WaitGroup
	wg.Go(func() { time.Sleep(incidentFor); incident.Store(false) })
	pinger(t, &wg, client, sm.url(rig.PingPath), start, time.Hour, incidentFor+28*time.Second)
	for _, at := range invoices {
		wg.Go(func() { time.Sleep(at); invoice(strings.NewReader(`{"invoice":0}`)) })
	}
	wg.Wait()
	time.Sleep(20 * time.Second) // the ERP is quiet for a while
	tok2 := sm.w.Issue()         // the rotation: Clear revoked the cached token
	go func() { time.Sleep(300 * time.Millisecond); sm.put(tok2) }()
	var body io.Reader = bytes.NewReader([]byte(`{"invoice":1}`))
	if !replayable {
		body = io.NopCloser(body)
	}
	if code := invoice(body); replayable && code != http.StatusOK {
		t.Errorf("the invoice refused first at the rotation: %d, want 200 with the newer token", code)
	}
	rotation := time.Now()
	var failed []time.Duration
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		if code := invoice(strings.NewReader(`{"invoice":2}`)); code != http.StatusOK {
			failed = append(failed, time.Since(rotation))
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of 20 later invoices failed, from %v to %v after the rotation", len(failed), failed[0], failed[len(failed)-1])
	}
	time.Sleep(DefaultMaxWait)
}

// refusingInvoices is base, but that Clear refuses every invoice POST (the API client lacks the
// product).
func refusingInvoices(base http.RoundTripper) http.RoundTripper {
	return refusing(base, func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == rig.InvoicePath })
}

// TestTheWaitOfACallThatHoldsNoOtherHoldsNoGet: Clear refuses invoices (the API client lacks the
// product). After one whole wait and an accepted ping, an invoice's refusal waits itself, holding
// no other call; but a ping made once the cache's TTL has run out during that wait joined it, and
// was held up to the wait's end (a third review: 4.5 s, up to 10 s). It must be served the cached
// token: the wait is re-reading the secret anyway.
func TestTheWaitOfACallThatHoldsNoOtherHoldsNoGet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, clear := newClear(t)
		src := NewSource(sm.api(), sm.id(), noJitter)
		client := &http.Client{Transport: NewTransport(src, refusingInvoices(clear))}
		call := func(method, path string) time.Duration {
			start := time.Now()
			req, _ := http.NewRequest(method, sm.url(path), strings.NewReader(`{"invoice":0}`))
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
			return time.Since(start)
		}
		base := time.Now()
		call(http.MethodPost, rig.InvoicePath) // refused: a whole wait
		time.Sleep(time.Second)
		call(http.MethodGet, rig.PingPath) // accepted
		time.Sleep(65*time.Second - time.Since(base))
		var wg sync.WaitGroup
		wg.Go(func() { call(http.MethodPost, rig.InvoicePath) }) // its own wait, holding no other call
		time.Sleep(70500*time.Millisecond - time.Since(base))    // the cache's TTL has run out
		var worst time.Duration
		for time.Since(base) < 80*time.Second {
			worst = max(worst, call(http.MethodGet, rig.PingPath))
			time.Sleep(500 * time.Millisecond)
		}
		wg.Wait()
		if worst > time.Second {
			t.Errorf("a ping was held %v by the wait of a call that holds no other", worst)
		}
	})
}

// TestATakenCallRefusedFirstAtARotationHoldsCallsThatCannotBeRetried: a 12 s incident leaves the
// invoice route taken for refused (a whole wait, then Clear accepted pings), not proven. At the
// rotation the invoice is refused first, and waits itself; a non-replayable invoice made 100 ms
// later, before the newer token is stored at 300 ms, went out with the revoked token and got
// Clear's 401 (a third review's B2). A call that cannot be retried is held by such a wait; one
// that can goes out, and Clear's acceptance of it would end the wait.
func TestATakenCallRefusedFirstAtARotationHoldsCallsThatCannotBeRetried(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, client, incident := incidentClient(t)
		invoice := func(body io.Reader) int { return post(client, sm.url(rig.InvoicePath), body) }
		start := time.Now()
		incident.Store(true)
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(12 * time.Second); incident.Store(false) })
		pinger(t, &wg, client, sm.url(rig.PingPath), start, time.Hour, 40*time.Second)
		wg.Go(func() { time.Sleep(2 * time.Second); invoice(strings.NewReader(`{"invoice":0}`)) })
		wg.Wait()
		time.Sleep(20 * time.Second)
		tok2 := sm.w.Issue() // the rotation
		go func() { time.Sleep(300 * time.Millisecond); sm.put(tok2) }()
		var first, second int
		wg.Go(func() { first = invoice(strings.NewReader(`{"invoice":1}`)) })
		wg.Go(func() {
			time.Sleep(100 * time.Millisecond)
			second = invoice(io.NopCloser(strings.NewReader(`{"invoice":2}`)))
		})
		wg.Wait()
		if first != http.StatusOK || second != http.StatusOK {
			t.Errorf("at the rotation: the taken invoice %d, a non-replayable invoice 100 ms later %d; want 200 and 200", first, second)
		}
		time.Sleep(DefaultMaxWait)
	})
}

// TestATakenCallsWaitHoldsCallsThatCannotBeRetriedOnlyUntilClearAcceptsAnother: Clear refuses
// an API the API client lacks the product for. Once a whole wait has made that call taken for
// refused, its next refusal waits to be judged; the ERP's non-replayable invoices are held by that
// wait, but only until Clear accepts a ping sent after the refusal (half a second apart here), not
// for the wait's 10 s.
func TestATakenCallsWaitHoldsCallsThatCannotBeRetriedOnlyUntilClearAcceptsAnother(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client, notInScope := notInScopeClient(t, noJitter)
		outOfScope := func() int { code, _ := getTimed(client, sm.url(notInScope)); return code }
		start := time.Now()
		var wg sync.WaitGroup
		failed := pinger(t, &wg, client, sm.url(rig.PingPath), start, 0, 30*time.Second)
		outOfScope() // the first refusal holds every call for a whole wait; then Clear accepts pings
		time.Sleep(2 * time.Second)
		var slowest time.Duration
		var mu sync.Mutex
		wg.Go(func() {
			if code := outOfScope(); code != http.StatusUnauthorized {
				t.Errorf("the taken call: %d, want Clear's 401", code)
			}
		})
		for i := range 10 {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 50 * time.Millisecond)
				sent := time.Now()
				if code := post(client, sm.url(rig.InvoicePath), io.NopCloser(strings.NewReader(`{"invoice":1}`))); code != http.StatusOK {
					t.Errorf("a non-replayable invoice at %v: %d, want 200", time.Duration(i)*50*time.Millisecond, code)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(sent))
				mu.Unlock()
			})
		}
		wg.Wait()
		if slowest > time.Second {
			t.Errorf("a non-replayable invoice was held %v, want at most until the next ping's acceptance", slowest)
		}
		if f := failed(); len(f) > 0 {
			t.Errorf("%d pings failed, first at %v", len(f), f[0])
		}
	})
}

// TestAJudgingWaitHoldsCallsThatCannotBeRetriedBriefly: as above, but the ERP makes no call that
// can be sent again, only non-replayable invoices, every half second. Nothing then goes out to end
// the wait that judges the taken call: the invoices are held for judgeHold only, then sent, and
// Clear's acceptance of them ends the wait and proves the call, which later gets its 401 at once.
func TestAJudgingWaitHoldsCallsThatCannotBeRetriedBriefly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client, notInScope := notInScopeClient(t, noJitter)
		outOfScope := func() (int, time.Duration) { return getTimed(client, sm.url(notInScope)) }
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slowest time.Duration
		wg.Go(func() {
			for time.Since(start) < 30*time.Second {
				sent := time.Now()
				if code := post(client, sm.url(rig.InvoicePath), io.NopCloser(strings.NewReader(`{"invoice":1}`))); code != http.StatusOK {
					t.Errorf("a non-replayable invoice at %v: %d, want 200", sent.Sub(start), code)
				}
				if sent.Sub(start) > DefaultMaxWait+time.Second {
					mu.Lock()
					slowest = max(slowest, time.Since(sent))
					mu.Unlock()
				}
				time.Sleep(500 * time.Millisecond)
			}
		})
		outOfScope() // the first refusal holds every call for a whole wait
		time.Sleep(2 * time.Second)
		if code, took := outOfScope(); code != http.StatusUnauthorized || took > judgeHold+time.Second {
			t.Errorf("the taken call: %d after %v, want Clear's 401 once an invoice sent after it is accepted", code, took)
		}
		time.Sleep(time.Second)
		if code, took := outOfScope(); code != http.StatusUnauthorized || took > 0 {
			t.Errorf("the proven call: %d after %v, want Clear's 401 at once", code, took)
		}
		wg.Wait()
		if slowest > judgeHold+time.Second {
			t.Errorf("an invoice was held %v, want at most %v", slowest, judgeHold)
		}
	})
}

// TestACallClearRefusedWithTheLastTokenHoldsNoCallWithTheNext: Clear refuses an API the API client
// lacks the product for, whatever the token. With the first token its first refusal holds every
// call for a whole wait (it may be the rotation), and a later one is judged and proven. With each
// newer token, its first refusal held every call for a whole wait again (a second review: 10 s per
// route per token). A call proven with an earlier token is taken for refused with the next: its
// refusal waits to be judged, holding no call that can be retried.
func TestACallClearRefusedWithTheLastTokenHoldsNoCallWithTheNext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client, notInScope := notInScopeClient(t, noJitter)
		outOfScope := func() (int, time.Duration) { return getTimed(client, sm.url(notInScope)) }
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var held []time.Duration // pings held over a second after the first token's learning
		wg.Go(func() {
			for time.Since(start) < 100*time.Second {
				sent := time.Since(start)
				resp, err := client.Get(sm.url(rig.PingPath))
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("a ping at %v: %v %v", sent, resp, err)
				} else {
					resp.Body.Close()
				}
				if took := time.Since(start) - sent; took > time.Second && sent > 20*time.Second {
					mu.Lock()
					held = append(held, sent)
					mu.Unlock()
				}
				time.Sleep(500 * time.Millisecond)
			}
		})
		outOfScope() // holds every call for a whole wait
		time.Sleep(2 * time.Second)
		outOfScope() // judged by a ping's acceptance
		for _, rotation := range []time.Duration{30 * time.Second, 60 * time.Second} {
			time.Sleep(rotation - time.Since(start))
			sm.put(sm.w.Issue()) // the rotation: Clear revokes the token, the rotator stores the next
			time.Sleep(10 * time.Second)
			if code, took := outOfScope(); code != http.StatusUnauthorized || took > time.Second {
				t.Errorf("the call refused with the last token, %v after the rotation at %v: %d after %v, want Clear's 401 within a second", 10*time.Second, rotation, code, took)
			}
		}
		wg.Wait()
		if len(held) > 0 {
			t.Errorf("%d pings held over a second after the first token, first at %v", len(held), held[0])
		}
	})
}

// getTimed GETs url through client: the status (0 without an answer) and the time taken.
func getTimed(client *http.Client, url string) (int, time.Duration) {
	sent := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		return 0, time.Since(sent)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(sent)
}

// TestASequentialERPWaitsTwiceForAnAPIItLacks: an ERP worker that makes one call at a time (a batch
// job) calls an API its API client lacks, then a ping Clear accepts, every 20 s. Nothing is ever
// sent during a wait, so no acceptance judges the call; a fourth review found that once the first
// two fixes of this file counted two waits as proof only while Clear accepted nothing, every such
// call waited 10 s, for good (121 reads for 12 calls). A whole wait of the call's own, taken for
// refused, with no other call refused during it, proves it.
func TestASequentialERPWaitsTwiceForAnAPIItLacks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client, notInScope := notInScopeClient(t, noJitter)
		var took []time.Duration
		slow := 0
		for i := range 12 {
			code, d := getTimed(client, sm.url(notInScope))
			if code != http.StatusUnauthorized {
				t.Errorf("out-of-scope call %d: %d, want Clear's 401", i, code)
			}
			took = append(took, d)
			if i >= 2 && d > time.Second {
				slow++
			}
			if code, _ := getTimed(client, sm.url(rig.PingPath)); code != http.StatusOK {
				t.Errorf("ping %d: %d", i, code)
			}
			time.Sleep(20 * time.Second)
		}
		if slow > 0 {
			t.Errorf("%d of the out-of-scope calls after the first two waited over a second: %v", slow, took)
		}
	})
}

// TestAHealthCheckDoesNotUnproveAnAPIItLacks: an ERP calls only an API its API client lacks, every
// second, and a health check Clear accepts once a minute. Each acceptance made the route unproven
// again (the fourth review: every call of it held up to 10 s after each health check).
func TestAHealthCheckDoesNotUnproveAnAPIItLacks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client, notInScope := notInScopeClient(t, noJitter)
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var held []time.Duration
		for i := range 180 {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * time.Second)
				code, d := getTimed(client, sm.url(notInScope))
				if code != http.StatusUnauthorized {
					t.Errorf("call %d: %d, want Clear's 401", i, code)
				}
				if i > 45 && d > time.Second {
					mu.Lock()
					held = append(held, time.Duration(i)*time.Second)
					mu.Unlock()
				}
			})
		}
		wg.Go(func() {
			for _, at := range []time.Duration{30 * time.Second, 90 * time.Second, 150 * time.Second} {
				time.Sleep(at - time.Since(start))
				if code, _ := getTimed(client, sm.url(rig.PingPath)); code != http.StatusOK {
					t.Errorf("health check at %v: %d", at, code)
				}
			}
		})
		wg.Wait()
		if len(held) > 0 {
			t.Errorf("%d calls of the route after 45 s were held over a second, at %v", len(held), held)
		}
	})
}

// TestAnotherRoutesWaitDoesNotReproveAnIncident: the incident of the 'two waits' case above leaves
// the invoice route taken, not proven, once Clear accepts pings. Then the quiet ERP calls another
// API its API client lacks, once: its whole wait outlives the token again, which made the invoice
// route's two incident waits count as proof again (the fourth review's C2): a rotation a second
// later failed the invoices for up to knownRecheck.
func TestAnotherRoutesWaitDoesNotReproveAnIncident(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, client, incident := incidentClient(t)
		other := sm.productNotEnabled()
		invoice := func(body io.Reader) int { return post(client, sm.url(rig.InvoicePath), body) }
		start := time.Now()
		incident.Store(true)
		var wg sync.WaitGroup
		wg.Go(func() { time.Sleep(25 * time.Second); incident.Store(false) })
		pinger(t, &wg, client, sm.url(rig.PingPath), start, time.Hour, 53*time.Second)
		for _, at := range []time.Duration{2 * time.Second, 14 * time.Second} {
			wg.Go(func() { time.Sleep(at); invoice(strings.NewReader(`{"invoice":0}`)) })
		}
		wg.Wait()
		time.Sleep(20 * time.Second)
		getTimed(client, sm.url(other)) // a whole wait, holding every call: the token outlives it
		time.Sleep(time.Second)
		tok2 := sm.w.Issue() // the rotation
		go func() { time.Sleep(300 * time.Millisecond); sm.put(tok2) }()
		time.Sleep(100 * time.Millisecond)
		rotation := time.Now()
		var failed []time.Duration
		for range 20 {
			if code := invoice(strings.NewReader(`{"invoice":2}`)); code != http.StatusOK {
				failed = append(failed, time.Since(rotation))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if len(failed) > 0 {
			t.Errorf("%d of 20 invoices failed at the rotation, from %v to %v after it", len(failed), failed[0], failed[len(failed)-1])
		}
		time.Sleep(DefaultMaxWait)
	})
}

// gatedSM is a Secrets Manager whose next read, once armed, waits for release whatever its
// context: a read under way when a wait is ended, held open as long as a test needs.
type gatedSM struct {
	SecretsManager
	armed   atomic.Bool
	release chan struct{}
}

func (g *gatedSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if g.armed.CompareAndSwap(true, false) {
		<-g.release
	}
	return g.SecretsManager.GetSecretValue(ctx, in, opts...)
}

// TestARefusalAfterAnAcceptanceEndedTheWaitIsNotJudgedByIt: a call taken for refused waits to be
// judged, and Clear accepts a ping sent after it: that ends the wait, which answers its callers
// once its read under way returns. A refusal made in between (the rotation revoking the token, a
// moment after the acceptance) joined the ending wait, and was answered as the call's own refusal:
// its 401 at once, though the newer token was stored 300 ms later (the third review's B4).
func TestARefusalAfterAnAcceptanceEndedTheWaitIsNotJudgedByIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, clear := newClear(t)
		notInScope := sm.productNotEnabled()
		g := &gatedSM{SecretsManager: sm.api(), release: make(chan struct{})}
		src := NewSource(g, sm.id(), noJitter)
		client := &http.Client{Transport: NewTransport(src, clear)}
		ping := func() int { code, _ := getTimed(client, sm.url(rig.PingPath)); return code }
		getTimed(client, sm.url(notInScope)) // a whole wait, holding every call
		if code := ping(); code != http.StatusOK {
			t.Fatalf("ping: %d", code)
		}
		// The route is taken: its refusal waits to be judged, and that wait's first read is held.
		g.armed.Store(true)
		go getTimed(client, sm.url(notInScope))
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if code := ping(); code != http.StatusOK { // accepted: the wait is ending
			t.Fatalf("ping during the judging wait: %d", code)
		}
		tok2 := sm.w.Issue() // the rotation revokes the token
		go func() { time.Sleep(300 * time.Millisecond); sm.put(tok2) }()
		codes := make(chan int, 1)
		go func() { codes <- ping() }()
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		close(g.release)
		if code := <-codes; code != http.StatusOK {
			t.Errorf("a ping refused at the rotation, as the wait ended: %d, want 200 with the newer token", code)
		}
		time.Sleep(DefaultMaxWait)
	})
}

// TestAnAPIItLacksHoldsNoCallWithTokensShorterThanAWait: a busy ERP (a ping every 200 ms) also
// calls an API its API client lacks every second, and the token rotates every 5 s, the newer one
// stored 300 ms after the revocation. The route's first wait on each token ended with the next
// token, so it was never proven, nor learnt across tokens: every rotation held the pings for
// seconds (the fifth review's E4: 19 pings held 3 to 5 s). A call refused again when retried with
// the newer token is refused whatever the token: it is learnt, as the gateway learns such a route.
func TestAnAPIItLacksHoldsNoCallWithTokensShorterThanAWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, _, client, notInScope := notInScopeClient(t, noJitter)
		start := time.Now()
		const end = 120 * time.Second
		var wg sync.WaitGroup
		var mu sync.Mutex
		var held []time.Duration
		wg.Go(func() {
			for time.Since(start) < end {
				sent := time.Since(start)
				code, d := getTimed(client, sm.url(rig.PingPath))
				if code != http.StatusOK {
					t.Errorf("a ping at %v: %d", sent, code)
				}
				if sent > 25*time.Second && d > time.Second {
					mu.Lock()
					held = append(held, sent)
					mu.Unlock()
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
		wg.Go(func() {
			for time.Since(start) < end {
				if code, _ := getTimed(client, sm.url(notInScope)); code != http.StatusUnauthorized {
					t.Errorf("the API it lacks: %d, want Clear's 401", code)
				}
				time.Sleep(time.Second)
			}
		})
		wg.Go(func() {
			for k := 1; time.Since(start) < end; k++ {
				time.Sleep(time.Duration(k)*5*time.Second + 70*time.Millisecond - time.Since(start))
				tok := sm.w.Issue()
				time.Sleep(300 * time.Millisecond)
				sm.put(tok)
			}
		})
		wg.Wait()
		if len(held) > 0 {
			t.Errorf("%d pings after 25 s held over a second, first at %v", len(held), held[0])
		}
	})
}

// TestAnAcceptanceForgetsALearntCall: a call learnt refused whatever the token (its product was
// missing) is forgotten when Clear accepts it (the product enabled since). The Source looked at
// acceptances only while a wait or an outlived token gave it reason to, so a learnt call outlived
// them all and stayed learnt (the fifth review's E2).
func TestAnAcceptanceForgetsALearntCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, _, src, client := clearClient(t, noJitter)
		if code, _ := getTimed(client, sm.url(rig.PingPath)); code != http.StatusOK {
			t.Fatalf("ping: %d", code)
		}
		src.mu.Lock()
		src.learn(apicall.Call{Method: http.MethodGet, Path: rig.PingPath})
		src.updateWatching()
		src.mu.Unlock()
		if code, _ := getTimed(client, sm.url(rig.PingPath)); code != http.StatusOK {
			t.Fatalf("ping: %d", code)
		}
		src.mu.Lock()
		learnt := len(src.learnt)
		src.mu.Unlock()
		if learnt != 0 {
			t.Errorf("a learnt call Clear accepted is still learnt")
		}
	})
}

// TestAnIncidentDoesNotJudgeALearntCall: a call learnt refused whatever the token, whose product
// has been enabled since but which was not called again, is refused twice in an incident of
// Clear's, nothing else being sent. Two whole waits with no acceptance between them count once
// at the next acceptance; a judging wait of a call taken only as learnt proved it for good, and a
// rotation then failed its calls for up to knownRecheck (the fifth review's E2).
func TestAnIncidentDoesNotJudgeALearntCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, clear := newClear(t)
		route := liveRoute(sm, "/_rig/api/enabled-since")
		var incident atomic.Bool
		src := NewSource(sm.api(), sm.id(), noJitter)
		client := &http.Client{Transport: NewTransport(src, refusingAll(clear, &incident))}
		if code, _ := getTimed(client, sm.url(rig.PingPath)); code != http.StatusOK {
			t.Fatalf("ping: %d", code)
		}
		src.mu.Lock()
		src.learn(apicall.Call{Method: http.MethodGet, Path: route})
		src.updateWatching()
		src.mu.Unlock()
		start := time.Now()
		at := func(d time.Duration) { time.Sleep(d - time.Since(start)) }
		incident.Store(true)
		at(time.Second)
		getTimed(client, sm.url(route))
		at(13 * time.Second)
		getTimed(client, sm.url(route))
		at(25 * time.Second)
		incident.Store(false)
		at(30 * time.Second)
		if code, _ := getTimed(client, sm.url(rig.PingPath)); code != http.StatusOK {
			t.Fatalf("ping after the incident: %d", code)
		}
		at(40 * time.Second)
		rotateAndCall(t, sm, func() int { code, _ := getTimed(client, sm.url(route)); return code })
	})
}

// liveRoute mounts a GET route on the world's Clear that accepts a live token and refuses any
// other, and returns its path.
func liveRoute(sm *secret, path string) string {
	sm.w.Handle("GET "+path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sm.w.Emu.Live(r.Header.Get(Header)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	return path
}

// TestAnIncidentAcrossARotationProvesNoCall: a quiet ERP calls a route now and then, and a health
// check. An incident of Clear's runs from 1 s to 6 s, and a rotation revokes the token at 2 s (the
// newer one stored 300 ms later). The route, refused at 1 s, is retried with the newer token in the
// incident and refused again; refused again at 3.5 s, its wait is ended by the health check after
// the incident. That learnt the route, then confirmed it (the sixth review's F1): the next
// rotation failed its calls for up to knownRecheck.
func TestAnIncidentAcrossARotationProvesNoCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, clear := newClear(t)
		r := liveRoute(sm, "/_rig/api/rare")
		var incident atomic.Bool
		src := NewSource(sm.api(), sm.id(), noJitter)
		client := &http.Client{Transport: NewTransport(src, refusingAll(clear, &incident))}
		getTimed(client, sm.url(rig.PingPath))
		start := time.Now()
		at := func(d time.Duration) { time.Sleep(d - time.Since(start)) }
		var wg sync.WaitGroup
		wg.Go(func() {
			at(time.Second)
			incident.Store(true)
			at(2 * time.Second)
			tok2 := sm.w.Issue()
			time.Sleep(300 * time.Millisecond)
			sm.put(tok2)
			at(6 * time.Second)
			incident.Store(false)
		})
		wg.Go(func() {
			at(time.Second + 10*time.Millisecond)
			getTimed(client, sm.url(r))
			at(3500 * time.Millisecond)
			getTimed(client, sm.url(r))
		})
		wg.Go(func() {
			for _, d := range []time.Duration{6500 * time.Millisecond, 30 * time.Second} {
				at(d)
				getTimed(client, sm.url(rig.PingPath))
			}
		})
		wg.Wait()
		at(60 * time.Second)
		rotateAndCall(t, sm, func() int { code, _ := getTimed(client, sm.url(r)); return code })
	})
}

// TestAShortIncidentConfirmsNoTakenCall: the invoice route is taken (a whole wait in a 12 s
// incident, then an accepted ping). In a second incident of only 3 s, the quiet ERP's one invoice
// waits to be judged, and the health check a second after the incident, accepted, ended that wait
// and confirmed the route (the sixth review's F3): the rotation at 60 s failed the invoices at
// once. Only a request sent soon after the refusal (judgeHold), as a busy ERP's are, confirms it.
func TestAShortIncidentConfirmsNoTakenCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm, client, incident := incidentClient(t)
		getTimed(client, sm.url(rig.PingPath))
		start := time.Now()
		at := func(d time.Duration) { time.Sleep(d - time.Since(start)) }
		invoice := func() int { return post(client, sm.url(rig.InvoicePath), bytes.NewReader([]byte(`{"i":1}`))) }
		incident.Store(true)
		at(time.Second)
		invoice() // a whole wait in the incident
		at(12 * time.Second)
		incident.Store(false)
		at(15 * time.Second)
		getTimed(client, sm.url(rig.PingPath)) // accepted: the invoice route is taken
		at(30 * time.Second)
		incident.Store(true)
		at(30500 * time.Millisecond)
		var wg sync.WaitGroup
		wg.Go(func() { invoice() })
		at(33 * time.Second)
		incident.Store(false)
		at(34 * time.Second)
		getTimed(client, sm.url(rig.PingPath))
		wg.Wait()
		at(50 * time.Second)
		getTimed(client, sm.url(rig.PingPath))
		at(60 * time.Second)
		rotateAndCall(t, sm, func() int { return invoice() })
	})
}

// rotateAndCall is a rotation, the newer token stored a second after Clear revoked the cached one,
// during which the ERP makes call every half second, 12 times: each must succeed.
func rotateAndCall(t *testing.T, sm *secret, call func() int) {
	t.Helper()
	tok := sm.w.Issue()
	go func() { time.Sleep(time.Second); sm.put(tok) }()
	time.Sleep(100 * time.Millisecond)
	var failed []time.Duration
	for i := range 12 {
		if code := call(); code != http.StatusOK {
			failed = append(failed, time.Duration(i)*500*time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(failed) > 0 {
		t.Errorf("%d of 12 calls failed at the rotation, at %v", len(failed), failed)
	}
	time.Sleep(DefaultMaxWait)
}
