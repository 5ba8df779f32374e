package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecret2 = "whsec_c2Vjb25kLXNpZ25pbmcta2V5LWZvci10ZXN0cy0xMjM0NQ=="
	testToken   = "tok-0123456789-very-secret"
)

// The Standard Webhooks specification's own example, which every receiver library checks.
func TestSignMatchesTheStandardWebhooksExample(t *testing.T) {
	k, err := ParseKeys(NewSecret(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	got := k.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

func TestTwoKeysSignTwiceAndEitherVerifies(t *testing.T) {
	both := NewSecret(testSecret + " " + testSecret2)
	k, err := ParseKeys(both)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	h := k.Sign("msg_1", at, body)
	if n := len(strings.Fields(h)); n != 2 {
		t.Fatalf("header %q has %d signatures, want 2", h, n)
	}
	for _, s := range []string{testSecret, testSecret2} {
		if !Verify(NewSecret(s), "msg_1", "1700000000", h, body, at, 5*time.Minute) {
			t.Errorf("a receiver with one of the keys rejects the message")
		}
	}
	if Verify(NewSecret(testSecret), "msg_1", "1700000000", h, []byte(`{"a":2}`), at, 5*time.Minute) {
		t.Error("a changed body verifies")
	}
	if Verify(NewSecret(testSecret), "msg_1", "1700000000", h, body, at.Add(time.Hour), 5*time.Minute) {
		t.Error("an old timestamp verifies")
	}
}

func TestParseKeysRefusesWithoutQuoting(t *testing.T) {
	for name, s := range map[string]string{
		"empty":        "  ",
		"no prefix":    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"not base64":   "whsec_!!!notbase64!!!",
		"too short":    "whsec_c2hvcnQ=",
		"three values": testSecret + " " + testSecret + " " + testSecret,
		// Receivers' libraries decode the key as standard, padded base64 (Python's b64decode, Go's
		// StdEncoding): a key they cannot decode, or decode to other bytes, never verifies.
		"url-safe base64": "whsec_" + strings.Repeat("-_", 16),
		"unpadded base64": "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGQ",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKeys(NewSecret(s))
			if !errors.Is(err, ErrBadSecret) {
				t.Fatalf("err = %v, want ErrBadSecret", err)
			}
			if strings.TrimSpace(s) != "" && strings.Contains(err.Error(), strings.Fields(s)[0]) {
				t.Fatalf("the message quotes the secret: %v", err)
			}
		})
	}
}

func TestSecretRedacts(t *testing.T) {
	s := NewSecret(testSecret)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "s", s, "in", struct{ S Secret }{s})
	j, _ := json.Marshal(map[string]any{"s": s})
	for _, out := range []string{fmt.Sprintf("%v %s %q %#v %x %+v", s, s, s, s, s, struct{ s Secret }{s}), buf.String(), string(j)} {
		if strings.Contains(out, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
			t.Fatalf("the secret leaks: %s", out)
		}
	}
	if s.Reveal() != testSecret || NewSecret("") != (Secret{}) {
		t.Fatal("Reveal or the zero value is wrong")
	}
}

// token is the document every test event carries.
func token() document.Token {
	till := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	return document.Token{AccessToken: clear.NewAccessToken(testToken), ValidTill: &till,
		IssuedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Client: "acme", APIClient: 2}
}

