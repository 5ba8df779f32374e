package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Three days of hourly tokens on the default five-minute schedule: every renewal at its renewal
// point (two thirds of the lifetime), one request per renewal, and ticks with nothing due touch
// neither Clear nor Secrets Manager. The ERP's view is sampled every minute and must always hold a
// live token.
func TestDaysOfHourlyTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.start(h.app(h.client("erp", time.Hour, 48)), Options{})

		// Just after the first rotation, seven ticks pass with nothing due.
		time.Sleep(time.Minute)
		reads, writes, ticks := h.store.Calls(fake.OpRead), h.store.Writes(), h.metric(MetricTicks)
		time.Sleep(38 * time.Minute)
		synctest.Wait()
		if r, w := h.store.Calls(fake.OpRead), h.store.Writes(); r != reads || w != writes {
			t.Fatalf("idle ticks made %d reads and %d writes, want none", r-reads, w-writes)
		}
		if got := h.metric(MetricTicks); got == ticks {
			t.Fatalf("no ticks counted while idle (%s)", got)
		}

		// The ERP's view, sampled at half-minute offsets so as not to race the rotations.
		for end := time.Now().Add(72 * time.Hour); time.Now().Before(end); {
			time.Sleep(time.Minute)
			synctest.Wait()
			if !h.live("erp") {
				t.Fatalf("at %s the ERP holds a token Clear does not accept", time.Now().UTC())
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		// 72h39m of 40-minute renewals: the first token, then one every 40 minutes.
		n := 1 + int((72*time.Hour+39*time.Minute)/(40*time.Minute))
		assertRenewals(t, h.clears["erp"], n, time.Hour)
		// Per rotation: the claim and the token; plus the creation of the secret.
		if w := h.store.Writes(); w != 1+2*n {
			t.Errorf("%d writes to Secrets Manager, want %d", w, 1+2*n)
		}
		if got := h.metric(`clear_rotator_rotations_total{client="erp",outcome="rotated"}`); got != fmt.Sprint(n) {
			t.Errorf("rotated counter = %s, want %d", got, n)
		}
	})
}

// A schedule far coarser than the token's lifetime still renews on time: the wake timer fires at
// each renewal point between ticks.
func TestWakeTimerBeatsCoarseSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 6h")
		h.start(h.app(h.client("erp", time.Hour, 48)), Options{})
		for end := time.Now().Add(48 * time.Hour); time.Now().Before(end); {
			time.Sleep(time.Minute)
			synctest.Wait()
			if !h.live("erp") {
				t.Fatalf("at %s the ERP holds a token Clear does not accept", time.Now().UTC())
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h.clears["erp"], 1+48*60/40, time.Hour)
	})
}

