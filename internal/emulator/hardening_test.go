package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

const secretB = "second-api-client-secret-0123456789abcdef"

// TestRevocationIsPerSecret: Clear revokes the previous token of the client secret that asked,
// and only that one. Two API clients must never revoke each other's tokens.
func TestRevocationIsPerSecret(t *testing.T) {
	e := newEnv(t, Options{Lifetime: time.Hour, Secrets: []string{secret, secretB}})
	a1 := e.mustToken(t)
	gb, err := e.token(context.Background(), secretB)
	if err != nil {
		t.Fatal(err)
	}
	b1 := gb.AccessToken.Reveal()
	a2 := e.mustToken(t)
	if e.emu.Live(a1) || !e.emu.Live(a2) {
		t.Fatal("asking with secret A again must revoke A's previous token and keep the new one")
	}
	if !e.emu.Live(b1) {
		t.Fatal("asking with secret A revoked secret B's token")
	}
	e.emu.SetIPBlocked(secret, true)
	if _, err := e.token(context.Background(), secret); err == nil || !e.emu.Live(a2) || !e.emu.Live(b1) {
		t.Fatalf("an IP-blocked request (%v) must revoke nothing", err)
	}
	e.emu.SetSecretActive(secret, false)
	if e.emu.Live(a2) || !e.emu.Live(b1) {
		t.Fatal("deleting API client A must revoke A's token and only A's")
	}
	if got := e.emu.Issued(secretB); got != 1 {
		t.Fatalf("Issued(B) = %d, want 1", got)
	}
}

// TestRetryAfter covers the daily limit's Retry-After (Options.RetryAfter) and 429 faults with
// delta-seconds, an HTTP-date measured against the emulator's Date header, and garbage.
func TestRetryAfter(t *testing.T) {
	e := newEnv(t, Options{DailyLimit: 1, RetryAfter: true})
	e.mustToken(t)
	_, err := e.token(context.Background(), secret)
	ce := clearErr(t, err, clear.KindRateLimited)
	// start is 19:21:24.5 UTC: 4h38m35.5s to midnight, rounded up to whole seconds.
	if want := 4*time.Hour + 38*time.Minute + 36*time.Second; ce.RetryAfter != want {
		t.Fatalf("daily limit: RetryAfter = %v, want %v", ce.RetryAfter, want)
	}
	if !strings.Contains(ce.Error(), "retry after 4h38m36s") {
		t.Fatalf("the error does not say when to retry: %v", ce)
	}
	e.emu.SetRetryAfter(false)
	_, err = e.token(context.Background(), secret)
	if ce := clearErr(t, err, clear.KindRateLimited); ce.RetryAfter != 0 {
		t.Fatalf("without Retry-After: RetryAfter = %v", ce.RetryAfter)
	}

	f := newEnv(t, Options{})
	// The emulator's clock is 19:21:24.5; its Date header says 19:21:24, and the HTTP-date is
	// measured against that, not against the test's own clock.
	at := start.Truncate(time.Second).Add(5 * time.Minute).Format(http.TimeFormat)
	f.emu.Inject(RateLimited("120"), RateLimited(at), RateLimited("soon"), RateLimited(""))
	for _, want := range []time.Duration{2 * time.Minute, 5 * time.Minute, 0, 0} {
		_, err := f.token(context.Background(), secret)
		if ce := clearErr(t, err, clear.KindRateLimited); ce.RetryAfter != want {
			t.Fatalf("RetryAfter = %v, want %v", ce.RetryAfter, want)
		}
	}
}

func TestRequestTimeoutIsTransient(t *testing.T) {
	e := newEnv(t, Options{})
	e.emu.Inject(RequestTimeout())
	_, err := e.token(context.Background(), secret)
	if ce := clearErr(t, err, clear.KindTransient); ce.Status != http.StatusRequestTimeout || ce.Permanent() {
		t.Fatalf("408: %v", ce)
	}
}