func TestEventBodyHasNoTokenAndAStableID(t *testing.T) {
	ev := NewEvent("acme", "arn:aws:secretsmanager:us-east-1:1:secret:tok", "v1", token(), Scheduled)
	b := ev.Body()
	if bytes.Contains(b, []byte(testToken)) || bytes.Contains(b, []byte("REDACTED")) {
		t.Fatalf("the body carries the token field: %s", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": EventType, "client": "acme", "secret_id": "arn:aws:secretsmanager:us-east-1:1:secret:tok",
		"version_id": "v1", "valid_till": "2026-12-03T10:00:00Z", "issued_at": "2026-12-02T10:00:00Z", "api_client": 2.0, "reason": "scheduled"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("body has fields %v, want exactly %v", m, want)
	}
	// A token that never expires has a null valid_till; an unknown API client is left out.
	forever := token()
	forever.ValidTill, forever.APIClient = nil, 0
	m = nil
	if err := json.Unmarshal(NewEvent("acme", "tok", "v1", forever, Healed).Body(), &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m["valid_till"]; !ok || v != nil {
		t.Errorf("valid_till of a token that never expires: %v (present %v), want null", v, ok)
	}
	if _, ok := m["api_client"]; ok {
		t.Errorf("an unknown API client is in the body: %v", m)
	}
	again := NewEvent("acme", "arn:aws:secretsmanager:us-east-1:1:secret:tok", "v1", token(), Forced)
	other := NewEvent("acme", "arn:aws:secretsmanager:us-east-1:1:secret:tok", "v2", token(), Scheduled)
	if ev.ID != again.ID || ev.ID == other.ID || !strings.HasPrefix(ev.ID, "msg_") {
		t.Fatalf("ids %q %q %q: want the same per version, distinct between versions", ev.ID, again.ID, other.ID)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		err    error
		want   Verdict
	}{
		{200, nil, Delivered}, {204, nil, Delivered}, {299, nil, Delivered},
		{500, nil, Retry}, {502, nil, Retry}, {503, nil, Retry}, {599, nil, Retry},
		{408, nil, Retry}, {429, nil, Retry},
		{400, nil, GiveUp}, {401, nil, GiveUp}, {404, nil, GiveUp}, {410, nil, GiveUp},
		{301, nil, GiveUp}, {302, nil, GiveUp}, {100, nil, GiveUp}, {600, nil, GiveUp}, {-1, nil, GiveUp},
		{0, context.DeadlineExceeded, Retry}, {0, errors.New("connection refused"), Retry},
		{0, &permanentError{errors.New("bad")}, GiveUp}, {0, nil, GiveUp},
	} {
		if got := Classify(tc.status, tc.err); got != tc.want {
			t.Errorf("Classify(%d, %v) = %s, want %s", tc.status, tc.err, got, tc.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	run := Policy{Backoff: timing.Backoff{Base: time.Second, Cap: 4 * time.Second}, Attempts: 3, ReportAt: 3}
	forever := Policy{Backoff: timing.Backoff{Base: time.Second, Cap: 4 * time.Second}, ReportAt: 2}
	for name, tc := range map[string]struct {
		p       Policy
		failed  int
		v       Verdict
		again   bool
		wait    time.Duration // with r = 0.999...: the ceiling, near enough
		failing bool
	}{
		"first retry":           {run, 1, Retry, true, time.Second, false},
		"second retry":          {run, 2, Retry, true, 2 * time.Second, false},
		"attempts spent":        {run, 3, Retry, false, 0, true},
		"refused":               {run, 1, GiveUp, false, 0, true},
		"forever keeps going":   {forever, 50, Retry, true, 4 * time.Second, true},
		"forever reports at 2":  {forever, 2, Retry, true, 2 * time.Second, true},
		"forever quiet at 1":    {forever, 1, Retry, true, time.Second, false},
		"delivered":             {run, 1, Delivered, false, 0, false},
		"report beyond attempt": {Policy{Attempts: 2, ReportAt: 9}, 2, Retry, false, 0, true},
		"zero failures":         {run, 0, Retry, true, 0, false},
	} {
		wait, again := tc.p.Next(tc.failed, tc.v, 0.9999999, 0)
		if again != tc.again || wait.Round(time.Millisecond) != tc.wait {
			t.Errorf("%s: Next = %s, %v; want %s, %v", name, wait, again, tc.wait, tc.again)
		}
		if got := tc.p.Failing(tc.failed, tc.v); got != tc.failing {
			t.Errorf("%s: Failing = %v, want %v", name, got, tc.failing)
		}
	}
	// A receiver's Retry-After lengthens the wait, never beyond the backoff's cap, and never
	// shortens it.
	for name, tc := range map[string]struct {
		p      Policy
		failed int
		asked  time.Duration
		wait   time.Duration
	}{
		"asks longer":          {forever, 1, 3 * time.Second, 3 * time.Second},
		"asks beyond the cap":  {forever, 1, time.Hour, 4 * time.Second},
		"asks shorter":         {forever, 2, 100 * time.Millisecond, 2 * time.Second},
		"asks nothing":         {forever, 2, 0, 2 * time.Second},
		"attempts spent":       {run, 3, time.Second, 0},
		"absurd negative wait": {forever, 1, -time.Hour, time.Second},
	} {
		wait, _ := tc.p.Next(tc.failed, Retry, 0.9999999, tc.asked)
		if wait.Round(time.Millisecond) != tc.wait {
			t.Errorf("%s: Next = %s, want %s", name, wait, tc.wait)
		}
	}
}

// The shipped policies keep the numbers docs/consumers.md gives: rotate, revoke and the Lambda make
// four attempts 1 to 8 s apart (7 to 14 s of waits) and report when they give up; the daemon reports
// after five failed attempts (15 to 30 s of waits), then keeps trying at least every five minutes.
func TestShippedPolicies(t *testing.T) {
	// waits returns the least and the most the policy waits after each of the first n failures.
	waits := func(p Policy, n int) (least, most []time.Duration) {
		for failed := 1; failed <= n; failed++ {
			lo, again := p.Next(failed, Retry, 0, 0)
			hi, _ := p.Next(failed, Retry, 0.9999999, 0)
			if !again {
				break
			}
			least, most = append(least, lo), append(most, hi.Round(time.Millisecond))
		}
		return least, most
	}
	sum := func(ds []time.Duration) (s time.Duration) {
		for _, d := range ds {
			s += d
		}
		return s
	}
	least, most := waits(Run, 10)
	if len(least) != 3 || least[0] != time.Second || most[2] != 8*time.Second || sum(least) != 7*time.Second || sum(most) != 14*time.Second {
		t.Errorf("Run waits %v to %v; want three waits (four attempts), 1 to 8 s apart, 7 to 14 s in all", least, most)
	}
	if Run.Failing(3, Retry) || !Run.Failing(4, Retry) {
		t.Error("Run does not report when its fourth attempt fails")
	}
	least, most = waits(Daemon, 4)
	if sum(least) != 15*time.Second || sum(most) != 30*time.Second {
		t.Errorf("Daemon waits %v to %v before its fifth attempt; want 15 to 30 s in all", least, most)
	}
	if Daemon.Failing(4, Retry) || !Daemon.Failing(5, Retry) {
		t.Error("Daemon does not report at its fifth failed attempt")
	}
	for _, failed := range []int{5, 20, 1000, math.MaxInt} {
		wait, again := Daemon.Next(failed, Retry, 0.9999999, time.Hour)
		if !again || wait > 5*time.Minute {
			t.Errorf("Daemon after %d failures: %s, %v; want another attempt within five minutes", failed, wait, again)
		}
	}
}

// fakeTarget answers attempts from a script, then succeeds; it records the ids it was given.
type fakeTarget struct {
	name    string
	mu      sync.Mutex
	script  []Verdict
	ids     []string
	times   []time.Time
	forever Verdict // after the script; Delivered when zero
}

func (f *fakeTarget) kind() string { return f.name }
func (f *fakeTarget) attempt(ctx context.Context, ev Event) (Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, ev.ID)
	f.times = append(f.times, time.Now())
	v := f.forever
	if len(f.script) > 0 {
		v, f.script = f.script[0], f.script[1:]
	}
	if v != Delivered {
		return v, fmt.Errorf("scripted %s", v)
	}
	return v, nil
}

// from makes every attempt from now on answer v.
func (f *fakeTarget) from(v Verdict) {
	f.mu.Lock()
	f.forever = v
	f.mu.Unlock()
}

func (f *fakeTarget) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

func newTestNotifier(p Policy, log *bytes.Buffer, ts ...*fakeTarget) (*Notifier, *Stats) {
	st := &Stats{}
	n := &Notifier{Policy: p, Rand: func() float64 { return 0 }, Recorder: st,
		Log: slog.New(slog.NewTextHandler(log, nil))}
	n.targets = func(Event) []target {
		out := make([]target, len(ts))
		for i, t := range ts {
			out[i] = t
		}
		return out
	}
	return n, st
}

func TestDeliverRetriesWithTheSameIDAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		wh := &fakeTarget{name: "webhook", script: []Verdict{Retry, Retry}}
		n, st := newTestNotifier(Run, &log, wh)
		ev := NewEvent("acme", "tok", "v1", token(), Scheduled)
		start := time.Now()
		if err := n.Deliver(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		ids := wh.seen()
		if len(ids) != 3 || ids[0] != ev.ID || ids[1] != ev.ID || ids[2] != ev.ID {
			t.Fatalf("attempts %v, want three with id %s", ids, ev.ID)
		}
		// Rand 0: half of each ceiling (2 s, 4 s).
		if got := wh.times[1].Sub(start); got != time.Second {
			t.Errorf("second attempt after %s, want 1s", got)
		}
		if got := wh.times[2].Sub(wh.times[1]); got != 2*time.Second {
			t.Errorf("third attempt after %s, want 2s", got)
		}
		if s := st.Snapshot(); len(s) != 1 || s[0].Failing || s[0].Failures != 0 {
			t.Errorf("stats %+v, want delivered and no failure", s)
		}
		if strings.Contains(log.String(), "level=ERROR") {
			t.Errorf("an error was logged for a delivery that succeeded within its attempts:\n%s", log.String())
		}
	})
}

func TestDeliverGivesUpOnA4xxAtOnceAndReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		wh := &fakeTarget{name: "webhook", script: []Verdict{GiveUp}}
		hook := &fakeTarget{name: "hook"}
		n, st := newTestNotifier(Run, &log, wh, hook)
		err := n.Deliver(t.Context(), NewEvent("acme", "tok", "v1", token(), Scheduled))
		var de *Error
		if !errors.As(err, &de) || de.Kind != "webhook" || de.Attempts != 1 {
			t.Fatalf("err = %v, want the webhook's *Error after 1 attempt", err)
		}
		if len(wh.seen()) != 1 || len(hook.seen()) != 1 {
			t.Fatalf("attempts: webhook %d, hook %d; want 1 and 1", len(wh.seen()), len(hook.seen()))
		}
		s := st.Snapshot()
		if len(s) != 2 || s[0].Kind != "hook" || s[0].Failing || s[1].Kind != "webhook" || !s[1].Failing || s[1].Failures != 1 {
			t.Fatalf("stats %+v", s)
		}
		if !strings.Contains(log.String(), "level=ERROR") {
			t.Fatalf("no error line:\n%s", log.String())
		}
		var m bytes.Buffer
		st.WriteMetrics(&m)
		for _, want := range []string{
			`clear_rotator_delivery_failures_total{client="acme",kind="webhook"} 1`,
			`clear_rotator_delivery_failing{client="acme",kind="webhook"} 1`,
			`clear_rotator_delivery_failing{client="acme",kind="hook"} 0`,
			`clear_rotator_delivery_last_failure_timestamp_seconds{client="acme",kind="webhook"} `,
		} {
			if !strings.Contains(m.String(), want) {
				t.Errorf("metrics lack %q:\n%s", want, m.String())
			}
		}
	})
}

