package main

// Process tests of push delivery (issue 18): the built rotator tells a webhook receiver (rig's
// Receiver, signed Standard Webhooks) and a hook command of every token it stores. The world's leak
// scan reads everything the receiver got, with the token, the client secret and the signing secret
// registered.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// body is a webhook's body as a receiver decodes it.
type webhookBody struct {
	Type, Client, SecretID, VersionID, Reason string
	ValidTill, IssuedAt                       *time.Time
	APIClient                                 int
}

func decodeBody(t *testing.T, d rig.Delivery) webhookBody {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(d.Body), &raw); err != nil {
		t.Fatalf("body %q: %v", d.Body, err)
	}
	for k := range raw {
		if strings.Contains(k, "token") && k != "type" {
			t.Fatalf("the body has a field %q", k)
		}
	}
	var b struct {
		Type      string     `json:"type"`
		Client    string     `json:"client"`
		SecretID  string     `json:"secret_id"`
		VersionID string     `json:"version_id"`
		Reason    string     `json:"reason"`
		ValidTill *time.Time `json:"valid_till"`
		IssuedAt  *time.Time `json:"issued_at"`
		APIClient int        `json:"api_client"`
	}
	_ = json.Unmarshal([]byte(d.Body), &b)
	return webhookBody{Type: b.Type, Client: b.Client, SecretID: b.SecretID, VersionID: b.VersionID, Reason: b.Reason,
		ValidTill: b.ValidTill, IssuedAt: b.IssuedAt, APIClient: b.APIClient}
}

func TestRotateDeliversOnARotationNotOnANoOp(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: rotated")
	got := rc.Deliveries()
	if len(got) != 1 || !got[0].Verified || got[0].Status != http.StatusNoContent {
		t.Fatalf("deliveries %+v, want one, signed", got)
	}
	tok, version := w.MustCurrent()
	b := decodeBody(t, got[0])
	if b.Type != notify.EventType || b.Client != "default" || b.VersionID != version || b.Reason != "scheduled" ||
		!strings.HasPrefix(b.SecretID, "arn:aws:secretsmanager:") || !strings.Contains(b.SecretID, w.TokenID) ||
		b.ValidTill == nil || !b.ValidTill.Equal(*tok.ValidTill) || b.IssuedAt == nil {
		t.Fatalf("body %s, want version %s of %s", got[0].Body, version, w.TokenID)
	}
	if strings.Contains(got[0].Body, tok.AccessToken.Reveal()) {
		t.Fatal("the token is in the webhook")
	}

	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: not_due")
	if n := len(rc.Deliveries()); n != 1 {
		t.Fatalf("a no-op rotate delivered: %d deliveries", n)
	}
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate", "--force"), 0, "default: rotated")
	got = rc.Deliveries()
	if len(got) != 2 || got[1].ID == got[0].ID || decodeBody(t, got[1]).Reason != "forced" {
		t.Fatalf("a forced rotation: deliveries %+v", got)
	}
}

func TestRotateRetriesAFailingReceiverWithTheSameID(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	rc.Fail(http.StatusServiceUnavailable, http.StatusBadGateway)
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: rotated")
	got := rc.Deliveries()
	if len(got) != 3 || got[0].ID != got[1].ID || got[1].ID != got[2].ID || got[2].Status != http.StatusNoContent {
		t.Fatalf("deliveries %+v, want three with one id, the third accepted", got)
	}
	for _, d := range got {
		if !d.Verified {
			t.Fatalf("an attempt is not signed: %+v", d)
		}
	}
}

