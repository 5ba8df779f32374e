package lambdafn_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// A token secret configured by its partial ARN (the ARN without the "-XXXXXX" Secrets Manager
// appends), which Secrets Manager accepts wherever it takes a SecretId: the schedule rotates through
// it; Secrets Manager's own rotation, whose events carry the full ARN, finds the client; every
// webhook names the secret by its full ARN, one id however the secret was reached; and a failed
// delivery is recorded on the secret, shown by status and resumed by the next run, with the
// webhook-id it had. Against moto only: it resolves a partial ARN as Secrets Manager does (by the
// name after "secret:"), while the fake Secrets Manager has no ARNs at all.
func TestATokenSecretConfiguredByItsPartialARN(t *testing.T) {
	var rc *rig.Receiver
	var partial string
	r := newStepRigWith(t, true, 1, 48, func(w *rig.World, env map[string]string) {
		out, err := w.SM.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(w.TokenID)})
		if err != nil {
			t.Fatal(err)
		}
		full := aws.ToString(out.ARN)
		if !strings.HasSuffix(full, ":secret:"+w.TokenID+full[len(full)-7:]) || full[len(full)-7] != '-' {
			t.Fatalf("moto's ARN %q does not end in the name and a random suffix", full)
		}
		partial = full[:len(full)-7]
		env[config.EnvTokenSecretID] = partial
		rc = w.Receiver()
		for _, kv := range rc.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	})
	arn := r.secretID
	if arn == partial || !strings.HasPrefix(arn, partial+"-") {
		t.Fatalf("event ARN %q, configured partial ARN %q", arn, partial)
	}
	secretOf := func(d rig.Delivery) string {
		t.Helper()
		var b struct {
			SecretID  string `json:"secret_id"`
			VersionID string `json:"version_id"`
		}
		if err := json.Unmarshal([]byte(d.Body), &b); err != nil {
			t.Fatal(err)
		}
		return b.SecretID + " " + b.VersionID
	}

	// The schedule stores the first token through the partial ARN, and tells the receiver.
	if _, err := r.invoke(`{"action":"scheduled"}`); err != nil {
		t.Fatal(err)
	}
	v1, tok := r.current()
	if !r.emu.Live(tok.AccessToken.Reveal()) {
		t.Fatal("the scheduled run stored no live token")
	}
	if got := rc.Deliveries(); len(got) != 1 || !got[0].Verified || secretOf(got[0]) != arn+" "+v1 {
		t.Fatalf("deliveries %+v, want one naming %s %s", got, arn, v1)
	}

	// Secrets Manager's rotation sends the full ARN: the client is found, and the token stored.
	sa := r.mustStep(lambdafn.StepCreate, rotationToken)
	if sa.Client != "default" || sa.Result == nil || sa.Result.Outcome != rotation.Rotated {
		t.Fatalf("createSecret answered %+v", sa)
	}
	for _, step := range []lambdafn.Step{lambdafn.StepSet, lambdafn.StepTest, lambdafn.StepFinish} {
		r.mustStep(step, rotationToken)
	}
	if got := r.stages(); got["AWSCURRENT"] != rotationToken || got["AWSPENDING"] != "" {
		t.Fatalf("after the rotation stages = %v, want AWSCURRENT on %s", got, rotationToken)
	}
	if got := rc.Deliveries(); len(got) != 2 || secretOf(got[1]) != arn+" "+rotationToken {
		t.Fatalf("deliveries %+v, want the second naming %s %s", got, arn, rotationToken)
	}

	// A delivery refused is recorded on the secret, shown by status, and resumed by the next run.
	rc.Fail(http.StatusForbidden)
	r.clock.Advance(10 * time.Minute)
	if _, err := r.invoke(`{"action":"rotate","force":true,"request_id":"partial-1"}`); err != nil {
		t.Fatal(err)
	}
	v3, _ := r.current()
	status := func() []fleet.Undelivered {
		t.Helper()
		ans, err := r.invoke(`{"action":"status"}`)
		if err != nil {
			t.Fatal(err)
		}
		return ans.(lambdafn.StatusAnswer).Undelivered["default"]
	}
	if got := status(); len(got) != 1 || got[0].VersionID != v3 || got[0].Kind != "webhook" || got[0].At == nil ||
		!strings.HasPrefix(got[0].String(), "webhook: version "+v3+" at ") {
		t.Fatalf("status shows undelivered %q, want the webhook of %s", got, v3)
	}
	if _, err := r.invoke(`{"action":"scheduled"}`); err != nil {
		t.Fatal(err)
	}
	got := rc.Deliveries()
	if len(got) != 4 || got[3].ID != got[2].ID || got[3].Status != http.StatusNoContent || secretOf(got[3]) != arn+" "+v3 {
		t.Fatalf("deliveries %+v, want the refused one of %s resumed with its id, accepted", got, v3)
	}
	if got := status(); len(got) != 0 {
		t.Fatalf("a delivered token still shows as undelivered: %q", got)
	}
}