func TestDeliverWithinARunGivesUpAfterItsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		wh := &fakeTarget{name: "webhook", forever: Retry}
		n, _ := newTestNotifier(Run, &log, wh)
		start := time.Now()
		err := n.Deliver(t.Context(), NewEvent("acme", "tok", "v1", token(), Scheduled))
		var de *Error
		if !errors.As(err, &de) || de.Attempts != Run.Attempts {
			t.Fatalf("err = %v, want *Error after %d attempts", err, Run.Attempts)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Fatalf("a run's delivery took %s", took)
		}
		if c := strings.Count(log.String(), "level=ERROR"); c != 1 {
			t.Fatalf("%d error lines, want 1:\n%s", c, log.String())
		}
	})
}

func TestDaemonPolicyKeepsRetryingAndClearsTheFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		script := make([]Verdict, 20)
		for i := range script {
			script[i] = Retry
		}
		wh := &fakeTarget{name: "webhook", script: script}
		n, st := newTestNotifier(Daemon, &log, wh)
		if err := n.Deliver(t.Context(), NewEvent("acme", "tok", "v1", token(), Scheduled)); err != nil {
			t.Fatal(err)
		}
		if got := len(wh.seen()); got != 21 {
			t.Fatalf("%d attempts, want 21", got)
		}
		s := st.Snapshot()
		if len(s) != 1 || s[0].Failing || s[0].Failures != 1 {
			t.Fatalf("stats %+v: want one failure reported, then cleared", s)
		}
		if !strings.Contains(log.String(), "delivered after all") {
			t.Fatalf("no recovery line:\n%s", log.String())
		}
	})
}

