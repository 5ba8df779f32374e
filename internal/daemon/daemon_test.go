package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// writes counts the calls that change Secrets Manager.
func writes(calls map[string]int) int {
	return calls["PutSecretValue"] + calls["CreateSecret"] + calls["UpdateSecretVersionStage"]
}

// diff returns after minus before, per operation, leaving out operations that did not change.
func diff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range after {
		if d := n - before[op]; d != 0 {
			out[op] = d
		}
	}
	return out
}

// Three days of hourly tokens on the default five-minute schedule: every renewal at its renewal
// point (two thirds of the lifetime), one request per renewal, and each tick with nothing due costs
// exactly one DescribeSecret and writes nothing. The ERP's view is sampled every minute and must
// always hold a live token.
func TestDaysOfHourlyTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.start(h.app(h.client("erp", time.Hour, 48)), Options{})

		// The tick after a rotation reads the new versions (two GetSecretValue); the six after it,
		// 00:10 to 00:35, have nothing new to read.
		time.Sleep(6 * time.Minute)
		before, ticks := h.calls(), h.metric(MetricTicks)
		time.Sleep(33 * time.Minute)
		synctest.Wait()
		if got := diff(before, h.calls()); len(got) != 1 || got["DescribeSecret"] != 6 {
			t.Fatalf("six idle ticks made the calls %v, want exactly 6 DescribeSecret", got)
		}
		if got := h.metric(MetricTicks); got == ticks {
			t.Fatalf("no ticks counted while idle (%s)", got)
		}

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
		assertRenewals(t, h, "erp", n, time.Hour)
		if got := h.metric(`clear_rotator_checks_total{client="erp",outcome="rotated"}`); got != fmt.Sprint(n) {
			t.Errorf("rotated counter = %s, want %d", got, n)
		}
	})
}

// A schedule far coarser than the token's lifetime still renews on time: the daemon wakes at each
// renewal point between ticks.
func TestWakeBeatsCoarseSchedule(t *testing.T) {
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
		assertRenewals(t, h, "erp", 1+48*60/40, time.Hour)
	})
}

// never is a schedule without activations, as robfig/cron reports one it cannot satisfy.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

// Issue 9 D4: a schedule whose next activation is the zero time does not stop the daemon. It keeps
// renewing at each renewal point, keeps looking at every client at the default interval, and says
// what it is doing.
func TestScheduleWithoutActivationKeepsLooking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		d := h.prepare(h.app(h.client("erp", time.Hour, 48)), Options{})
		d.sched = never{}
		h.run(d)
		time.Sleep(3*time.Hour + time.Minute)
		synctest.Wait()
		if !h.live("erp") {
			t.Fatal("the token was not renewed")
		}
		// Start-up, then one tick every five minutes.
		if got := h.metric(MetricTicks); got != fmt.Sprint(1+36) {
			t.Errorf("%s = %s after 3h01m, want %d", MetricTicks, got, 1+36)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h, "erp", 1+180/40, time.Hour)
		if !strings.Contains(h.logs.String(), "the schedule has no next activation") {
			t.Error("the fallback was not logged")
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
		for series, want := range map[string]string{
			`clear_rotator_checks_total{client="erp",outcome="limited"}`: "1",
			`clear_rotator_blocked{client="erp"}`:                        "1",
			`clear_rotator_state{client="erp",state="limited"}`:          "1",
			`clear_rotator_requests_today{client="erp",api_client="1"}`:  "3",
		} {
			if got := h.metric(series); got != want {
				t.Errorf("%s = %q at 02:01, want %s", series, got, want)
			}
		}
		w := writes(h.calls())
		time.Sleep(21*time.Hour + 58*time.Minute) // to 23:59
		synctest.Wait()
		if got := writes(h.calls()); got != w {
			t.Fatalf("%d writes while limited", got-w)
		}
		time.Sleep(2 * time.Minute) // past midnight
		synctest.Wait()
		if got := h.metric(`clear_rotator_requests_today{client="erp",api_client="1"}`); got != "1" {
			t.Errorf("requests_today = %q after midnight, want 1", got)
		}
		time.Sleep(time.Hour)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		want := []time.Time{day0, day0.Add(40 * time.Minute), day0.Add(80 * time.Minute), day0.Add(24 * time.Hour), day0.Add(24*time.Hour + 40*time.Minute)}
		assertTimes(t, h.requestTimes("erp"), want)
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
			h.worlds["erp"].Emu.Inject(emulator.ServerError())
		}
		h.start(h.app(c), Options{})
		time.Sleep(15 * time.Minute)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		times := h.requestTimes("erp")
		if len(times) != 6 {
			t.Fatalf("%d requests, want 5 failures and a success: %v", len(times), times)
		}
		want := 22500 * time.Millisecond
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < want || gap > want+minGap {
				t.Errorf("retry %d after %s, want %s", i, gap, want)
			}
			want *= 2
		}
		if !h.live("erp") {
			t.Error("no live token after the failures")
		}
		if got := h.metric(`clear_rotator_checks_total{client="erp",outcome="failed"}`); got != "5" {
			t.Errorf("failed counter = %s, want 5", got)
		}
	})
}

