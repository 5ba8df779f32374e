package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
)

// stages returns the token secret's staging labels, each with the version that holds it.
func (d *deployment) stages(t *testing.T) map[string]string {
	t.Helper()
	out, err := d.SM.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(d.TokenID)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for v, labels := range out.VersionIdsToStages {
		for _, l := range labels {
			m[l] = v
		}
	}
	return m
}

// currentVersion returns the AWSCURRENT version id (read by stage: moto 5.2.1 answers a read
// without one with the old version after UpdateSecretVersionStage).
func (d *deployment) currentVersion(t *testing.T) string {
	t.Helper()
	_, id, ok := d.Read("AWSCURRENT")
	if !ok {
		t.Fatal("the token secret has no AWSCURRENT")
	}
	return id
}

// step invokes one Secrets Manager rotation step and expects success.
func (f *function) step(secretID, token, step string) map[string]any {
	f.t.Helper()
	return f.ok(fmt.Sprintf(`{"SecretId":%q,"ClientRequestToken":%q,"Step":%q}`, secretID, token, step))
}

// TestBootstrapSecretsManagerRotation drives the four steps of Secrets Manager's own rotation
// through the built bootstrap, as Secrets Manager invokes them: with the secret's ARN, each step
// once and then again (Secrets Manager retries a step whose invocation failed or timed out). The
// webhook is told of the token createSecret stored, once.
func TestBootstrapSecretsManagerRotation(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	rc := d.Receiver()
	d.env = append(d.env, rc.Env()...)
	f := d.start(t)
	desc, err := d.SM.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(d.TokenID)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(desc.ARN)
	const token = "3e0f5b1a-9c4d-4a7e-8b2f-6d1c0e9a8b7f"

	// createSecret: one request, and AWSCURRENT holds the live token at once.
	ans := f.step(arn, token, "createSecret")
	if ans["client"] != "default" || ans["step"] != "createSecret" {
		t.Fatalf("createSecret answered %v", ans)
	}
	if n := d.ClearRequests(); n != 1 {
		t.Fatalf("Clear requests after createSecret = %d, want 1", n)
	}
	live := d.token()
	if d.currentVersion(t) != token || !d.Emu.Live(live) {
		t.Fatalf("right after createSecret AWSCURRENT is version %s (token live %v), want a live token in version %s", d.currentVersion(t), d.Emu.Live(live), token)
	}
	afterCreate := d.stages(t)
	if afterCreate["AWSPENDING"] != token {
		t.Fatalf("after createSecret stages = %v, want AWSPENDING on %s", afterCreate, token)
	}

	// Each step retried changes nothing.
	f.step(arn, token, "createSecret")
	for _, step := range []string{"setSecret", "setSecret", "testSecret", "testSecret"} {
		f.step(arn, token, step)
	}
	if got := d.stages(t); !maps.Equal(got, afterCreate) || d.ClearRequests() != 1 {
		t.Fatalf("retried steps: stages %v (were %v), Clear requests %d; want no change", got, afterCreate, d.ClearRequests())
	}

	// finishSecret: the version is AWSCURRENT and AWSPENDING is gone; retried, nothing moves.
	f.step(arn, token, "finishSecret")
	final := d.stages(t)
	if final["AWSCURRENT"] != token || final["AWSPENDING"] != "" {
		t.Fatalf("after finishSecret stages = %v, want AWSCURRENT on %s and no AWSPENDING", final, token)
	}
	if ans := f.step(arn, token, "finishSecret"); !strings.Contains(fmt.Sprint(ans["message"]), "nothing to do") || !maps.Equal(d.stages(t), final) {
		t.Fatalf("retried finishSecret: %v, stages %v", ans, d.stages(t))
	}
	end := d.token()
	if end != live || !d.Emu.Live(end) || d.ClearRequests() != 1 {
		t.Fatalf("at the end: token changed %v, live %v, Clear requests %d; want createSecret's live token and exactly 1 request",
			end != live, d.Emu.Live(end), d.ClearRequests())
	}
	if got := rc.Delivered(); len(got) != 1 || !strings.Contains(got[0].Body, `"version_id":"`+token+`"`) || len(rc.Deliveries()) != 1 {
		t.Fatalf("deliveries %+v, want one, of version %s", rc.Deliveries(), token)
	}

	// A step for a secret the function does not keep fails, naming the problem.
	r := f.invoke(`{"SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf","ClientRequestToken":"` + token + `","Step":"createSecret"}`)
	if r.kind != "error" || !strings.Contains(string(r.body), `"errorType":"StepError"`) || !strings.Contains(string(r.body), "no configured client keeps its token") {
		t.Fatalf("a foreign secret: %s %s", r.kind, r.body)
	}
}