// failingDispatcher is a daemon's dispatcher whose webhook fails until told otherwise (from).
func failingDispatcher(t *testing.T) (*fakeTarget, *Notifier, *Dispatcher, context.Context, context.CancelFunc) {
	wh := &fakeTarget{name: "webhook", forever: Retry}
	n, _ := newTestNotifier(Daemon, &bytes.Buffer{}, wh)
	ctx, cancel := context.WithCancel(t.Context())
	return wh, n, &Dispatcher{}, ctx, cancel
}

func TestDispatcherSupersedesAnOlderToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wh, n, d, ctx, cancel := failingDispatcher(t)
		old := NewEvent("acme", "tok", "v1", token(), Scheduled)
		d.Post(ctx, n, old)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		tried := len(wh.seen())
		wh.from(Delivered)
		newer := NewEvent("acme", "tok", "v2", token(), Scheduled)
		d.Post(ctx, n, newer)
		synctest.Wait()
		ids := wh.seen()
		if len(ids) != tried+1 || ids[len(ids)-1] != newer.ID {
			t.Fatalf("after the newer token: attempts %v, want the old one's %d then one of %s", ids, tried, newer.ID)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := len(wh.seen()); got != tried+1 {
			t.Fatalf("the superseded delivery carried on: %d attempts", got)
		}
		cancel()
		d.Wait()
	})
}

func TestDispatcherStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		wh := &fakeTarget{name: "webhook", forever: Retry}
		n, _ := newTestNotifier(Daemon, &log, wh)
		d := &Dispatcher{}
		ctx, cancel := context.WithCancel(t.Context())
		d.Post(ctx, n, NewEvent("acme", "tok", "v1", token(), Scheduled))
		time.Sleep(time.Minute)
		cancel()
		d.Wait()
	})
}

// Stop lets a delivery in flight succeed within its time; one still retrying after that is
// reported as failed, once, and a superseded one is not reported.
func TestDispatcherStopReportsWhatItCutShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		acme := &fakeTarget{name: "webhook", forever: Retry}
		n, st := newTestNotifier(Daemon, &log, acme)
		d := &Dispatcher{}
		d.Post(t.Context(), n, NewEvent("acme", "tok", "v1", token(), Scheduled)) // superseded
		d.Post(t.Context(), n, NewEvent("acme", "tok", "v2", token(), Scheduled))
		time.Sleep(3 * time.Second)
		stop, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		d.Stop(stop)
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("Stop took %s, want its context's 2s", took)
		}
		if c := strings.Count(log.String(), "the rotator stopped before delivering it"); c != 1 {
			t.Fatalf("%d stop lines, want 1 (v2's):\n%s", c, log.String())
		}
		if !strings.Contains(log.String(), "version_id=v2") {
			t.Fatalf("the stop line is not v2's:\n%s", log.String())
		}
		if s := st.Snapshot(); len(s) != 1 || !s[0].Failing || s[0].Failures != 1 {
			t.Fatalf("stats %+v, want one failure", s)
		}

		// A delivery that succeeds while Stop waits is not reported; Stop returns when it does.
		var log2 bytes.Buffer
		ok := &fakeTarget{name: "webhook", script: []Verdict{Retry}}
		n2, st2 := newTestNotifier(Daemon, &log2, ok)
		d2 := &Dispatcher{}
		d2.Post(t.Context(), n2, NewEvent("acme", "tok", "v3", token(), Scheduled))
		synctest.Wait()
		start = time.Now()
		d2.Stop(t.Context())
		if took := time.Since(start); took != time.Second {
			t.Errorf("Stop took %s, want the 1s until the second attempt", took)
		}
		if s := st2.Snapshot(); len(s) != 1 || s[0].Failing || strings.Contains(log2.String(), "stopped") {
			t.Fatalf("stats %+v, log:\n%s", s, log2.String())
		}
		// A token posted after Stop is reported at once.
		d2.Post(t.Context(), n2, NewEvent("acme", "tok", "v4", token(), Scheduled))
		d2.Wait()
		if !strings.Contains(log2.String(), "the rotator stopped before delivering it") {
			t.Fatalf("a token posted after Stop was not reported:\n%s", log2.String())
		}
	})
}

// Redeliver starts again, with the new notifier and the same id, what was given up or is still
// retrying, and leaves alone what was delivered.
func TestDispatcherRedeliversWhatIsNotDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		refused := &fakeTarget{name: "webhook", script: []Verdict{GiveUp}}
		n1, _ := newTestNotifier(Daemon, &log, refused)
		d := &Dispatcher{}
		ev := NewEvent("acme", "tok", "v1", token(), Scheduled)
		d.Post(t.Context(), n1, ev)
		synctest.Wait()

		fixed := &fakeTarget{name: "webhook"}
		n2, st := newTestNotifier(Daemon, &log, fixed)
		d.Redeliver(t.Context(), n2)
		synctest.Wait()
		if ids := fixed.seen(); len(ids) != 1 || ids[0] != ev.ID {
			t.Fatalf("after the reload: attempts %v, want one with %s", ids, ev.ID)
		}
		if s := st.Snapshot(); len(s) != 1 || s[0].LastDelivery.IsZero() {
			t.Fatalf("stats %+v, want delivered", s)
		}
		d.Redeliver(t.Context(), n2)
		synctest.Wait()
		if got := len(fixed.seen()); got != 1 {
			t.Fatalf("a delivered event was delivered again: %d attempts", got)
		}

		// A delivery still retrying moves to the reloaded notifier; one whose client the reload
		// no longer tells ends.
		retrying := &fakeTarget{name: "webhook", forever: Retry}
		n3, _ := newTestNotifier(Daemon, &log, retrying)
		d.Post(t.Context(), n3, NewEvent("acme", "tok", "v2", token(), Scheduled))
		time.Sleep(time.Minute)
		synctest.Wait()
		tried := len(retrying.seen())
		d.Redeliver(t.Context(), &Notifier{})
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := len(retrying.seen()); got != tried {
			t.Fatalf("the delivery carried on after a reload that removed it: %d attempts, then %d", tried, got)
		}
		d.Wait()
	})
}