// Clear fails for three hours from the token's renewal at 00:40, so the token dies at 01:00 with
// the backoff already grown: a new token is stored within timing.DeadRetry of Clear's recovery,
// not after what the backoff had reached by then (up to an hour), and the outage costs a request
// every few minutes at most, far within the day's limit.
func TestADeadTokenIsBackWithinMinutesOfClearsRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 288)
		w := h.worlds["erp"]
		recovery := day0.Add(40*time.Minute + 3*time.Hour)
		h.start(h.app(c), Options{})
		time.Sleep(39 * time.Minute)
		w.BeforeClear(func(*http.Request) {
			if time.Now().Before(recovery) {
				w.Emu.Inject(emulator.ServerError())
			}
		})
		time.Sleep(time.Until(recovery))
		synctest.Wait()
		if h.live("erp") {
			t.Fatal("a live token before Clear recovered")
		}
		during := len(h.requestTimes("erp")) - 1
		time.Sleep(timing.DeadRetry + time.Second)
		synctest.Wait()
		if !h.live("erp") {
			t.Fatalf("no live token %s after Clear recovered (requests at %v)", timing.DeadRetry+time.Second, h.requestTimes("erp")[1:])
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		// Seven backoffs from 15 s before the token died, then a look every DeadRetry (each backoff
		// is longer by then) for the 2h40m it was dead.
		if lo, hi := int(160*time.Minute/timing.DeadRetry), 10+int(3*time.Hour/timing.DeadRetry); during < lo || during > hi {
			t.Errorf("%d requests during the three-hour outage, want %d to %d", during, lo, hi)
		}
	})
}

// A 429 from Clear blocks the client secret until midnight UTC; the next request comes then.
func TestRateLimitWaitsForMidnight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(20 * time.Hour)
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 48)
		h.worlds["erp"].Emu.Inject(emulator.RateLimited(""))
		h.start(h.app(c), Options{})
		time.Sleep(4*time.Hour + time.Minute)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertTimes(t, h.requestTimes("erp"), []time.Time{day0.Add(20 * time.Hour), day0.Add(24 * time.Hour)})
	})
}

// A 401 blocks its client until the configuration changes, while another client keeps rotating,
// and the daemon stays ready: Clear's refusal is the client's problem, not Secrets Manager's.
func TestUnauthorizedBlocksOnlyItsClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		bad, good := h.client("bad", time.Hour, 48), h.client("good", time.Hour, 48)
		h.worlds["bad"].Emu.Inject(emulator.Fault{Status: 401})
		h.start(h.app(bad, good), Options{})
		time.Sleep(5*time.Hour + time.Minute)
		synctest.Wait()
		for series, want := range map[string]string{
			`clear_rotator_blocked{client="bad"}`:                "1",
			`clear_rotator_state{client="bad",state="blocked"}`:  "1",
			`clear_rotator_blocked{client="good"}`:               "0",
			`clear_rotator_state{client="good",state="ok"}`:      "1",
			`clear_rotator_state{client="good",state="blocked"}`: "0",
		} {
			if got := h.metric(series); got != want {
				t.Errorf("%s = %q, want %s", series, got, want)
			}
		}
		if code, body := h.get("/readyz"); code != http.StatusOK {
			t.Errorf("/readyz = %d %q, want 200", code, body)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if n := h.worlds["bad"].ClearRequests(); n != 1 {
			t.Errorf("the blocked client made %d requests, want 1", n)
		}
		assertRenewals(t, h, "good", 1+300/40, time.Hour)
		if !strings.Contains(h.logs.String(), "the client needs attention") {
			t.Error("the blocked client was not reported in the log")
		}
	})
}