// TestBootstrapDuplicatedForcedEvent delivers the same forced event twice, as a retrying caller
// or a duplicated delivery would: Clear is asked once.
func TestBootstrapDuplicatedForcedEvent(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	f := d.start(t)
	const ev = `{"action":"rotate","force":true,"request_id":"change-1234"}`
	expectOutcome(t, result(t, f.ok(ev)), "rotated")
	first := d.token()
	r := result(t, f.ok(ev))
	expectOutcome(t, r, "duplicate")
	if now := d.token(); now != first || d.ClearRequests() != 1 {
		t.Fatalf("the duplicated event: token changed %v, Clear requests %d; want no change and 1 request", now != first, d.ClearRequests())
	}
	// The EMF line counts the duplicate.
	if !strings.Contains(f.p.Stdout(), `"OutcomeDuplicate":1`) {
		t.Error("no EMF line counted the duplicate")
	}
}

// TestBootstrapRevoke stores tokens from every API client, then revokes: every token stored
// before is dead at Clear, and AWSCURRENT holds a live one.
func TestBootstrapRevoke(t *testing.T) {
	t.Parallel()
	for _, slots := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d API client(s)", slots), func(t *testing.T) {
			t.Parallel()
			d := deployWith(t, slots)
			f := d.start(t)
			var stored []string
			expectOutcome(t, result(t, f.ok(`{}`)), "rotated")
			tok := d.token()
			stored = append(stored, tok)
			expectOutcome(t, result(t, f.ok(`{"action":"rotate","force":true}`)), "rotated")
			tok = d.token()
			stored = append(stored, tok)
			if slots == 2 && (!d.Emu.Live(stored[0]) || !d.Emu.Live(stored[1])) {
				t.Fatal("with two API clients both stored tokens should be live before the revoke")
			}
			before := d.ClearRequests()

			doc := f.ok(`{"action":"revoke","client":"default","request_id":"incident-77"}`)
			rs, _ := doc["results"].([]any)
			if len(rs) != slots {
				t.Fatalf("revoke answered %d results, want %d: %v", len(rs), slots, doc)
			}
			for _, r := range rs {
				expectOutcome(t, r.(map[string]any), "rotated")
			}
			for i, tok := range stored {
				if d.Emu.Live(tok) {
					t.Errorf("token %d stored before the revoke is still live", i+1)
				}
			}
			now := d.token()
			if !d.Emu.Live(now) || d.ClearRequests() != before+slots {
				t.Fatalf("after the revoke: current token live %v, Clear requests %d; want live and %d", d.Emu.Live(now), d.ClearRequests(), before+slots)
			}

			// The same incident event again asks Clear nothing.
			doc = f.ok(`{"action":"revoke","client":"default","request_id":"incident-77"}`)
			b, _ := json.Marshal(doc)
			if !strings.Contains(string(b), `"outcome":"duplicate"`) || d.ClearRequests() != before+slots {
				t.Fatalf("a duplicated revoke: %s, Clear requests %d", b, d.ClearRequests())
			}
		})
	}
}