// TestClearTextIsRedactedAndSanitized: an answer that echoes the client secret, or carries
// terminal escapes and bidi overrides, reaches no error text through the real client.
func TestClearTextIsRedactedAndSanitized(t *testing.T) {
	e := newEnv(t, Options{})
	e.emu.Inject(EchoSecret(), Fault{IssueThenFail: true, EchoSecret: true}, Fault{Status: 503, EchoSecret: true}, HostileText())
	for i, k := range []clear.Kind{clear.KindAuth, clear.KindTransient, clear.KindTransient, clear.KindTransient} {
		_, err := e.token(context.Background(), secret)
		ce := clearErr(t, err, k)
		text := ce.Error() + ce.Code + ce.Message + ce.ErrorID
		if strings.Contains(text, secret) || strings.Contains(text, secret[:20]) {
			t.Fatalf("answer %d: the client secret reached the error: %s", i+1, text)
		}
		if i < 3 && !strings.Contains(ce.Message, "[REDACTED]") {
			t.Fatalf("answer %d: the echo was not redacted but lost: %q", i+1, ce.Message)
		}
		for _, r := range text {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x202e || r == 0x2066 || r == 0x2069 || r == 0x2028 {
				t.Fatalf("answer %d: %U reached the error: %q", i+1, r, text)
			}
		}
	}
}

// TestValidTillDrift: a token whose valid_till is not understood is still a usable, live token;
// the client keeps it and reports the drift.
func TestValidTillDrift(t *testing.T) {
	e := newEnv(t, Options{Lifetime: time.Hour})
	e.emu.Inject(DriftNumber(), DriftEpochString(), DriftBareDate())
	for _, want := range []string{"is a number", `"1700000000" is not`, `"2023-04-11" is not`} {
		g, err := e.token(context.Background(), secret)
		if err != nil {
			t.Fatalf("a drifted valid_till discarded the token: %v", err)
		}
		if g.ValidTill != nil || !strings.Contains(g.Drift, want) {
			t.Fatalf("grant %v drift %q, want nil and %q", g.ValidTill, g.Drift, want)
		}
		if !e.emu.Live(g.AccessToken.Reveal()) {
			t.Fatal("the drifted token is not live")
		}
	}
}

func TestPastAndFixedValidTill(t *testing.T) {
	e := newEnv(t, Options{Lifetime: time.Hour})
	e.emu.Inject(PastValidTill())
	g, err := e.token(context.Background(), secret)
	if err != nil || g.ValidTill == nil || !g.ValidTill.Before(start) {
		t.Fatalf("past valid_till: %v %v", g.ValidTill, err)
	}
	if e.emu.Live(g.AccessToken.Reveal()) {
		t.Fatal("a token past its valid_till is live")
	}

	fixed := start.Add(10 * time.Minute).Truncate(time.Second)
	f := newEnv(t, Options{Lifetime: time.Hour, FixedValidTill: fixed})
	for range 3 {
		g := mustGrant(t, f)
		if g.ValidTill == nil || !g.ValidTill.Equal(fixed) {
			t.Fatalf("fixed valid_till: %v, want %v", g.ValidTill, fixed)
		}
		f.clock.Advance(time.Minute)
	}
	f.emu.SetFixedValidTill(time.Time{})
	if g := mustGrant(t, f); g.ValidTill == nil || !g.ValidTill.Equal(f.clock.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Fatalf("back to the lifetime: %v", g.ValidTill)
	}
}