func TestRotateRotatedNotDelivered(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	rc.Fail(http.StatusBadRequest)
	r := rotatorEnv(w, rc.Env(), "rotate")
	wantCode(t, r, exitNotDelivered, "rotated, not delivered")
	if !strings.Contains(r.Stderr, `"level":"ERROR"`) || !strings.Contains(r.Stderr, "the ERP was not told") {
		t.Fatalf("no error line:\n%s", r.Output())
	}
	if n := len(rc.Deliveries()); n != 1 {
		t.Fatalf("a 400 was retried: %d attempts", n)
	}
	if !w.Live() {
		t.Fatal("the token stored is not live")
	}

	// status, which reads only Secrets Manager, shows it until a delivery succeeds.
	_, version := w.MustCurrent()
	wantCode(t, rotatorEnv(w, rc.Env(), "status"), 0, "default: not delivered: webhook: version "+version+" at ")
	wantCode(t, rotatorEnv(w, rc.Env(), "status", "--json"), 0, `"undelivered"`)
	// whichever process failed: an operator's shell without the push settings sees it too.
	wantCode(t, rotatorEnv(w, nil, "status"), 0, "default: not delivered: webhook: version "+version+" at ")
	// and status --check, for cron and Nagios where no metric alerts, fails while it is pending (an
	// audit's walk-through found it green).
	wantCode(t, rotatorEnv(w, nil, "status", "--check"), 1, "default (not delivered)")

	// The next run (cron's, say) tries once more, though it rotates nothing: refused again, it
	// says so and exits 3; accepted, the record is gone. No token is asked for to tell the ERP.
	asked := w.ClearRequests()
	rc.Fail(http.StatusBadRequest)
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), exitNotDelivered, "default: a token stored earlier is still not delivered")
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: not_due")
	got := rc.Deliveries()
	if len(got) != 3 || got[2].ID != got[0].ID || !got[2].Verified || got[2].Status != http.StatusNoContent {
		t.Fatalf("deliveries %+v, want the refused one resumed twice, accepted the second time", got)
	}
	if st := rotatorEnv(w, rc.Env(), "status", "--check"); st.Code != 0 || strings.Contains(st.Stdout, "not delivered") {
		t.Fatalf("a delivered token still shows as not delivered:\n%s", st.Output())
	}
	if w.ClearRequests() != asked {
		t.Fatal("resuming the delivery asked Clear")
	}
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: not_due")
	if n := len(rc.Deliveries()); n != 3 {
		t.Fatalf("a delivered token was told again: %d deliveries", n)
	}
}

// rotator revoke tells the receivers of the token that replaced the revoked one, with reason
// "revoke", and exits 3 when it could not: the ERP still holds the dead token.
func TestRevokeDeliversTheReplacement(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: rotated")
	wantCode(t, rotatorEnv(w, rc.Env(), "revoke", "--yes"), 0, "default")
	got := rc.Deliveries()
	_, version := w.MustCurrent()
	if len(got) != 2 || !got[1].Verified || decodeBody(t, got[1]).Reason != "revoke" || decodeBody(t, got[1]).VersionID != version {
		t.Fatalf("deliveries %+v, want the second, signed, for version %s with reason revoke", got, version)
	}

	// Retried as rotate's are, then refused.
	rc.Fail(http.StatusServiceUnavailable, http.StatusBadRequest)
	r := rotatorEnv(w, rc.Env(), "revoke", "--yes")
	wantCode(t, r, exitNotDelivered, "not delivered")
	if got := rc.Deliveries(); len(got) != 2+2 || got[2].ID != got[3].ID {
		t.Fatalf("deliveries %+v, want two attempts with one id for the failing receiver", got[2:])
	}
	_, version = w.MustCurrent()
	wantCode(t, rotatorEnv(w, nil, "status"), 0, "default: not delivered: webhook: version "+version+" at ")

	// A newer token stored where push delivery is not configured is recorded as not delivered
	// itself, the secret being marked as told by webhook: that run exits 3, and status names it.
	wantCode(t, rotatorEnv(w, nil, "rotate", "--force"), exitNotDelivered, "rotated, not delivered")
	_, version = w.MustCurrent()
	wantCode(t, rotatorEnv(w, nil, "status"), 0, "default: not delivered: webhook: version "+version+" at ")
	// Where nothing marks it (no mark written yet, as by an older release), a newer token stored
	// so supersedes the record, and is told to nobody either: a delivery of it would have cleared
	// the record. status says so, and --check still fails (a review of the session: it passed,
	// taking the newer token for delivered).
	if _, err := w.SM.(interface {
		UntagResource(context.Context, *secretsmanager.UntagResourceInput, ...func(*secretsmanager.Options)) (*secretsmanager.UntagResourceOutput, error)
	}).UntagResource(t.Context(), &secretsmanager.UntagResourceInput{SecretId: aws.String(w.TokenID), TagKeys: []string{app.PushMarkPrefix + "webhook"}}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, rotatorEnv(w, nil, "rotate", "--force"), 0, "default: rotated")
	wantCode(t, rotatorEnv(w, nil, "status", "--check"), 1, "default (not delivered)")
	wantCode(t, rotatorEnv(w, nil, "status"), 0, "(superseded by a newer token, of which no delivery is recorded either)")
	// Where push delivery is configured, the next run tells the ERP of the token in AWSCURRENT.
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: not_due")
	_, version = w.MustCurrent()
	if got := rc.Deliveries(); decodeBody(t, got[len(got)-1]).VersionID != version {
		t.Fatalf("the last delivery is not of the token in AWSCURRENT: %+v", got[len(got)-1])
	}
	wantCode(t, rotatorEnv(w, nil, "status", "--check"), 0, "default")
}

