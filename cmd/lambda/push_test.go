package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/clear-rotator/clear-rotator/internal/app"
)

// The function tells the webhook receiver of each token it stores, signed, and not of a run that
// stores none; a receiver that refuses shows as an error line and a DeliveryFailures EMF metric,
// while the invocation, whose token is stored, succeeds.
func TestBootstrapDeliversAWebhook(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	rc := d.Receiver()
	d.env = append(d.env, rc.Env()...)
	f := d.start(t)

	expectOutcome(t, result(t, f.ok(`{"action":"rotate"}`)), "rotated")
	_, version := d.MustCurrent()
	got := rc.Deliveries()
	if len(got) != 1 || !got[0].Verified || !strings.Contains(got[0].Body, `"version_id":"`+version+`"`) ||
		strings.Contains(got[0].Body, d.token()) {
		t.Fatalf("deliveries %+v, want one signed for version %s", got, version)
	}
	expectOutcome(t, result(t, f.ok(`{"action":"rotate"}`)), "not_due")
	if n := len(rc.Deliveries()); n != 1 {
		t.Fatalf("a run that stored nothing delivered (%d deliveries)", n)
	}

	rc.Fail(http.StatusForbidden)
	expectOutcome(t, result(t, f.ok(`{"action":"rotate","force":true,"request_id":"push-1"}`)), "rotated")
	if n := len(rc.Deliveries()); n != 2 {
		t.Fatalf("a 403 was retried: %d deliveries", n)
	}
	failures := func() int {
		n := 0
		for line := range strings.SplitSeq(strings.TrimSpace(f.p.Stdout()), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["DeliveryFailures"] == 1.0 && rec["Client"] == "default" && rec["Kind"] == "webhook" {
				n++
			}
		}
		return n
	}
	// The function's stdout reaches the test through a pipe: wait for the lines.
	f.p.Await("the DeliveryFailures metric", 10*time.Second, func() bool { return failures() > 0 })
	if n := failures(); n != 1 || !strings.Contains(f.p.Stdout(), `"level":"ERROR","msg":"the ERP was not told of the new token`) {
		t.Fatalf("%d DeliveryFailures lines, or no error line:\n%s", n, f.p.Stdout())
	}

	// The failure is recorded on the token secret, and the status answer shows it, until a
	// delivery succeeds: the next scheduled invocation's, which tries once more.
	_, version = d.MustCurrent()
	undelivered := func() string {
		b, _ := json.Marshal(f.ok(`{"action":"status"}`)["undelivered"])
		return string(b)
	}
	if got := undelivered(); !strings.HasPrefix(got, `{"default":[{"at":"`) || !strings.Contains(got, `"kind":"webhook"`) ||
		!strings.Contains(got, `"record":"version `+version+` at `) || !strings.Contains(got, `"version_id":"`+version+`"`) {
		t.Fatalf("status answers undelivered %s, want version %s", got, version)
	}
	expectOutcome(t, result(t, f.ok(`{"action":"scheduled"}`)), "not_due")
	if got := rc.Deliveries(); len(got) != 3 || got[2].ID != got[1].ID || got[2].Status != http.StatusNoContent {
		t.Fatalf("deliveries %+v: want the refused one resumed, accepted", got)
	}
	if got := undelivered(); got != "null" {
		t.Fatalf("a delivered token still shows as undelivered: %s", got)
	}
	expectOutcome(t, result(t, f.ok(`{"action":"scheduled"}`)), "not_due")
	if n := len(rc.Deliveries()); n != 3 {
		t.Fatalf("a delivered token was told again: %d deliveries", n)
	}
}

// The function refuses at start what it could only ignore: a hook command, and a probe (it has no
// loop to send one from), so that neither is taken for working.
func TestBootstrapRefusesWhatItCannotDo(t *testing.T) {
	t.Parallel()
	for _, setting := range []string{"ROTATOR_HOOK_COMMAND=/bin/true", "ROTATOR_PROBE_PATH=/v1/ping"} {
		d := deploy(t)
		d.env = append(d.env, setting)
		f := d.start(t)
		r := f.invoke(`{"action":"rotate"}`)
		name, _, _ := strings.Cut(setting, "=")
		if r.kind != "error" || !strings.Contains(string(r.body), "InitError") || !strings.Contains(string(r.body), name+" is not supported in the Lambda") {
			t.Fatalf("%s: answered %s: %s", name, r.kind, r.body)
		}
		if _, _, ok := d.Read("AWSCURRENT"); ok {
			if tok, _, _ := d.Current(); !tok.AccessToken.IsZero() {
				t.Fatalf("%s: a refused function rotated", name)
			}
		}
	}
}

// A daemon beside the function runs a hook (which the function cannot): its deliveries mark the
// token secret as told by a hook. A token the function stores is then recorded as not delivered
// by the hook (an error line, a DeliveryFailures metric of kind hook, the status answer), for the
// daemon to resume; the function's own scheduled runs do not "resume" a hook they cannot run.
func TestBootstrapRecordsATokenItStoresAsNotToldByAHook(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	if _, err := d.SM.(interface {
		TagResource(context.Context, *secretsmanager.TagResourceInput, ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error)
	}).TagResource(t.Context(), &secretsmanager.TagResourceInput{SecretId: aws.String(d.TokenID),
		Tags: []types.Tag{{Key: aws.String(app.PushMarkPrefix + "hook"), Value: aws.String("told")}}}); err != nil {
		t.Fatal(err)
	}
	f := d.start(t)
	expectOutcome(t, result(t, f.ok(`{"action":"rotate"}`)), "rotated")
	_, version := d.MustCurrent()
	f.p.Await("the DeliveryFailures metric of the hook", 10*time.Second, func() bool {
		return strings.Contains(f.p.Stdout(), `"DeliveryFailures":1`) && strings.Contains(f.p.Stdout(), `"Kind":"hook"`)
	})
	if !strings.Contains(f.p.Stdout(), `"msg":"the ERP was not told of the new token"`) || !strings.Contains(f.p.Stdout(), app.PushMarkPrefix+"hook") {
		t.Fatalf("no error line naming the mark:\n%s", f.p.Stdout())
	}
	b, _ := json.Marshal(f.ok(`{"action":"status"}`)["undelivered"])
	if got := string(b); !strings.Contains(got, `"kind":"hook"`) || !strings.Contains(got, `"version_id":"`+version+`"`) {
		t.Fatalf("status answers undelivered %s, want the hook of version %s", got, version)
	}
	expectOutcome(t, result(t, f.ok(`{"action":"scheduled"}`)), "not_due")
	if strings.Contains(f.p.Stdout(), "resuming a delivery") {
		t.Fatalf("the function resumed a hook it cannot run:\n%s", f.p.Stdout())
	}
}