func mustGrant(t *testing.T, e *env) clear.Grant {
	t.Helper()
	g, err := e.token(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestControlHardeningFaults(t *testing.T) {
	e := newEnv(t, Options{DailyLimit: 100})
	body := `[{"status":429,"retry_after":"60"},{"status":408},{"echo_secret":true},{"valid_till":1700000000},{"past_valid_till":true},{"status":500,"message":"x\u202ey"}]`
	if status := post(t, e.srv, "/_emulator/faults", body); status != http.StatusNoContent {
		t.Fatalf("POST faults: status %d", status)
	}
	_, err := e.token(context.Background(), secret)
	if ce := clearErr(t, err, clear.KindRateLimited); ce.RetryAfter != time.Minute {
		t.Fatalf("retry_after: %v", ce)
	}
	_, err = e.token(context.Background(), secret)
	clearErr(t, err, clear.KindTransient)
	_, err = e.token(context.Background(), secret)
	if ce := clearErr(t, err, clear.KindAuth); !strings.Contains(ce.Message, "[REDACTED]") {
		t.Fatalf("echo_secret: %v", ce)
	}
	if g := mustGrant(t, e); g.Drift == "" {
		t.Fatal("valid_till fault: no drift")
	}
	if g := mustGrant(t, e); g.ValidTill == nil || !g.ValidTill.Before(start) {
		t.Fatalf("past_valid_till: %v", g.ValidTill)
	}
	_, err = e.token(context.Background(), secret)
	if ce := clearErr(t, err, clear.KindTransient); ce.Message != "x y" {
		t.Fatalf("message: %q", ce.Message)
	}

	if status := post(t, e.srv, "/_emulator/valid_till", `{"fixed":"2030-01-02T03:04:05Z"}`); status != http.StatusNoContent {
		t.Fatalf("POST valid_till: %d", status)
	}
	if g := mustGrant(t, e); g.ValidTill == nil || g.ValidTill.Format(time.RFC3339) != "2030-01-02T03:04:05Z" {
		t.Fatalf("fixed valid_till: %v", g.ValidTill)
	}
	if status := post(t, e.srv, "/_emulator/valid_till", `{"fixed":""}`); status != http.StatusNoContent {
		t.Fatalf("POST valid_till: %d", status)
	}
	if g := mustGrant(t, e); g.ValidTill != nil {
		t.Fatalf("after clearing the fixed valid_till, lifetime 0 means null: %v", g.ValidTill)
	}
	for _, bad := range []string{`{"fixed":"tomorrow"}`, `{"fixd":""}`} {
		if status := post(t, e.srv, "/_emulator/valid_till", bad); status != http.StatusBadRequest {
			t.Fatalf("POST valid_till %s: %d", bad, status)
		}
	}
	if status := post(t, e.srv, "/_emulator/retry_after", `{"enabled":true}`); status != http.StatusNoContent {
		t.Fatalf("POST retry_after: %d", status)
	}
	if status := post(t, e.srv, "/_emulator/retry_after", `{}`); status != http.StatusBadRequest {
		t.Fatalf("POST retry_after without enabled: %d", status)
	}
	e.emu.mu.Lock()
	on := e.emu.retryAfter
	e.emu.mu.Unlock()
	if !on {
		t.Fatal("retry_after was not enabled")
	}
	for _, bad := range []string{`[{"valid_till":nope}]`, `[{"retry_after":"1\r\nX: y"}]`} {
		if status := post(t, e.srv, "/_emulator/faults", bad); status != http.StatusBadRequest {
			t.Fatalf("POST faults %s: %d", bad, status)
		}
	}
}

func TestHardeningFaultJSON(t *testing.T) {
	faults := []Fault{RateLimited("120"), RequestTimeout(), EchoSecret(), HostileText(), DriftNumber(),
		DriftEpochString(), DriftBareDate(), PastValidTill()}
	data, err := json.Marshal(faults)
	if err != nil {
		t.Fatal(err)
	}
	var back []Fault
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if string(again) != string(data) {
		t.Fatalf("round trip:\n%s\n%s", data, again)
	}
}

// TestTransportInSynctest runs the real clear.Client over Transport inside a synctest bubble: a
// delayed answer within the timeout arrives after exactly its delay, one beyond the timeout fails
// as transient when the timeout fires, and no goroutine is left behind (synctest.Test checks).
func TestTransportInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		emu := New(Options{Lifetime: time.Hour, Secrets: []string{secret}})
		defer emu.Close()
		c, err := clear.NewClient("http://127.0.0.1", &http.Client{Transport: emu.Transport(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		s := clear.NewClientSecret(secret)

		emu.Inject(Fault{Delay: 3 * time.Second})
		begin := time.Now()
		g, err := c.Token(context.Background(), s)
		if err != nil || time.Since(begin) != 3*time.Second || !emu.Live(g.AccessToken.Reveal()) {
			t.Fatalf("delayed answer: %v after %v", err, time.Since(begin))
		}
		if g.ValidTill == nil || !g.ValidTill.Equal(time.Now().Add(time.Hour).Truncate(time.Second)) {
			t.Fatalf("valid_till %v does not follow the bubble's clock", g.ValidTill)
		}

		emu.Inject(Fault{Delay: time.Minute})
		begin = time.Now()
		_, err = c.Token(context.Background(), s)
		var ce *clear.Error
		if !errors.As(err, &ce) || ce.Kind != clear.KindTransient || time.Since(begin) != 5*time.Second {
			t.Fatalf("slow answer: %v after %v", err, time.Since(begin))
		}
		if !emu.Live(g.AccessToken.Reveal()) || emu.Issued(secret) != 1 {
			t.Fatal("an answer the client gave up on issued a token")
		}

		// A cancelled context ends a hung request at once.
		emu.Inject(Fault{Hang: true})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		begin = time.Now()
		_, err = c.Token(ctx, s)
		if !errors.Is(err, context.Canceled) || time.Since(begin) != time.Second {
			t.Fatalf("cancelled request: %v after %v", err, time.Since(begin))
		}
		synctest.Wait()
	})
}