func TestHookRunsWithTheVersionAndTheTokenOnRequest(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	dir := t.TempDir()
	hook := `sh -c 'env > "$0/env"; cat > "$0/stdin"; echo "told $CLEAR_ROTATOR_VERSION_ID"' ` + dir

	wantCode(t, rotatorEnv(w, []string{"ROTATOR_HOOK_COMMAND=" + hook}, "rotate"), 0, "default: rotated")
	_, version := w.MustCurrent()
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	for _, want := range []string{"CLEAR_ROTATOR_VERSION_ID=" + version, "CLEAR_ROTATOR_CLIENT=default",
		"CLEAR_ROTATOR_SECRET_ID=arn:aws:secretsmanager:", "CLEAR_ROTATOR_VALID_TILL=20"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("the hook's environment lacks %q", want)
		}
	}
	if strings.Contains(string(env), "CLEAR_CLIENT_SECRET=") || len(stdin) != 0 {
		t.Fatalf("the hook got the client secret, or input without asking: stdin %q", stdin)
	}

	r := rotatorEnv(w, []string{"ROTATOR_HOOK_COMMAND=" + hook, "ROTATOR_HOOK_STDIN=token"}, "rotate", "--force")
	wantCode(t, r, 0, "default: rotated")
	tok, version := w.MustCurrent()
	stdin, _ = os.ReadFile(filepath.Join(dir, "stdin"))
	doc, err := document.ParseToken(stdin)
	if err != nil || doc.AccessToken != tok.AccessToken {
		t.Fatalf("the hook's input %q is not the token document stored (%v)", stdin, err)
	}
	if !strings.Contains(r.Stderr, "told "+version) {
		t.Fatalf("the hook's output is not in the log:\n%s", r.Stderr)
	}
}

func TestHookThatNeverSucceeds(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	start := time.Now()
	r := rotatorEnv(w, []string{"ROTATOR_HOOK_COMMAND=sh -c 'echo cannot reach the ERP; exit 7'"}, "rotate")
	wantCode(t, r, exitNotDelivered, "rotated, not delivered")
	if c := strings.Count(r.Stderr, "cannot reach the ERP"); c != notify.Run.Attempts {
		t.Fatalf("the hook ran %d times, want %d:\n%s", c, notify.Run.Attempts, r.Stderr)
	}
	t.Logf("gave up after %s", time.Since(start).Round(time.Millisecond))
}

// pushLifetime is the token lifetime of the daemon's push tests: renewed 10 s after it is issued,
// long enough for a delivery that fails twice to get its third attempt (after 1-2 s and 2-4 s)
// before the next token supersedes it.
const pushLifetime = 15 * time.Second

// TestDaemonDeliversOneSignedWebhookPerStoredToken runs the daemon over two tokens, with a receiver
// that fails the first two attempts: the third gets the same id; each stored token is delivered
// once, under its own id, signed, and without the token.
func TestDaemonDeliversOneSignedWebhookPerStoredToken(t *testing.T) {
	w := world(t, rig.Options{Lifetime: pushLifetime})
	rc := w.Receiver()
	rc.Fail(http.StatusServiceUnavailable, http.StatusInternalServerError)
	p := w.Daemon(rc.Env()...)
	p.Await("two tokens delivered", 3*pushLifetime, func() bool { return len(rc.Delivered()) >= 2 })
	p.Stop(os.Interrupt, 30*time.Second)

	all := rc.Deliveries()
	if len(all) < 4 || all[0].ID != all[1].ID || all[1].ID != all[2].ID || all[2].Status != http.StatusNoContent {
		t.Fatalf("the first token's attempts: %+v; want two failures, then the third with the same id accepted", all)
	}
	stored := map[string]bool{}
	for _, v := range w.Versions() {
		if _, err := document.ParseToken([]byte(v.Value)); err == nil {
			stored[v.ID] = true
		}
	}
	ids := map[string]bool{}
	for _, d := range rc.Delivered() {
		b := decodeBody(t, d)
		if !d.Verified || ids[d.ID] || !stored[b.VersionID] {
			t.Fatalf("delivery %+v: want signed, a new id, a stored version (%v)", d, stored)
		}
		ids[d.ID] = true
		delete(stored, b.VersionID)
	}
	if got := p.Metric(`clear_rotator_delivery_failing{client="default",kind="webhook"}`); got != "" && got != "0" {
		t.Fatalf("delivery_failing = %s after every token was delivered", got)
	}
}