// Tokens that live six hours are renewed every four, but the daemon still re-reads the client every
// hour (the cache's maximum age), so that changes made elsewhere are noticed; those reads write
// nothing.
func TestHourlyRecheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.start(h.app(h.client("erp", 6*time.Hour, 48)), Options{})
		reads, writes := h.store.Calls(fake.OpRead), h.store.Writes()
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if r := h.store.Calls(fake.OpRead); r != reads {
			t.Fatalf("%d reads within the hour", r-reads)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if r := h.store.Calls(fake.OpRead); r <= reads {
			t.Fatal("the client was not re-read after an hour")
		}
		if w := h.store.Writes(); w != writes {
			t.Fatalf("the hourly re-read wrote %d times", w-writes)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A daily limit of three requests runs out after two hours of hourly tokens: the client is limited
// (no request, no write) until midnight UTC, when the count resets and rotation resumes at once.
func TestDailyLimitResetsAtMidnightUTC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.start(h.app(h.client("erp", time.Hour, 3)), Options{})
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if got := h.metric(`clear_rotator_rotations_total{client="erp",outcome="limited"}`); got != "1" {
			t.Fatalf("limited counter = %q at 02:01, want 1", got)
		}
		if got := h.metric(`clear_rotator_blocked{client="erp"}`); got != "1" {
			t.Fatalf("blocked = %q while limited", got)
		}
		if got := h.metric(`clear_rotator_requests_today{client="erp"}`); got != "3" {
			t.Fatalf("requests_today = %q, want 3", got)
		}
		writes := h.store.Writes()
		time.Sleep(21*time.Hour + 58*time.Minute) // to 23:59
		synctest.Wait()
		if w := h.store.Writes(); w != writes {
			t.Fatalf("%d writes while limited", w-writes)
		}
		time.Sleep(2 * time.Minute) // past midnight
		synctest.Wait()
		if got := h.metric(`clear_rotator_requests_today{client="erp"}`); got != "1" {
			t.Errorf("requests_today = %q after midnight, want 1", got)
		}
		time.Sleep(time.Hour)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		day := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		want := []time.Time{day, day.Add(40 * time.Minute), day.Add(80 * time.Minute), day.Add(24 * time.Hour), day.Add(24*time.Hour + 40*time.Minute)}
		assertTimes(t, h.clears["erp"].RequestTimes(), want)
		if !h.live("erp") {
			t.Error("no live token after the limit reset")
		}
		if !strings.Contains(h.logs.String(), "refused by the daily limit") {
			t.Error("the limit was not logged")
		}
	})
}

// Transient failures (5xx) back off as the engine persists it: with the jitter fixed, each wait
// doubles (22.5s, 45s, 90s, 180s, 360s), and the daemon wakes for each retry between ticks.
func TestBackoffAfterServerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 48)
		for range 5 {
			h.clears["erp"].Inject(fake.Fault{Err: fake.ServerError()})
		}
		h.start(h.app(c), Options{})
		time.Sleep(15 * time.Minute)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		times := h.clears["erp"].RequestTimes()
		if len(times) != 6 {
			t.Fatalf("%d requests, want 5 failures and a success: %v", len(times), times)
		}
		prev := time.Duration(0)
		for i := 1; i < len(times); i++ {
			gap := times[i].Sub(times[i-1])
			if i == 1 && (gap < 15*time.Second || gap > 30*time.Second) {
				t.Errorf("first retry after %s, want 15-30s", gap)
			}
			if i > 1 {
				if ratio := float64(gap) / float64(prev); ratio < 1.9 || ratio > 2.1 {
					t.Errorf("retry %d after %s, %.2f times the previous wait, want about double", i, gap, ratio)
				}
			}
			prev = gap
		}
		if !h.live("erp") {
			t.Error("no live token after the failures")
		}
		if got := h.metric(`clear_rotator_rotations_total{client="erp",outcome="failed"}`); got != "5" {
			t.Errorf("failed counter = %s, want 5", got)
		}
	})
}

// A 429 from Clear blocks the client secret until midnight UTC; the next request comes then.
func TestRateLimitWaitsForMidnight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(20 * time.Hour)
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 48)
		h.clears["erp"].Inject(fake.Fault{Err: fake.RateLimited()})
		h.start(h.app(c), Options{})
		time.Sleep(4*time.Hour + time.Minute)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		day := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		assertTimes(t, h.clears["erp"].RequestTimes(), []time.Time{day.Add(20 * time.Hour), day.Add(24 * time.Hour)})
	})
}