// stepError invokes one rotation step and expects it to fail; it returns the error's message.
func (f *function) stepError(secretID, token, step string) string {
	f.t.Helper()
	r := f.invoke(fmt.Sprintf(`{"SecretId":%q,"ClientRequestToken":%q,"Step":%q}`, secretID, token, step))
	if r.kind != "error" {
		f.t.Fatalf("%s answered %s: %s", step, r.kind, r.body)
	}
	var lerr struct {
		Message string `json:"errorMessage"`
	}
	if err := json.Unmarshal(r.body, &lerr); err != nil {
		f.t.Fatalf("error body is not JSON: %s", r.body)
	}
	return lerr.Message
}

// retryUntil invokes payload every half second until it succeeds, for at most 30 s, and returns
// the answer. Its callers run the short-backoff build (a first backoff of 3-6 s); the rest of the
// 30 s is room for a loaded machine.
func (f *function) retryUntil(payload string) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := f.invoke(payload)
		if r.kind == "response" {
			var doc map[string]any
			if err := json.Unmarshal(r.body, &doc); err != nil {
				f.t.Fatalf("answer is not JSON: %s", r.body)
			}
			return doc
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s still fails after 30 s: %s", payload, r.body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// backingOffUntil returns when a "backing off" refusal says the backoff ends. It fails the test
// when that is more than 7 s away (the short-backoff build's 6 s at most, plus the second the
// RFC 3339 time rounds off): then the bootstrap was not built with timing.TestBackoffFlag, and the
// test would wait out the release build's 15-30 s instead.
func backingOffUntil(t *testing.T, msg string) time.Time {
	t.Helper()
	_, rest, ok := strings.Cut(msg, "backing off until ")
	until, err := time.Parse(time.RFC3339, strings.Fields(rest + " ")[0])
	if !ok || err != nil {
		t.Fatalf("no backoff end in %q", msg)
	}
	if left := time.Until(until); left > 7*time.Second {
		t.Fatalf("the backoff ends in %s, later than the short-backoff build's 3-6 s: was it built with timing.TestBackoffFlag?", left.Round(time.Second))
	}
	return until
}

// TestBootstrapCreateSecretRecoversFromAFailure: Clear answers createSecret with a 500 once. Secrets
// Manager retries the step with the same ClientRequestToken: the retry must ask Clear again, spaced
// by the API client's backoff, not fail for good as "an earlier delivery claimed the rotation"
// (issue 19 item 1).
//
// The bootstrap is the release build but for its backoff's base (6 s instead of 30 s, with
// timing.TestBackoffFlag), so that the test waits 3-6 s for the retry instead of 15-30 s. What it
// proves does not depend on that length: the retry sent at once is held back and says so, and
// the retry after the backoff asks Clear and completes the rotation. (The backoff's arithmetic,
// 15-30 s in the release build, is internal/timing's to test.)
func TestBootstrapCreateSecretRecoversFromAFailure(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	f := d.startShortBackoff(t)
	expectOutcome(t, result(t, f.ok(`{}`)), "rotated")
	const token = "5b2e9c1d-7a4f-4c3b-9e8d-1f0a2b3c4d5e"
	d.Emu.Inject(emulator.ServerError())
	if msg := f.stepError(d.TokenID, token, "createSecret"); !strings.Contains(msg, "500") {
		t.Fatalf("createSecret during a 500: %s", msg)
	}
	// At once: the backoff holds the retry back, and says so.
	msg := f.stepError(d.TokenID, token, "createSecret")
	if !strings.Contains(msg, "backing off") || d.ClearRequests() != 2 {
		t.Fatalf("an immediate retry: %s (Clear requests %d, want 2)", msg, d.ClearRequests())
	}
	until := backingOffUntil(t, msg)
	// After the backoff the retry asks Clear and stores the version; the rotation completes.
	f.retryUntil(fmt.Sprintf(`{"SecretId":%q,"ClientRequestToken":%q,"Step":"createSecret"}`, d.TokenID, token))
	if time.Now().Before(until) {
		t.Fatalf("the retry asked Clear before the backoff ended (%s)", until)
	}
	if d.ClearRequests() != 3 || d.currentVersion(t) != token || !d.Emu.Live(d.token()) {
		t.Fatalf("after the retry: Clear requests %d, AWSCURRENT %s", d.ClearRequests(), d.currentVersion(t))
	}
	for _, step := range []string{"setSecret", "testSecret", "finishSecret"} {
		f.step(d.TokenID, token, step)
	}
	if got := d.stages(t); got["AWSCURRENT"] != token || got["AWSPENDING"] != "" {
		t.Fatalf("stages %v", got)
	}
}

// TestBootstrapRetriedForcedRotationAfterAFailure: a forced rotation fails (Clear 500); Lambda
// retries the invocation with the same request id. The retry is not a duplicate (nothing was
// done): it asks again once the backoff allows (issue 19 item 1).
//
// Its bootstrap has the short first backoff, 3-6 s, for the reason
// TestBootstrapCreateSecretRecoversFromAFailure gives.
func TestBootstrapRetriedForcedRotationAfterAFailure(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	f := d.startShortBackoff(t)
	expectOutcome(t, result(t, f.ok(`{}`)), "rotated")
	d.Emu.Inject(emulator.ServerError())
	const ev = `{"action":"rotate","force":true,"request_id":"change-5678"}`
	if r := f.invoke(ev); r.kind != "error" {
		t.Fatalf("the forced rotation during a 500 answered %s: %s", r.kind, r.body)
	}
	r := f.invoke(ev)
	if r.kind != "error" || !strings.Contains(string(r.body), "backing off") || strings.Contains(string(r.body), "duplicate") {
		t.Fatalf("the immediate retry: %s %s", r.kind, r.body)
	}
	until := backingOffUntil(t, string(r.body))
	expectOutcome(t, result(t, f.retryUntil(ev)), "rotated")
	if time.Now().Before(until) {
		t.Fatalf("the retry asked Clear before the backoff ended (%s)", until)
	}
	if d.ClearRequests() != 3 || !d.Emu.Live(d.token()) {
		t.Fatalf("Clear requests %d, want 3", d.ClearRequests())
	}
	// Done now: the next retry is the duplicate.
	expectOutcome(t, result(t, f.ok(ev)), "duplicate")
}

// TestBootstrapCreateSecretRefusesWhatSecretsManagerWould: a ClientRequestToken Secrets Manager
// refuses as a version id (under 32 characters) is refused before anything is claimed or asked
// (issue 19 item 4); a createSecret naming an existing version this rotation did not store fails
// clearly instead of claiming to be a retried step (issue 19 item 14).
func TestBootstrapCreateSecretRefusesWhatSecretsManagerWould(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	f := d.start(t)
	expectOutcome(t, result(t, f.ok(`{}`)), "rotated")
	state, stateID, _ := d.Read("ROTATOR_STATE")
	live := d.token()

	msg := f.stepError(d.TokenID, "short-token-20-chars", "createSecret")
	if !strings.Contains(msg, "32 to 64 characters") || d.ClearRequests() != 1 || !d.Emu.Live(live) {
		t.Fatalf("a 20-character token: %s (Clear requests %d, token live %v)", msg, d.ClearRequests(), d.Emu.Live(live))
	}
	if now, id, _ := d.Read("ROTATOR_STATE"); id != stateID || now != state {
		t.Fatal("the refused event wrote the rotation state")
	}

	// The version AWSCURRENT holds was stored by the schedule, not by this rotation.
	existing := d.currentVersion(t)
	msg = f.stepError(d.TokenID, existing, "createSecret")
	if !strings.Contains(msg, "already exists") || !strings.Contains(msg, "not stored by this rotation") || d.ClearRequests() != 1 {
		t.Fatalf("createSecret naming an existing version: %s (Clear requests %d)", msg, d.ClearRequests())
	}
}