// TestDaemonDeliveryThatNeverSucceeds: a receiver that refuses every delivery, and a hook that
// always fails, show in the error log and in /metrics while the daemon keeps the token fresh.
func TestDaemonDeliveryThatNeverSucceeds(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	for range 20 {
		rc.Fail(http.StatusGone)
	}
	p := w.Daemon(append(rc.Env(), "ROTATOR_HOOK_COMMAND=sh -c 'exit 1'", "ROTATOR_HOOK_TIMEOUT=1s")...)
	p.Await("the webhook's failure in /metrics", 30*time.Second, func() bool {
		return p.Metric(`clear_rotator_delivery_failing{client="default",kind="webhook"}`) == "1"
	})
	// The hook is retried, and reported after notify.Daemon.ReportAt attempts (15 to 30 s of waits).
	p.Await("the hook's failure in /metrics", 60*time.Second, func() bool {
		return p.Metric(`clear_rotator_delivery_failing{client="default",kind="hook"}`) == "1"
	})
	if got := p.Metric(`clear_rotator_delivery_failures_total{client="default",kind="webhook"}`); got != "1" {
		t.Errorf("delivery_failures_total = %q, want 1", got)
	}
	if p.Metric(`clear_rotator_delivery_last_failure_timestamp_seconds{client="default",kind="hook"}`) == "" {
		t.Error("no last-failure time for the hook")
	}
	if !p.Logged("the ERP was not told of the new token: delivery failed") ||
		!p.Logged("the ERP was not told of the new token: delivery failed; still retrying") {
		t.Fatalf("no error lines for both:\n%s", p.Output())
	}
	if n := len(rc.Deliveries()); n != 1 {
		t.Fatalf("a 410 was retried: %d attempts", n)
	}
	st := rotatorEnv(w, rc.Env(), "status")
	if !strings.Contains(st.Stdout, "default: not delivered: webhook: version ") || !strings.Contains(st.Stdout, "default: not delivered: hook: version ") {
		t.Fatalf("status does not show both failures:\n%s", st.Output())
	}
	if !w.Live() {
		t.Fatal("the token is not live")
	}
}

// TestDaemonStoppedBeforeDeliveringRecordsItAndTheNextStartResumesIt: a daemon stopped (SIGTERM,
// a rolling deploy) while it is still retrying a delivery reports it like one that finally failed,
// in the error log and on the token secret, so that `rotator status` shows it after the process is
// gone; and the next daemon to start delivers it (the same webhook-id) once the receiver is fixed,
// without asking Clear for anything. Before, nothing resumed it: the ERP was never told.
func TestDaemonStoppedBeforeDeliveringRecordsItAndTheNextStartResumesIt(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	for range 50 {
		rc.Fail(http.StatusServiceUnavailable)
	}
	p := w.Daemon(rc.Env()...)
	p.Await("a first attempt", 30*time.Second, func() bool { return len(rc.Deliveries()) >= 1 })
	if code := p.Stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d:\n%s", code, p.Output())
	}
	if !p.Logged(notify.MsgStopped) {
		t.Fatalf("no error line for the delivery cut short:\n%s", p.Output())
	}
	st := rotatorEnv(w, rc.Env(), "status")
	if !strings.Contains(st.Stdout, "default: not delivered: webhook: version ") {
		t.Fatalf("status does not show the delivery cut short:\n%s", st.Output())
	}

	first, asked := rc.Deliveries()[0], w.ClearRequests()
	rc.Heal()
	p = w.Daemon(rc.Env()...)
	p.Await("the delivery resumed", 30*time.Second, func() bool { return len(rc.Delivered()) == 1 })
	if got := rc.Delivered()[0]; got.ID != first.ID || !got.Verified || decodeBody(t, got).VersionID != decodeBody(t, first).VersionID {
		t.Fatalf("resumed %+v, want the delivery cut short (%+v) again, signed", got, first)
	}
	if !p.Logged("resuming a delivery recorded as failed") {
		t.Fatalf("no line for the resumed delivery:\n%s", p.Output())
	}
	p.Await("the record cleared", 10*time.Second, func() bool {
		return !strings.Contains(rotatorEnv(w, rc.Env(), "status").Stdout, "not delivered")
	})
	if n := w.ClearRequests(); n != asked {
		t.Fatalf("resuming the delivery asked Clear: %d requests, %d before", n, asked)
	}
	p.Stop(syscall.SIGTERM, 30*time.Second)
}