// A 401 blocks its client until the configuration changes, while another client keeps rotating,
// and the daemon stays ready: Clear's refusal is the client's problem, not Secrets Manager's.
func TestUnauthorizedBlocksOnlyItsClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		bad, good := h.client("bad", time.Hour, 48), h.client("good", time.Hour, 48)
		h.clears["bad"].Inject(fake.Fault{Err: fake.Unauthorized()})
		h.start(h.app(bad, good), Options{})
		time.Sleep(5*time.Hour + time.Minute)
		synctest.Wait()
		if got := h.metric(`clear_rotator_blocked{client="bad"}`); got != "1" {
			t.Errorf("blocked{bad} = %q, want 1", got)
		}
		if got := h.metric(`clear_rotator_blocked{client="good"}`); got != "0" {
			t.Errorf("blocked{good} = %q, want 0", got)
		}
		if code, body := h.get("/readyz"); code != http.StatusOK {
			t.Errorf("/readyz = %d %q, want 200", code, body)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if n := h.clears["bad"].Requests(); n != 1 {
			t.Errorf("the blocked client made %d requests, want 1", n)
		}
		assertRenewals(t, h.clears["good"], 1+300/40, time.Hour)
	})
}

// SIGTERM while Clear is slow to answer: the daemon waits for the answer, stores the token (the one
// the ERP held is already revoked) and returns nil.
func TestShutdownWaitsForRotationInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 48)
		h.clears["erp"].Inject(fake.Fault{Delay: 10 * time.Second})
		h.start(h.app(c), Options{})
		time.Sleep(time.Second)
		if h.clears["erp"].Requests() != 1 {
			t.Fatal("the request is not in flight")
		}
		start := time.Now()
		if err := h.stop(); err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
		if waited := time.Since(start); waited != 9*time.Second {
			t.Errorf("shutdown took %s, want the 9s the answer still needed", waited)
		}
		if !h.live("erp") {
			t.Error("the token issued during shutdown was not stored")
		}
		if !strings.Contains(h.logs.String(), "shutting down") {
			t.Error("shutdown not logged")
		}
		if code, _ := h.get("/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz = %d after shutdown, want 503", code)
		}
	})
}

// When the grace expires first, Run says so with an error (exit status 1).
func TestShutdownGraceExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.cfg.ShutdownGrace = 5 * time.Second
		c := h.client("erp", time.Hour, 48)
		h.clears["erp"].Inject(fake.Fault{Delay: 20 * time.Second})
		h.start(h.app(c), Options{})
		time.Sleep(time.Second)
		err := h.stop()
		if err == nil || !strings.Contains(err.Error(), "grace of 5s expired") || !strings.Contains(err.Error(), "erp") {
			t.Fatalf("Run returned %v, want the expired grace naming the client", err)
		}
		// The engine still finishes in the background; in a real process the exit cuts it short.
		time.Sleep(30 * time.Second)
	})
}

// A panic in one client's token source is recovered: it fails that client's check alone, the
// other client keeps rotating, and the panicking client recovers once its claim's lease ends.
func TestPanicInTokenSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		bad, good := h.client("bad", time.Hour, 48), h.client("good", time.Hour, 48)
		h.clears["bad"].Inject(fake.Fault{Panic: "token source bug"})
		h.start(h.app(bad, good), Options{})
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if got := h.metric(`clear_rotator_rotations_total{client="bad",outcome="failed"}`); got != "1" {
			t.Errorf("failed{bad} = %q, want 1", got)
		}
		if !h.live("bad") || !h.live("good") {
			t.Error("a client has no live token")
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h.clears["good"], 1+120/40, time.Hour)
		times := h.clears["bad"].RequestTimes()
		day := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		// The claim of the panicked request holds its five-minute lease; the retry comes when it ends.
		if len(times) < 2 || !times[1].Equal(day.Add(timing.Lease(clear.DefaultTimeout))) {
			t.Errorf("requests of the panicking client at %v, want a retry when the lease ends (%s)", times, day.Add(timing.Lease(clear.DefaultTimeout)))
		}
		if !strings.Contains(h.logs.String(), "token source bug") {
			t.Error("the panic was not logged")
		}
	})
}