// SIGTERM while Clear is slow to answer: the daemon waits for the answer, stores the token (the one
// the ERP held is already revoked) and returns nil.
func TestShutdownWaitsForRotationInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 48)
		h.worlds["erp"].Emu.Inject(emulator.Fault{Delay: 10 * time.Second})
		h.cfg.HTTPAddr = ""
		d := h.prepare(h.app(c), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan error, 1)
		go func() { h.done <- d.run(ctx) }()
		t.Cleanup(func() { _ = h.stop() })
		time.Sleep(time.Second)
		if len(h.requestTimes("erp")) != 1 {
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
		if code, body := h.get("/readyz"); code != http.StatusServiceUnavailable || body != "shutting-down\n" {
			t.Errorf("/readyz = %d %q after shutdown, want 503 shutting-down", code, body)
		}
	})
}

// When the grace expires first, Run says so with an error (exit status 1).
func TestShutdownGraceExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		h.cfg.ShutdownGrace = 5 * time.Second
		c := h.client("erp", time.Hour, 48)
		h.worlds["erp"].Emu.Inject(emulator.Fault{Delay: 20 * time.Second})
		d := h.prepare(h.app(c), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan error, 1)
		go func() { h.done <- d.run(ctx) }()
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
		h.panicOnce("bad", "token source bug")
		h.start(h.app(bad, good), Options{})
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if got := h.metric(`clear_rotator_checks_total{client="bad",outcome="failed"}`); got != "1" {
			t.Errorf("failed{bad} = %q, want 1", got)
		}
		if !h.live("bad") || !h.live("good") {
			t.Error("a client has no live token")
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h, "good", 1+120/40, time.Hour)
		// The claim of the panicked request holds its lease; the first request that reaches Clear
		// comes when it ends. (The rig records the panicked one too, at the start, unanswered.)
		reqs := h.worlds["bad"].Requests()
		lease := day0.Add(timing.Lease(clear.DefaultTimeout))
		if len(reqs) < 2 || !reqs[0].At.Equal(day0) || reqs[0].Status != 0 || !reqs[1].At.Equal(lease) {
			t.Errorf("requests of the panicking client %+v, want the panicked one at %s and the first answered when the lease ends (%s)", reqs, day0, lease)
		}
		if n := h.worlds["bad"].ClearRequests(); n != len(reqs)-1 {
			t.Errorf("Clear received %d requests of the panicking client, want all but the panicked one (%d)", n, len(reqs)-1)
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
		b := h.client("b", time.Hour, 48)
		h.setLoad(func(context.Context) (*app.App, error) { return h.app(&a2, b), nil })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		if !h.live("b") {
			t.Fatal("the added client was not rotated on reload")
		}
		if n := h.worlds["a"].ClearRequests(); n != 1 {
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
		assertRenewals(t, h, "a", 4, time.Hour) // 00:00, 00:40, 01:20, 02:00
		assertRenewals(t, h, "b", 3, time.Hour) // 00:10, 00:50, 01:30
	})
}

// A thousand clients, each with a one-second Clear answer at first: at most eight are checked at
// once, every one is renewed at 00:40 and 01:20, and an idle tick costs one DescribeSecret per
// client.
func TestThousandClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		clients := make([]*rotation.Client, 1000)
		for i := range clients {
			c := h.client(fmt.Sprintf("c%04d", i), time.Hour, 48)
			h.worlds[c.Name].Emu.Inject(emulator.Fault{Delay: time.Second})
			clients[i] = c
		}
		h.start(h.app(clients...), Options{})
		// Eight, written out: compared with DefaultConcurrency, a change of the constant (to 1, 9
		// or 16) went unnoticed.
		if p := h.inFlight.Peak(); p != 8 {
			t.Errorf("at most %d clients called Clear at once, want 8", p)
		}
		// The first round takes 125s (1000 one-second answers, eight at a time); the tick at 05:00
		// and 10:00 are idle.
		time.Sleep(7 * time.Minute)
		before := h.calls()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := diff(before, h.calls()); len(got) != 1 || got["DescribeSecret"] != 1000 {
			t.Errorf("an idle tick of 1000 clients made the calls %v, want exactly 1000 DescribeSecret", got)
		}
		time.Sleep(time.Hour + 25*time.Minute - 12*time.Minute)
		synctest.Wait()
		for _, c := range clients {
			if !h.live(c.Name) {
				t.Fatalf("client %s has no live token", c.Name)
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			if n := h.worlds[c.Name].ClearRequests(); n != 3 {
				t.Fatalf("client %s made %d requests in 1h25m, want 3", c.Name, n)
			}
		}
	})
}