// TestRotateInterruptedWhileDeliveringRecordsIt: `rotator rotate` stopped (Ctrl-C, SIGTERM) while
// its delivery waits for a receiver that does not answer exits 3, "rotated, not delivered", and
// records the delivery on the token secret like one that finally failed: nothing will resume it,
// and `rotator status` must show it.
func TestRotateInterruptedWhileDeliveringRecordsIt(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	rc.Fail(0, 0, 0, 0)
	p := w.Start(proctest.TestRotator(t), append(rc.Env(), "ROTATOR_HTTP_ADDR="), "rotate")
	p.Await("a first attempt", 30*time.Second, func() bool { return len(rc.Deliveries()) >= 1 })
	if code := p.Stop(syscall.SIGTERM, 30*time.Second); code != exitNotDelivered {
		t.Fatalf("exit status %d, want %d:\n%s", code, exitNotDelivered, p.Output())
	}
	st := rotatorEnv(w, rc.Env(), "status")
	if !strings.Contains(st.Stdout, "default: not delivered: webhook: version ") {
		t.Fatalf("status does not show the delivery cut short:\n%s\nrotate said:\n%s", st.Output(), p.Output())
	}
}

// TestDaemonReloadResumesWhatAnotherProcessFailedToDeliver: a `rotator rotate` whose receiver
// refused records the delivery on the token secret; once the receiver is fixed, a SIGHUP to the
// daemon (any replica) delivers it, though the daemon did not store that token. The alert's remedy
// then works whichever process failed.
func TestDaemonReloadResumesWhatAnotherProcessFailedToDeliver(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	p := w.Daemon(rc.Env()...)
	p.Await("the first token delivered", 30*time.Second, func() bool { return len(rc.Delivered()) == 1 })
	rc.Fail(http.StatusBadRequest)
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate", "--force"), exitNotDelivered, "rotated, not delivered")
	_, version := w.MustCurrent()
	p.Signal(syscall.SIGHUP)
	p.Await("the delivery resumed", 30*time.Second, func() bool { return len(rc.Delivered()) == 2 })
	if got := rc.Delivered()[1]; decodeBody(t, got).VersionID != version || decodeBody(t, got).Reason != "forced" || !got.Verified {
		t.Fatalf("resumed %s, want version %s with the reason forced", got.Body, version)
	}
	p.Await("the record cleared", 10*time.Second, func() bool {
		return !strings.Contains(rotatorEnv(w, rc.Env(), "status").Stdout, "not delivered")
	})
	p.Stop(syscall.SIGTERM, 30*time.Second)
}