// A token stored elsewhere supersedes a delivery as a newer one posted here would: it ends, with no
// error and no failure left standing. A Current that cannot tell does not stop the delivery.
func TestDeliverEndsWhenCurrentSaysSuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log bytes.Buffer
		wh := &fakeTarget{name: "webhook", forever: Retry}
		n, st := newTestNotifier(Daemon, &log, wh)
		var mu sync.Mutex
		current, answers := true, 0
		n.Current = func(context.Context, Event) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			answers++
			if answers == 2 {
				return false, errors.New("throttled") // cannot tell: attempt anyway
			}
			return current, nil
		}
		done := make(chan error)
		go func() { done <- n.Deliver(t.Context(), NewEvent("acme", "tok", "v1", token(), Scheduled)) }()
		time.Sleep(time.Minute) // past ReportAt: the failure is reported
		synctest.Wait()
		if s := st.Snapshot(); len(s) != 1 || !s[0].Failing {
			t.Fatalf("stats %+v, want failing", s)
		}
		mu.Lock()
		current = false
		mu.Unlock()
		if err := <-done; err != nil {
			t.Fatalf("a superseded delivery returned %v", err)
		}
		tried := len(wh.seen())
		if s := st.Snapshot(); s[0].Failing {
			t.Fatalf("stats %+v: a superseded delivery still counts as failing", s)
		}
		if tried < 6 {
			t.Fatalf("%d attempts: the Current that could not tell stopped an attempt", tried)
		}
	})
}

// A delivery recorded as failed elsewhere is resumed only for a client with nothing of its own
// pending or in flight: this process's own delivery is of a token at least as new.
func TestDispatcherResumesOnlyAnIdleClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wh, n, d, ctx, cancel := failingDispatcher(t)
		own := NewEvent("acme", "tok", "v2", token(), Scheduled)
		d.Post(ctx, n, own)
		if d.Resume(ctx, n, NewEvent("acme", "tok", "v1", token(), Scheduled), nil) {
			t.Fatal("resumed over the client's own delivery in flight")
		}
		wh.from(Delivered)
		time.Sleep(time.Minute)
		synctest.Wait()
		other := NewEvent("other", "tok2", "v7", token(), Forced)
		if !d.Resume(ctx, n, other, nil) {
			t.Fatal("an idle client's delivery was not resumed")
		}
		synctest.Wait()
		if ids := wh.seen(); ids[len(ids)-1] != other.ID {
			t.Fatalf("attempts %v, want the resumed one last", ids)
		}
		// A record read before this process delivered the event (a reload's read racing the
		// redelivery) is stale: the event is not told again.
		if d.Resume(ctx, n, own, nil) || d.Resume(ctx, n, other, nil) {
			t.Fatal("an event this process delivered was resumed")
		}
		cancel()
		d.Wait()
	})
}

// A delivery of this process's own that was refused (given up, still pending for a reload) keeps
// only that event from being resumed: a newer token another process recorded is resumed at once.
// It had waited for a reload (the review of the daemon's looks, finding 4).
func TestDispatcherResumesANewerTokenPastItsOwnRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wh := &fakeTarget{name: "webhook", script: []Verdict{GiveUp}}
		n, _ := newTestNotifier(Daemon, &bytes.Buffer{}, wh)
		d := &Dispatcher{}
		ctx, cancel := context.WithCancel(t.Context())
		own := NewEvent("acme", "tok", "v1", token(), Scheduled)
		d.Post(ctx, n, own)
		synctest.Wait()
		if d.Resume(ctx, n, own, nil) {
			t.Fatal("resumed its own refused delivery: a refusing receiver would be asked at every check")
		}
		newer := NewEvent("acme", "tok", "v2", token(), Forced)
		if !d.Resume(ctx, n, newer, nil) {
			t.Fatal("its own refused delivery of an older token kept a newer one from being resumed")
		}
		synctest.Wait()
		if ids := wh.seen(); len(ids) != 2 || ids[1] != newer.ID {
			t.Fatalf("attempts %v, want the refused one and the newer one", ids)
		}
		cancel()
		d.Wait()
	})
}