// awsError is what the SDK returns for a refused call; its text names the secret, the principal and
// the account, which /readyz must not repeat.
var awsError = &smithy.GenericAPIError{Code: "AccessDeniedException",
	Message: "User: arn:aws:sts::123456789012:assumed-role/rotator/i-0abc is not authorized to perform: secretsmanager:DescribeSecret on resource: tokens/erp"}

// Issue 8 item 2: /readyz follows Secrets Manager at every tick, even while no token is due: ready
// after the first tick, 503 with a reason code (and no AWS text) from the first tick that cannot
// read, ready again at the first tick that can. /healthz stays up throughout. The old daemon read
// nothing while the token was not due, and stayed ready.
func TestReadinessFollowsSecretsManager(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		a := h.app(h.client("erp", time.Hour, 48))
		d := h.prepare(a, Options{})
		if code, body := h.get("/readyz"); code != http.StatusServiceUnavailable || body != "starting\n" {
			t.Fatalf("/readyz before the first tick = %d %q, want 503 starting", code, body)
		}
		h.run(d)
		if code, body := h.get("/readyz"); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("/readyz after the first tick = %d %q", code, body)
		}
		if got := h.metric(MetricReady); got != "1" {
			t.Errorf("%s = %q, want 1", MetricReady, got)
		}
		time.Sleep(time.Minute)
		h.base.API.Fail(func(string, any) error { return awsError })
		time.Sleep(4*time.Minute + time.Second) // past the tick at 00:05
		synctest.Wait()
		code, body := h.get("/readyz")
		if code != http.StatusServiceUnavailable || body != "secrets-manager-unreadable: 1 client(s)\n" {
			t.Fatalf("/readyz while Secrets Manager refuses = %d %q", code, body)
		}
		if got := h.metric(MetricReady); got != "0" {
			t.Errorf("%s = %q, want 0", MetricReady, got)
		}
		if got := h.metric(`clear_rotator_state{client="erp",state="unknown"}`); got != "1" {
			t.Errorf("state unknown = %q while unreadable, want 1", got)
		}
		if code, _ := h.get("/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz = %d", code)
		}
		if logs := h.logs.String(); !strings.Contains(logs, "not ready: Secrets Manager could not be read") || !strings.Contains(logs, "123456789012") {
			t.Error("the log does not say why the daemon is not ready")
		}
		h.base.API.Fail(nil)
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

// Issue 8 item 2: an operator forces a rotation from elsewhere while the API client's expiry in
// Clear has been cut to six minutes. The daemon sees the new token at its next tick and renews it
// at its renewal point, before it expires; the ERP never holds a dead token. The old daemon kept
// sleeping until the renewal point of the token it had stored itself, 40 minutes away.
func TestForcedRotationElsewhereIsSeenWithinOneTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 1m")
		c := h.client("erp", time.Hour, 48)
		h.start(h.app(c), Options{})
		time.Sleep(10*time.Minute + 30*time.Second)

		h.worlds["erp"].Emu.SetLifetime(6 * time.Minute)
		if r := h.other("operator").Rotate(context.Background(), c, true); r.Outcome != rotation.Rotated {
			t.Fatalf("the operator's forced rotation: %s %s", r.Outcome, r.Message)
		}
		forced := time.Now()
		tok, _ := h.current("erp")
		time.Sleep(time.Minute) // one tick
		synctest.Wait()
		if got, want := h.metric(`clear_rotator_token_expiry_timestamp_seconds{client="erp"}`), seconds(*tok.ValidTill); got != want {
			t.Fatalf("one tick after the forced rotation the expiry metric is %s, want the new token's %s", got, want)
		}
		for end := time.Now().Add(30 * time.Minute); time.Now().Before(end); {
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if !h.live("erp") {
				t.Fatalf("at %s the ERP holds a token Clear does not accept", time.Now().UTC())
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		// The daemon's first request after the forced one comes at its renewal point, four minutes
		// after it (issue times are stored to the second).
		times := h.requestTimes("erp")
		var next time.Time
		for _, at := range times {
			if at.After(forced) {
				next = at
				break
			}
		}
		if gap := next.Sub(forced); gap < 4*time.Minute-minGap || gap > 4*time.Minute+minGap {
			t.Errorf("the daemon renewed the operator's token %s after it was issued, want at its renewal point (4m)", gap)
		}
	})
}