// TestADaemonTellsAtItsNextCheckWhatAnotherProcessDidNotTell: an operator's shell without the push
// settings forces a rotation and records the token as not told by webhook (the secret is marked as
// told by it). The daemon beside it, which tells webhooks, delivers that token at its next check,
// without a restart or a SIGHUP: it had waited for one (review 5's F3), so that with the Lambda or
// a shell beside a daemon every such rotation was an outage until someone reloaded it.
func TestADaemonTellsAtItsNextCheckWhatAnotherProcessDidNotTell(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	p := w.Daemon(rc.Env()...)
	p.Await("the first token delivered", 30*time.Second, func() bool { return len(rc.Delivered()) == 1 })
	wantCode(t, rotatorEnv(w, nil, "rotate", "--force"), exitNotDelivered, "rotated, not delivered")
	_, version := w.MustCurrent()
	p.Await("the token told at a check", 30*time.Second, func() bool { return len(rc.Delivered()) == 2 })
	if got := rc.Delivered()[1]; decodeBody(t, got).VersionID != version || decodeBody(t, got).Reason != "forced" || !got.Verified {
		t.Fatalf("told %s, want version %s with the reason forced", got.Body, version)
	}
	p.Await("the record cleared", 10*time.Second, func() bool {
		return !strings.Contains(rotatorEnv(w, rc.Env(), "status").Stdout, "not delivered")
	})
	p.Stop(syscall.SIGTERM, 30*time.Second)
	if n := len(rc.Deliveries()); n != 2 {
		t.Fatalf("%d deliveries, want 2: a check told the token again", n)
	}
}

// TestDaemonReloadRedeliversWhatWasNotDelivered: the runbook's remedy for a failing delivery is to
// fix the receiver or the configuration; a SIGHUP then delivers the token not yet delivered, with
// the configuration reloaded. Without it a refused delivery (a 4xx is not retried) stayed
// undelivered, and the alert up, until the next token, hours or days later.
func TestDaemonReloadRedeliversWhatWasNotDelivered(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	rc.Fail(http.StatusUnauthorized) // a receiver that does not have the signing secret yet
	p := w.Daemon(rc.Env()...)
	p.Await("the refusal in /metrics", 30*time.Second, func() bool {
		return p.Metric(`clear_rotator_delivery_failing{client="default",kind="webhook"}`) == "1"
	})
	p.Signal(syscall.SIGHUP)
	p.Await("the delivery after the reload", 30*time.Second, func() bool { return len(rc.Delivered()) == 1 })
	all := rc.Deliveries()
	if len(all) != 2 || all[0].ID != all[1].ID || !all[1].Verified {
		t.Fatalf("deliveries %+v: want the refused one again, with its id", all)
	}
	p.Await("the failure cleared", 10*time.Second, func() bool {
		return p.Metric(`clear_rotator_delivery_failing{client="default",kind="webhook"}`) == "0"
	})
	st := rotatorEnv(w, rc.Env(), "status")
	if strings.Contains(st.Stdout, "not delivered") {
		t.Fatalf("status still shows the delivery:\n%s", st.Output())
	}
	p.Stop(syscall.SIGTERM, 30*time.Second)
}

// TestHookOutputHidesThePreviousToken: a hook that writes the token into an ERP's configuration
// may well print what it replaced (a diff, "replacing ..."), and with two API clients that token is
// still live until its valid_till. The log must not carry it: the rig's leak scan reads every
// output for every token Clear issued.
func TestHookOutputHidesThePreviousToken(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, APIClients: 2})
	file := filepath.Join(t.TempDir(), "erp.json")
	hook := []string{`ROTATOR_HOOK_COMMAND=sh -c 'echo "replacing $(cat "$0" 2>/dev/null)"; cat > "$0"' ` + file,
		"ROTATOR_HOOK_STDIN=token"}
	wantCode(t, rotatorEnv(w, hook, "rotate"), 0, "default: rotated")
	r := rotatorEnv(w, hook, "rotate", "--force", "--api-client", "2")
	wantCode(t, r, 0, "default: rotated")
	if !strings.Contains(r.Stderr, "replacing {") {
		t.Fatalf("the hook's output is not in the log:\n%s", r.Stderr)
	}
}