// A reload delivers a resumed delivery again to the kinds it was resumed for only: a hook that ran
// is not run again because the webhook was refused (finding 8).
func TestRedeliverKeepsTheKindsOfAResumedDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wh := &fakeTarget{name: "webhook", script: []Verdict{GiveUp}}
		hook := &fakeTarget{name: "hook"}
		n, _ := newTestNotifier(Daemon, &bytes.Buffer{}, wh, hook)
		d := &Dispatcher{}
		ctx, cancel := context.WithCancel(t.Context())
		ev := NewEvent("acme", "tok", "v1", token(), Scheduled)
		if !d.Resume(ctx, n, ev, []string{KindWebhook}) {
			t.Fatal("not resumed")
		}
		synctest.Wait()
		d.Redeliver(ctx, n)
		synctest.Wait()
		if got, ran := len(wh.seen()), len(hook.seen()); got != 2 || ran != 0 {
			t.Fatalf("webhook attempts %d, hook runs %d; want 2 and 0", got, ran)
		}
		cancel()
		d.Wait()
	})
}

// Only keeps the kinds listed, so that a resumed delivery does not run a hook that succeeded.
func TestNotifierOnly(t *testing.T) {
	n := &Notifier{URLs: map[string]string{"acme": "https://erp.example.com/h"}, Hook: &Hook{Args: []string{"/bin/true"}}}
	if o := n.Only([]string{"hook"}); o.Tells("acme", "webhook") || !o.Tells("acme", "hook") {
		t.Fatal("Only(hook) still tells the webhook, or not the hook")
	}
	if o := n.Only([]string{"webhook"}); !o.Tells("acme", "webhook") || o.Tells("acme", "hook") {
		t.Fatal("Only(webhook) still runs the hook, or tells no webhook")
	}
	if n.Only(nil).Enabled("acme") || !n.Tells("acme", "webhook") || !n.Tells("acme", "hook") {
		t.Fatal("Only(nil) tells something, or Only changed the notifier it copied")
	}
	if (*Notifier)(nil).Only([]string{"webhook"}) != nil {
		t.Fatal("Only of no notifier")
	}
}

// An event's body is the same whichever process renders it: from the token as Clear's answer gave
// it (issued_at to the nanosecond) or as the token document holds it (to the second), as a resumed
// delivery reads it. The same webhook-id carried two bodies, and two issued_at that compare the
// wrong way round as strings (an audit's walk-through).
func TestEventBodyIsTheDocumentsWhoeverRendersIt(t *testing.T) {
	tok := token()
	tok.IssuedAt = tok.IssuedAt.Add(187277053 * time.Nanosecond)
	doc, err := document.MarshalToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := document.ParseToken(doc)
	if err != nil {
		t.Fatal(err)
	}
	live, resumed := NewEvent("acme", "tok", "v1", tok, Forced).Body(), NewEvent("acme", "tok", "v1", stored, Forced).Body()
	if !bytes.Equal(live, resumed) || !bytes.Contains(live, []byte(`"issued_at":"2026-12-02T10:00:00Z"`)) {
		t.Errorf("the body from Clear's answer:\n%s\nfrom the token document:\n%s", live, resumed)
	}
}

// finalLog is a Recorder that is also a Finisher, and keeps what it was told.
type finalLog struct {
	mu    sync.Mutex
	calls []string
}

func (f *finalLog) add(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *finalLog) Failed(ev Event, kind string, _ time.Time) {
	f.add(fmt.Sprintf("failed retrying=%v", ev.Retrying))
}
func (f *finalLog) Delivered(Event, string, time.Time)  { f.add("delivered") }
func (f *finalLog) Superseded(Event, string, time.Time) { f.add("superseded") }
func (f *finalLog) GaveUp(Event, string, time.Time)     { f.add("gave up") }
func (f *finalLog) got() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ", ")
}

