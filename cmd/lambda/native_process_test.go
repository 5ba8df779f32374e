package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
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
// once and then again (Secrets Manager retries a step whose invocation failed or timed out).
func TestBootstrapSecretsManagerRotation(t *testing.T) {
	t.Parallel()
	d := deploy(t)
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