// SIGHUP reloads the configuration: an added client is rotated at once, an unchanged one keeps its
// cache (no extra request), and a failed reload keeps the running configuration.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		a := h.client("a", time.Hour, 48)
		h.start(h.app(a), Options{})
		time.Sleep(10 * time.Minute)

		// The same configuration, built afresh as the CLI's Load does, plus a new client.
		a2 := *a
		a2.Clear = h.clears["a"]
		b := h.client("b", time.Hour, 48)
		h.setLoad(func(context.Context) (*app.App, error) { return h.app(&a2, b), nil })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		if !h.live("b") {
			t.Fatal("the added client was not rotated on reload")
		}
		if n := h.clears["a"].Requests(); n != 1 {
			t.Fatalf("the unchanged client made %d requests, want 1", n)
		}

		h.setLoad(func(context.Context) (*app.App, error) { return nil, errors.New("configuration: bad YAML") })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		if !strings.Contains(h.logs.String(), "reload failed; keeping the previous configuration") {
			t.Fatal("the failed reload was not logged")
		}
		time.Sleep(2*time.Hour - time.Minute) // to 02:09
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h.clears["a"], 4, time.Hour) // 00:00, 00:40, 01:20, 02:00
		assertRenewals(t, h.clears["b"], 3, time.Hour) // 00:10, 00:50, 01:30
	})
}

// countingSource wraps a token source and records how many of its calls overlap.
type countingSource struct {
	rotation.TokenSource
	now, peak *atomic.Int64
}

func (c countingSource) Token(ctx context.Context, s clear.ClientSecret) (clear.Grant, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return c.TokenSource.Token(ctx, s)
}

// A thousand clients, each with a one-second Clear answer at first: at most eight are checked at
// once, and every one is renewed on time afterwards.
func TestThousandClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		var now, peak atomic.Int64
		clients := make([]*rotation.Client, 1000)
		for i := range clients {
			c := h.client(fmt.Sprintf("c%04d", i), time.Hour, 48)
			h.clears[c.Name].Inject(fake.Fault{Delay: time.Second})
			c.Clear = countingSource{TokenSource: c.Clear, now: &now, peak: &peak}
			clients[i] = c
		}
		h.start(h.app(clients...), Options{})
		time.Sleep(2*time.Hour + 5*time.Minute)
		synctest.Wait()
		for _, c := range clients {
			if !h.live(c.Name) {
				t.Fatalf("client %s has no live token", c.Name)
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if p := peak.Load(); p != DefaultConcurrency {
			t.Errorf("at most %d clients called Clear at once, want %d", p, DefaultConcurrency)
		}
		for _, c := range clients {
			if n := h.clears[c.Name].Requests(); n != 4 {
				t.Fatalf("client %s made %d requests in 2h05m, want 4", c.Name, n)
			}
		}
	})
}

// /readyz follows Secrets Manager: ready after the first check, not ready (with the reason) while
// reads fail, ready again once they succeed. /healthz stays up throughout.
func TestReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("erp", 0, 48) // never expires: read at every tick
		a := h.app(c)
		d, err := newDaemon(Options{Load: func(context.Context) (*app.App, error) { return a, nil }}, a)
		if err != nil {
			t.Fatal(err)
		}
		h.d = d
		if code, body := h.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "first check") {
			t.Fatalf("/readyz before any check = %d %q", code, body)
		}
		h.start(a, Options{})
		if code, body := h.get("/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz after the first check = %d %q", code, body)
		}
		h.store.FailWith(func(op, id string) error { return errors.New("ThrottlingException: rate exceeded") })
		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		code, body := h.get("/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "client erp") || !strings.Contains(body, "rate exceeded") {
			t.Fatalf("/readyz while reads fail = %d %q", code, body)
		}
		if code, _ := h.get("/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz = %d", code)
		}
		h.store.FailWith(nil)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if code, body := h.get("/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz after recovery = %d %q", code, body)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func assertTimes(t *testing.T, got, want []time.Time) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Equal(want[i])
	}
	if !ok {
		t.Errorf("requests at\n  %v\nwant\n  %v", got, want)
	}
}