// A failure the daemon reports while it keeps retrying says so (Event.Retrying), so that the record
// on the token secret tells a replica to leave it to the daemon retrying it; when that delivery then
// ends undelivered after all (a refusal, the process stopping), the recorder hears that the record
// is final (Finisher), so that a replica takes it up. The Run policy's report is final at once.
func TestAReportedFailureSaysWhetherItIsStillRetried(t *testing.T) {
	for name, tc := range map[string]struct {
		policy Policy
		script []Verdict
		stop   bool
		want   string
	}{
		"retrying, then delivered": {Daemon, []Verdict{Retry, Retry, Retry, Retry, Retry}, false, "failed retrying=true, delivered"},
		"retrying, then refused":   {Daemon, []Verdict{Retry, Retry, Retry, Retry, Retry, GiveUp}, false, "failed retrying=true, gave up"},
		"retrying, then stopped":   {Daemon, []Verdict{Retry, Retry, Retry, Retry, Retry, Retry, Retry}, true, "failed retrying=true, gave up"},
		"refused at once":          {Daemon, []Verdict{GiveUp}, false, "failed retrying=false"},
		"a run gives up":           {Run, []Verdict{Retry, Retry, Retry, Retry}, false, "failed retrying=false"},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wh := &fakeTarget{name: "webhook", script: tc.script}
				n, _ := newTestNotifier(tc.policy, &bytes.Buffer{}, wh)
				rec := &finalLog{}
				n.Recorder = rec
				ctx, cancel := context.WithCancelCause(t.Context())
				done := make(chan error)
				go func() { done <- n.Deliver(ctx, NewEvent("acme", "tok", "v1", token(), Scheduled)) }()
				if tc.stop {
					time.Sleep(2 * time.Minute)
					cancel(ErrStopped)
				}
				<-done
				cancel(nil)
				if got := rec.got(); got != tc.want {
					t.Errorf("told %q, want %q", got, tc.want)
				}
			})
		})
	}
}

// refreshLog is a finalLog that is also told when a failing delivery that goes on is still tried.
type refreshLog struct {
	finalLog
	refreshed []time.Time
}

func (r *refreshLog) StillRetrying(ev Event, _ string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Retrying {
		r.refreshed = append(r.refreshed, at)
	}
}

// A delivery the daemon goes on retrying renews its record every RetryRecordEvery, so that the
// other replicas, which leave a fresh record to its retrier, take it up only once the retrier has
// gone quiet; the metrics count the failure once.
func TestAFailingDeliveryRenewsItsRecordWhileItGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wh := &fakeTarget{name: "webhook", forever: Retry}
		n, st := newTestNotifier(Daemon, &bytes.Buffer{}, wh)
		rec := &refreshLog{}
		n.Recorder = recorders{rec, st}
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		done := make(chan error)
		go func() { done <- n.Deliver(ctx, NewEvent("acme", "tok", "v1", token(), Scheduled)) }()
		time.Sleep(time.Hour)
		cancel()
		<-done
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.refreshed) < 4 || len(rec.refreshed) > 6 {
			t.Fatalf("renewed %d times in an hour (%v), want about every %s", len(rec.refreshed), rec.refreshed, RetryRecordEvery)
		}
		last := start
		for _, at := range rec.refreshed {
			if at.Sub(last) < RetryRecordEvery || at.Sub(last) > RetryRecordEvery+Daemon.Backoff.Cap {
				t.Fatalf("renewed at %v after %v: want every %s, within the backoff's cap", at.Sub(start), at.Sub(last), RetryRecordEvery)
			}
			last = at
		}
		if s := st.Snapshot(); len(s) != 1 || s[0].Failures != 1 {
			t.Fatalf("stats %+v: the failure counted more than once", s)
		}
	})
}

// recorders tells each of its recorders, and the first one's optional interfaces.
type recorders struct {
	first *refreshLog
	rest  Recorder
}

func (r recorders) Failed(ev Event, k string, at time.Time) {
	r.first.Failed(ev, k, at)
	r.rest.Failed(ev, k, at)
}
func (r recorders) Delivered(ev Event, k string, at time.Time) {
	r.first.Delivered(ev, k, at)
	r.rest.Delivered(ev, k, at)
}
func (r recorders) Superseded(ev Event, k string, at time.Time) {
	r.first.Superseded(ev, k, at)
	r.rest.Superseded(ev, k, at)
}
func (r recorders) StillRetrying(ev Event, k string, at time.Time) { r.first.StillRetrying(ev, k, at) }