// TestDaemonDeliveryEndsWhenATokenStoredElsewhereSupersedesIt: the daemon retries a delivery until
// it is delivered or a newer token supersedes it. A newer token stored by another process (a
// replica, `rotate --force`, the Lambda) supersedes it too: the daemon must not deliver the older
// token after it, or a receiver (or a hook) acting on the last message configures the ERP with a
// token that is no longer current, and with one API client already revoked.
func TestDaemonDeliveryEndsWhenATokenStoredElsewhereSupersedesIt(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	rc.Fail(http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	p := w.Daemon(rc.Env()...)
	p.Await("a first attempt", 30*time.Second, func() bool { return len(rc.Deliveries()) >= 1 })
	old := rc.Deliveries()[0].ID
	// Another process, without a webhook, stores a newer token; the daemon's fourth attempt, the
	// first the receiver would accept, would come 7 to 14 s after its first. (With the third, 3 to
	// 6 s after, a rotate slowed by a loaded machine stored its token too late, and the test
	// failed in a clean-clone run.)
	wantCode(t, rotatorEnv(w, nil, "rotate", "--force"), 0, "default: rotated")
	time.Sleep(16 * time.Second)
	for _, d := range rc.Delivered() {
		if d.ID == old {
			t.Fatalf("the daemon delivered the superseded token after the newer one was stored: %+v", rc.Deliveries())
		}
	}
	p.Stop(syscall.SIGTERM, 30*time.Second)
	if p.Logged(notify.MsgStopped) {
		t.Fatalf("a superseded delivery was reported as cut short:\n%s", p.Output())
	}
}

// TestATokenStoredWithoutThePushSettingsIsRecordedAsNotDelivered: an operator forces a rotation
// from a shell without the push settings (the runbook's manual rotation, the settings forgotten).
// With one API client that revoked the token the ERPs hold, and nobody told them: the rotator
// delivered the tokens it stored, and resumed only failures on record. A delivery marks the token
// secret as told by its kind (clear-rotator:push:webhook); a process that stores a token and does
// not tell a kind so marked records the token as not delivered of that kind, says so, and exits 3,
// and the next run that tells it (cron's rotate here; a daemon's SIGHUP) delivers it.
func TestATokenStoredWithoutThePushSettingsIsRecordedAsNotDelivered(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	// Before any delivery nothing marks the secret: a deployment without push is not nagged.
	wantCode(t, rotatorEnv(w, nil, "rotate"), 0, "default: rotated")
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate", "--force"), 0, "default: rotated")
	r := rotatorEnv(w, nil, "rotate", "--force")
	wantCode(t, r, exitNotDelivered, "rotated, not delivered")
	if !strings.Contains(r.Stderr, `"level":"ERROR"`) || !strings.Contains(r.Stderr, "clear-rotator:push:webhook") {
		t.Fatalf("no error line naming the mark:\n%s", r.Output())
	}
	_, version := w.MustCurrent()
	wantCode(t, rotatorEnv(w, nil, "status"), 0, "default: not delivered: webhook: version "+version+" at ")
	wantCode(t, rotatorEnv(w, nil, "status", "--check"), 1, "default (not delivered)")

	wantCode(t, rotatorEnv(w, rc.Env(), "rotate"), 0, "default: not_due")
	got := rc.Deliveries()
	if len(got) != 2 || decodeBody(t, got[1]).VersionID != version || decodeBody(t, got[1]).Reason != "forced" || !got[1].Verified {
		t.Fatalf("deliveries %+v, want the forced token told at the next run, reason forced", got)
	}
	wantCode(t, rotatorEnv(w, nil, "status", "--check"), 0, "default")
}

// TestADaemonWithoutThePushSettingsRecordsTheTokensItStores: a daemon deployed without the push
// settings (a replica, say) stores tokens of a secret marked as told by webhook: it records each as
// not delivered, which status shows, until a process that tells it delivers the token in AWSCURRENT.
func TestADaemonWithoutThePushSettingsRecordsTheTokensItStores(t *testing.T) {
	w := world(t, rig.Options{Lifetime: 3 * time.Second})
	rc := w.Receiver()
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate", "--force"), 0, "default: rotated")
	p := w.Daemon()
	p.Await("a token the daemon stored recorded as not delivered", 30*time.Second, func() bool {
		return strings.Contains(rotatorEnv(w, nil, "status").Stdout, "not delivered: webhook")
	})
	p.Stop(syscall.SIGTERM, 30*time.Second)
	if !strings.Contains(p.Output(), "clear-rotator:push:webhook") {
		t.Fatalf("the daemon did not say why:\n%s", p.Output())
	}
	wantCode(t, rotatorEnv(w, rc.Env(), "rotate", "--force"), 0, "default: rotated")
	// Not status --check: a 3-second token may have expired by then on a loaded machine.
	if st := rotatorEnv(w, nil, "status"); strings.Contains(st.Stdout, "not delivered") {
		t.Fatalf("the token delivered still shows as not delivered:\n%s", st.Output())
	}
}