// Issue 8 item 2: the metrics come from the state as last read, whoever wrote it. Another rotator
// spends the daily limit with forced rotations; within one tick the daemon shows its count, the
// block and the limited state, and the expiry of the token it stored.
func TestMetricsFromAnotherRotatorsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		c := h.client("erp", time.Hour, 3)
		h.start(h.app(c), Options{})
		time.Sleep(time.Minute)
		other := h.other("replica-2")
		for range 2 {
			if r := other.Rotate(context.Background(), c, true); r.Outcome != rotation.Rotated {
				t.Fatalf("the other rotator's forced rotation: %s %s", r.Outcome, r.Message)
			}
			time.Sleep(time.Second)
		}
		tok, _ := h.current("erp")
		time.Sleep(4 * time.Minute) // past the tick at 00:05
		synctest.Wait()
		for series, want := range map[string]string{
			`clear_rotator_requests_today{client="erp",api_client="1"}`:  "3",
			`clear_rotator_blocked{client="erp"}`:                        "1",
			`clear_rotator_state{client="erp",state="limited"}`:          "1",
			`clear_rotator_state{client="erp",state="ok"}`:               "0",
			`clear_rotator_token_expiry_timestamp_seconds{client="erp"}`: seconds(*tok.ValidTill),
			`clear_rotator_token_issued_timestamp_seconds{client="erp"}`: seconds(tok.IssuedAt),
			`clear_rotator_checks_total{client="erp",outcome="rotated"}`: "1",
			`clear_rotator_degraded{client="erp"}`:                       "0",
			`clear_rotator_token_lost{client="erp"}`:                     "0",
		} {
			if got := h.metric(series); got != want {
				t.Errorf("%s = %q, want %s", series, got, want)
			}
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// Issue 9 D1: another rotator loses a token (Clear answered, the write was refused). Within one tick
// the daemon shows token_lost 1 and the token-lost state, and logs an error; it replaces the token
// when the API client's backoff ends, and token_lost returns to 0.
func TestTokenLostElsewhereIsVisibleWithinOneTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 1m")
		c := h.client("erp", time.Hour, 48)
		h.start(h.app(c), Options{})
		time.Sleep(10 * time.Second)

		// The other rotator may claim and release, but its token write is refused.
		h.base.API.Fail(func(op string, in any) error {
			if p, ok := in.(*secretsmanager.PutSecretValueInput); ok && len(p.VersionStages) == 0 {
				return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied"}
			}
			return nil
		})
		// It loses two tokens in a row: the first retry after a loss is immediate, the second
		// loss backs off (issue 19 item 5), long enough that the daemon's next tick finds the
		// client still waiting.
		other := h.other("replica-2")
		other.Backoff = timing.Backoff{Base: 10 * time.Minute, Cap: time.Hour}
		other.Rotate(context.Background(), c, true)
		r := other.Rotate(context.Background(), c, false)
		h.base.API.Fail(nil)
		if r.Status.State != rotation.HealthTokenLost {
			t.Fatalf("the other rotator's rotation: %s %s (state %s), want a lost token", r.Outcome, r.Message, r.Status.State)
		}
		if h.live("erp") {
			t.Fatal("the token in AWSCURRENT is still live after the loss")
		}
		time.Sleep(time.Minute) // one tick
		synctest.Wait()
		if got := h.metric(`clear_rotator_token_lost{client="erp"}`); got != "1" {
			t.Errorf("token_lost = %q one tick after the loss, want 1", got)
		}
		if got := h.metric(`clear_rotator_state{client="erp",state="token-lost"}`); got != "1" {
			t.Errorf("state token-lost = %q, want 1", got)
		}
		if !strings.Contains(h.logs.String(), `"level":"ERROR","msg":"the token in AWSCURRENT is lost`) {
			t.Error("the lost token was not logged as an error")
		}
		// The backoff after one failure is 7.5 minutes with the fixed jitter: the daemon wakes for it.
		time.Sleep(7 * time.Minute)
		synctest.Wait()
		if !h.live("erp") {
			t.Fatal("the lost token was not replaced")
		}
		if got := h.metric(`clear_rotator_token_lost{client="erp"}`); got != "0" {
			t.Errorf("token_lost = %q after recovery, want 0", got)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// Issue 8 item 2: the cost of looking. An idle tick costs exactly one DescribeSecret per client
// and writes nothing; a day at the default schedule with hourly tokens costs what the log line
// below says, which BENCHMARKS.md quotes. The counts are exact: they come from the fake's counters
// in a deterministic simulation.
func TestCallsPerDay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		// secretID stores the client secret in Secrets Manager (CLEAR_CLIENT_SECRET_ID) rather than
		// in the configuration.
		secretID bool
		want     map[string]int
	}{
		// 288 ticks. Hourly tokens are renewed every 40 minutes, at a tick: 36 rotations, each a
		// claim and a token write (2 PutSecretValue) and a re-read of AWSCURRENT after the claim (1
		// GetSecretValue). The engine keeps what it wrote, so the tick after a rotation is an idle
		// look like any other; the first tick creates the secret (CreateSecret, 3 GetSecretValue).
		// So 288-1 DescribeSecret, 3+36 GetSecretValue.
		{"hourly tokens", time.Hour, false, map[string]int{"DescribeSecret": 287, "GetSecretValue": 39, "PutSecretValue": 72, "CreateSecret": 1}},
		// One rotation at start, then only idle ticks.
		{"tokens that never expire", 0, false, map[string]int{"DescribeSecret": 287, "GetSecretValue": 4, "PutSecretValue": 2, "CreateSecret": 1}},
		// The client secret is read again when the engine's copy is 15 minutes old: 73 more
		// GetSecretValue. One CreateSecret is the test's own, for that secret.
		{"hourly tokens, secret in Secrets Manager", time.Hour, true, map[string]int{"DescribeSecret": 287, "GetSecretValue": 39 + 73, "PutSecretValue": 72, "CreateSecret": 1 + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, "@every 5m")
				c := h.client("erp", tc.lifetime, 48)
				if tc.secretID {
					ctx := context.Background()
					if err := h.engine.Store.Create(ctx, "clear/erp/client-secret", h.worlds["erp"].Secrets[0], ""); err != nil {
						t.Fatal(err)
					}
					c.ClientSecret, c.ClientSecretID = clear.ClientSecret{}, "clear/erp/client-secret"
				}
				h.start(h.app(c), Options{})
				time.Sleep(24*time.Hour - time.Second)
				synctest.Wait()
				got := h.calls()
				t.Logf("calls in a day at @every 5m: %v", got)
				for op, n := range tc.want {
					if got[op] != n {
						t.Errorf("%s: %d calls in a day, want %d", op, got[op], n)
					}
				}
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// recordingService is a Service that notes its starts and stops.
type recordingService struct {
	name   string
	events *[]string
	fail   error
}

func (s recordingService) Start() error {
	*s.events = append(*s.events, "start "+s.name)
	return s.fail
}

func (s recordingService) Stop(context.Context) error {
	*s.events = append(*s.events, "stop "+s.name)
	return nil
}

// The hooks a gateway and push delivery use (issue 16 item 5): OnResult sees every check's result,
// with the token a rotation stored; Metrics families follow the daemon's own on /metrics; Services
// start before the first check and stop, in reverse order, after the last.
func TestHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		var (
			mu      sync.Mutex
			results []rotation.Result
			events  []string
		)
		opts := Options{
			OnResult: []func(context.Context, *rotation.Client, rotation.Result){func(_ context.Context, c *rotation.Client, r rotation.Result) {
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}},
			Metrics: []func(io.Writer){func(w io.Writer) {
				io.WriteString(w, "# HELP extra_total x\n# TYPE extra_total counter\nextra_total 7\n")
			}},
			Services: []Service{recordingService{name: "one", events: &events}, recordingService{name: "two", events: &events}},
		}
		h.start(h.app(h.client("erp", time.Hour, 48)), opts)
		if got := strings.Join(events, ", "); got != "start one, start two" {
			t.Errorf("services: %s", got)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		_, body := h.get("/metrics")
		if !strings.HasSuffix(body, "clear_rotator_ready 1\n# HELP extra_total x\n# TYPE extra_total counter\nextra_total 7\n") {
			t.Errorf("the extra family does not follow the daemon's own:\n%s", body)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(events, ", "); got != "start one, start two, stop two, stop one" {
			t.Errorf("services: %s", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(results) != 2 || results[0].Outcome != rotation.Rotated || results[1].Outcome != rotation.NotDue {
			t.Fatalf("OnResult saw %d results, want rotated then not_due", len(results))
		}
		tok, _ := h.current("erp")
		if st := results[0].Stored; st == nil || st.Token.AccessToken.Reveal() != tok.AccessToken.Reveal() {
			t.Error("OnResult did not get the token the rotation stored")
		}
		if results[1].Stored != nil {
			t.Error("a check that stored nothing has Stored set")
		}
	})
}

// A service that cannot start stops Run before any check, and those started before it are stopped.
func TestServiceStartFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		var events []string
		boom := errors.New("gateway: address in use")
		d := h.prepare(h.app(h.client("erp", time.Hour, 48)), Options{Services: []Service{
			recordingService{name: "one", events: &events}, recordingService{name: "two", events: &events, fail: boom}}})
		if err := d.run(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("run = %v, want the service's error", err)
		}
		if got := strings.Join(events, ", "); got != "start one, start two, stop one" {
			t.Errorf("services: %s", got)
		}
		if n := h.worlds["erp"].ClearRequests(); n != 0 {
			t.Errorf("%d requests to Clear", n)
		}
	})
}

// A reload that changes a client while its rotation waits for Clear files nothing of that check
// (the changed client is looked at afresh), yet the token the check stored is real and is what
// ERP systems now read: it still reaches the OnResult hooks (push delivery, the gateway), as long
// as the configuration in force keeps the client on the same token secret. Before, it was dropped
// with the check, and the ERP was never told of a token that had revoked the one it held.
func TestReloadDuringARotationStillHandsOnTheStoredToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		var (
			mu     sync.Mutex
			stored []string
		)
		opts := Options{OnResult: []func(context.Context, *rotation.Client, rotation.Result){
			func(_ context.Context, c *rotation.Client, r rotation.Result) {
				if r.Stored != nil {
					mu.Lock()
					stored = append(stored, c.Name+" "+r.Stored.VersionID)
					mu.Unlock()
				}
			}}}
		a, b, c := h.client("a", time.Hour, 48), h.client("b", time.Hour, 48), h.client("c", time.Hour, 48)
		hold := make(chan struct{})
		for _, w := range []*rig.World{h.worlds["a"], h.worlds["b"], h.worlds["c"]} {
			w.BeforeClear(func(*http.Request) { <-hold })
		}
		h.start(h.app(a, b, c), opts) // returns with the three first rotations waiting for Clear

		// a keeps its token secret (its daily limit changes); b moves to another one; c is renamed
		// on the same one, and its token is handed on under its new name.
		a2, b2, c2 := *a, *b, *c
		a2.DailyLimit = 40
		b2.TokenSecretID = "elsewhere/b"
		c2.Name = "c-renamed"
		h.setLoad(func(context.Context) (*app.App, error) { return h.app(&a2, &b2, &c2), nil })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		close(hold)
		synctest.Wait()
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		_, va, _ := h.worlds["a"].Current()
		_, vb, _ := h.worlds["b"].Current() // in b's first token secret, which no client reads now
		mu.Lock()
		defer mu.Unlock()
		got := strings.Join(stored, ", ")
		if !slices.Contains(stored, "a "+va) {
			t.Errorf("the hooks were handed %q, not a's token %s", got, va)
		}
		if _, vc, _ := h.worlds["c"].Current(); !slices.Contains(stored, "c-renamed "+vc) {
			t.Errorf("the hooks were handed %q, not c's token %s under its new name", got, vc)
		}
		if slices.Contains(stored, "b "+vb) {
			t.Errorf("the hooks were handed %q, with b's token from the secret it no longer reads", got)
		}
	})
}
