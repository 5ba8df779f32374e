package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

const signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func load(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{config.EnvBaseURL: "https://api.clear.in", config.EnvClientSecret: "cs", config.EnvTokenSecretID: "tok"}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := base[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNotifierFromTheConfiguration(t *testing.T) {
	sm := fake.NewSecretsManager(time.Now)
	a, err := New(load(t, nil), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Notifier(notify.Run, nil, nil) != nil {
		t.Fatal("a notifier without a webhook URL or a hook command")
	}

	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("webhook/signing"), SecretString: aws.String(signing)}); err != nil {
		t.Fatal(err)
	}
	a, err = New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecretID: "webhook/signing",
		config.EnvHookCommand: "/bin/true"}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := a.Notifier(notify.Run, nil, nil)
	if !n.Enabled("default") || n.Hook == nil || n.URLs["default"] != "https://erp.example.com/h" {
		t.Fatalf("notifier %+v", n)
	}
	got, err := n.Secret(context.Background())
	if err != nil || got.Reveal() != signing {
		t.Fatalf("signing secret: %v", err)
	}

	c := a.Clients[0]
	if _, ok := a.Event(t.Context(), c, rotation.Result{}, "", false); ok {
		t.Fatal("an event for a result that stored nothing")
	}
	ev, ok := a.Event(t.Context(), c, rotation.Result{Stored: &rotation.Stored{VersionID: "v1"}}, rotation.HealthExpired, true)
	if !ok || ev.VersionID != "v1" || ev.Reason != notify.Revoke || ev.SecretID != "tok" {
		t.Fatalf("event %+v", ev)
	}
}

// A running rotator reads the signing secret again once it is five minutes old, so that a key added
// or dropped reaches it in five minutes (the key change in docs/consumers.md counts on them), and
// no sooner: each attempt does not cost a read.
func TestSigningSecretIsReadAgainAfterFiveMinutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := fake.NewSecretsManager(time.Now)
		if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("webhook/signing"), SecretString: aws.String(signing)}); err != nil {
			t.Fatal(err)
		}
		a, err := New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecretID: "webhook/signing"}), sm, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := a.Notifier(notify.Run, nil, nil)
		want := func(when, which, secret string) {
			t.Helper()
			got, err := n.Secret(t.Context())
			if err != nil || got.Reveal() != secret {
				t.Fatalf("%s: the signing secret is not the %s one (%v)", when, which, err)
			}
		}
		want("at start", "first", signing)
		both := signing + " whsec_c2Vjb25kLWtleS0wMTIzNDU2Nzg5YWJjZGVm"
		if _, err := sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String("webhook/signing"), SecretString: aws.String(both)}); err != nil {
			t.Fatal(err)
		}
		want("at once", "first", signing)
		time.Sleep(5*time.Minute - time.Second)
		want("a second before five minutes", "first", signing)
		time.Sleep(time.Second)
		want("at five minutes", "changed", both)
	})
}

func TestReasonOf(t *testing.T) {
	forced := &rotation.Stored{Forced: true}
	for name, tc := range map[string]struct {
		s        *rotation.Stored
		before   rotation.Health
		revoking bool
		want     notify.Reason
	}{
		"due":             {&rotation.Stored{}, rotation.HealthExpiring, false, notify.Scheduled},
		"forced":          {forced, rotation.HealthOK, false, notify.Forced},
		"forced, expired": {forced, rotation.HealthExpired, false, notify.Forced},
		"revoke wins":     {forced, rotation.HealthOK, true, notify.Revoke},
		"expired":         {&rotation.Stored{}, rotation.HealthExpired, false, notify.Healed},
		"no token":        {&rotation.Stored{}, rotation.HealthNoToken, false, notify.Healed},
		"lost":            {&rotation.Stored{}, rotation.HealthTokenLost, false, notify.Healed},
		"nil stored":      {nil, "", false, notify.Scheduled},
	} {
		if got := reasonOf(tc.s, tc.before, tc.revoking); got != tc.want {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
}

// The hook command the app builds inherits the rotator's environment less every variable that
// holds a literal secret: each row of the configuration table marked Secret, the gateway's key
// included (the table is the one list of them: config.SecretEnv).
func TestHookEnvDropsEverySecretSetting(t *testing.T) {
	a, err := New(load(t, map[string]string{config.EnvHookCommand: "/bin/true"}), fake.NewSecretsManager(time.Now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hook := a.Notifier(notify.Run, nil, nil).Hook
	var parent []string
	for _, s := range config.Settings {
		if s.Secret {
			parent = append(parent, s.Env+"=leaked-"+s.Env)
		}
	}
	if len(parent) < 4 {
		t.Fatalf("only %d secret settings: %q", len(parent), parent)
	}
	env := notify.HookEnv(parent, hook.Secrets, notify.NewEvent("acme", "tok", "v1", document.Token{}, notify.Scheduled))
	for _, kv := range env {
		if strings.Contains(kv, "leaked-") {
			t.Errorf("the hook inherits %s", kv)
		}
	}
}

// Resumable finds the delivery a process recorded as failed, with the kinds not delivered and the
// event's reason; for a newer token stored since, that token's.
func TestResumable(t *testing.T) {
	ctx := t.Context()
	sm := fake.NewSecretsManager(time.Now)
	a, err := New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Clients[0]
	if _, _, ok, err := a.Resumable(ctx, c); ok || err != nil {
		t.Fatalf("no token secret yet: %v, %v; want nothing to resume and no error", ok, err)
	}
	const tok = "tok-0123456789-abcdefghij"
	put := func(value string) string {
		t.Helper()
		out, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("tok"), SecretString: aws.String(value)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	tag := func(kind, value string) {
		t.Helper()
		if _, err := sm.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tok"),
			Tags: []types.Tag{{Key: aws.String(UndeliveredTagPrefix + kind), Value: aws.String(value)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("tok")}); err != nil {
		t.Fatal(err)
	}
	doc, _ := document.MarshalToken(document.Token{AccessToken: clear.NewAccessToken(tok), IssuedAt: time.Now().UTC(), Client: "default"})
	v1 := put(string(doc))
	if _, _, ok, err := a.Resumable(ctx, c); ok || err != nil {
		t.Fatalf("nothing recorded: %v, %v", ok, err)
	}

	// The tag as the recorder writes it, and one an older release wrote, without a reason, naming
	// an older version: AWSCURRENT's token is told to both kinds, with the reason of the first.
	ev := notify.NewEvent("default", "tok", v1, document.Token{}, notify.Revoke)
	tag("webhook", undeliveredValue(ev, time.Now()))
	tag("hook", "version some-older-version at 2026-12-01T00:00:00Z")
	got, kinds, ok, err := a.Resumable(ctx, c)
	if !ok || err != nil || !slices.Equal(kinds, []string{"hook", "webhook"}) || got.ID != ev.ID || got.VersionID != v1 ||
		got.Reason != notify.Revoke || got.Token.AccessToken.Reveal() != tok {
		t.Fatalf("Resumable = %+v, %v, %v, %v; want the webhook and the hook of %s, reason revoke", got, kinds, ok, err, v1)
	}
	tag("hook", "version "+v1+" at 2026-12-01T00:00:00Z")
	if got, kinds, _, _ := a.Resumable(ctx, c); !slices.Equal(kinds, []string{"hook", "webhook"}) || got.Reason != notify.Revoke {
		t.Fatalf("both recorded: kinds %v, reason %s", kinds, got.Reason)
	}
	if v, at, r := parseUndelivered("version " + v1 + " at 2026-12-01T00:00:00Z"); v != v1 || r != notify.Scheduled ||
		at == nil || !at.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("an older release's tag: %q, %q; want the version, scheduled", v, r)
	}
	if v, at, r := parseUndelivered("version v9 at T reason bogus"); v != "v9" || r != notify.Scheduled || at != nil {
		t.Fatalf("an unknown reason: %q, %q; want scheduled", v, r)
	}

	// A newer token whose delivery was not recorded (stored where push delivery is not configured):
	// a delivery of it would have removed the tags, so it is the one to tell, to both kinds (a
	// review of the session: it was left untold, the tags taken for superseded).
	v2 := put(string(doc))
	if got, kinds, ok, err := a.Resumable(ctx, c); !ok || err != nil || got.VersionID != v2 || !slices.Equal(kinds, []string{"hook", "webhook"}) ||
		got.Reason != notify.Scheduled {
		t.Fatalf("after a newer token: %+v, %v, %v, %v; want AWSCURRENT's, scheduled, to both kinds", got, kinds, ok, err)
	}
	// An AWSCURRENT that is no token document is not told, and the error does not quote it.
	v3 := put(tok)
	tag("webhook", "version "+v3+" at 2026-12-01T00:00:00Z")
	if _, _, ok, err := a.Resumable(ctx, c); ok || err == nil || strings.Contains(err.Error(), tok) {
		t.Fatalf("a malformed AWSCURRENT: %v, %v; want an error without the value", ok, err)
	}
}

// tagsAtTell is a Recorder that notes, when it is told, what the token secret's undelivered tags
// then say (its mark, PushMarkPrefix, stays).
type tagsAtTell struct {
	t      *testing.T
	sm     *fake.SecretsManager
	failed []bool // whether the tag was there when Failed was told
	clear  []bool // whether it was gone when Delivered was told
}

func (r *tagsAtTell) tagged() bool {
	out, err := r.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("tok")})
	if err != nil {
		r.t.Fatal(err)
	}
	return slices.ContainsFunc(out.Tags, func(t types.Tag) bool { return strings.HasPrefix(aws.ToString(t.Key), UndeliveredTagPrefix) })
}
func (r *tagsAtTell) Failed(notify.Event, string, time.Time) { r.failed = append(r.failed, r.tagged()) }
func (r *tagsAtTell) Delivered(notify.Event, string, time.Time) {
	r.clear = append(r.clear, !r.tagged())
}
func (r *tagsAtTell) Superseded(notify.Event, string, time.Time) {}

// The record on the token secret is written before the metrics hear of it: a scrape that sees the
// failure cleared, and an operator who then runs status, must not find the record still there
// (TestDaemonReloadRedeliversWhatWasNotDelivered failed so on a loaded machine), and a failure the
// metrics show is already on record for status.
func TestTheRecordIsWrittenBeforeTheMetricsAreTold(t *testing.T) {
	sm, v1 := tokenSecret(t) // the event's token is AWSCURRENT: an older one's failure is not recorded
	a, err := New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := &tagsAtTell{t: t, sm: sm}
	rec := a.Recorder(next, nil)
	ev := notify.NewEvent("default", "tok", v1, document.Token{}, notify.Scheduled)
	rec.Failed(ev, "webhook", time.Now())
	rec.Delivered(ev, "webhook", time.Now())
	if !slices.Equal(next.failed, []bool{true}) || !slices.Equal(next.clear, []bool{true}) {
		t.Fatalf("when the metrics were told: tag written %v, tag removed %v; want both done first", next.failed, next.clear)
	}
}

// The one reading of a token secret's undelivered tags: status shows every one, sorted, those of a
// token no longer AWSCURRENT marked superseded (a malformed one, whose version is unknown, is not);
// resuming tells AWSCURRENT's token to every kind with a readable tag, superseded ones included
// (the ERP was told of neither token), with the reason of a tag naming AWSCURRENT (scheduled when
// none does, or its reason is unknown), and nothing when no version is AWSCURRENT.
func TestUndeliveredOf(t *testing.T) {
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	const web, hook = UndeliveredTagPrefix + "webhook", UndeliveredTagPrefix + "hook"
	for name, tc := range map[string]struct {
		current string
		tags    []types.Tag
		lines   []string
		kinds   []string
		reason  notify.Reason
	}{
		"none":         {"v2", []types.Tag{tag("team", "erp")}, nil, nil, notify.Scheduled},
		"current":      {"v2", []types.Tag{tag(web, "version v2 at T reason forced")}, []string{"webhook: version v2 at T reason forced"}, []string{"webhook"}, notify.Forced},
		"older format": {"v2", []types.Tag{tag(web, "version v2 at T")}, []string{"webhook: version v2 at T"}, []string{"webhook"}, notify.Scheduled},
		"unknown reason": {"v2", []types.Tag{tag(web, "version v2 at T reason bogus")}, []string{"webhook: version v2 at T reason bogus"},
			[]string{"webhook"}, notify.Scheduled},
		"superseded":    {"v2", []types.Tag{tag(web, "version v1 at T reason healed")}, []string{"webhook: version v1 at T reason healed" + fleet.SupersededNote}, []string{"webhook"}, notify.Scheduled},
		"malformed":     {"v2", []types.Tag{tag(hook, "v2"), tag(web, "")}, []string{"hook: v2", "webhook: "}, nil, notify.Scheduled},
		"no AWSCURRENT": {"", []types.Tag{tag(web, "version v2 at T")}, []string{"webhook: version v2 at T"}, nil, notify.Scheduled},
		"both, the last listed's reason": {"v2", []types.Tag{tag(web, "version v2 at T reason revoke"), tag("team", "erp"), tag(hook, "version v2 at T")},
			[]string{"hook: version v2 at T", "webhook: version v2 at T reason revoke"}, []string{"hook", "webhook"}, notify.Scheduled},
		"one current, one not": {"v2", []types.Tag{tag(hook, "version v2 at T reason healed"), tag(web, "version v1 at T reason revoke")},
			[]string{"hook: version v2 at T reason healed", "webhook: version v1 at T reason revoke" + fleet.SupersededNote}, []string{"hook", "webhook"}, notify.Healed},
	} {
		out := &secretsmanager.DescribeSecretOutput{ARN: aws.String("arn:tok"), Tags: tc.tags,
			VersionIdsToStages: map[string][]string{"v1": {"AWSPREVIOUS"}}}
		if tc.current != "" {
			out.VersionIdsToStages[tc.current] = []string{"AWSCURRENT"}
		}
		rec := undeliveredOf(out)
		kinds, reason := rec.due(time.Time{})
		if !slices.Equal(lines(rec.records()), tc.lines) || !slices.Equal(kinds, tc.kinds) || reason != tc.reason || rec.current != tc.current || rec.arn != "arn:tok" {
			t.Errorf("%s: lines %q, due %q %s, current %q, arn %q; want %q, %q %s, %q", name, lines(rec.records()), kinds, reason, rec.current, rec.arn,
				tc.lines, tc.kinds, tc.reason, tc.current)
		}
	}
}

// TestADeliveryCutShortByTheDeadlineIsRecordedBeforeIt: a Lambda run delivers a token to a webhook
// receiver that never answers, with 7 s of the invocation left. The Lambda runtime is killed at its
// deadline, so the delivery must be given up early enough for what reports it to land before then:
// the undelivered tag the next run resumes from, and the notifier's failure (the DeliveryFailures
// metric). It was given up only when the deadline came, and the tag was written after it (the
// Lambda audit's third finding).
func TestADeliveryCutShortByTheDeadlineIsRecordedBeforeIt(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	sm := fake.NewSecretsManager(time.Now)
	created, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("tok"), SecretString: aws.String("{}")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(load(t, map[string]string{config.EnvWebhookURL: srv.URL + "/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver := a.Deliver(nil, a.Recorder(nil, nil))
	const left = 7 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), left)
	defer cancel()
	start := time.Now()
	err = deliver(ctx, a.Clients[0], rotation.Result{Stored: &rotation.Stored{VersionID: aws.ToString(created.VersionId)}}, false)
	took := time.Since(start)
	if !errors.Is(err, notify.ErrStopped) {
		t.Errorf("the delivery cut short: %v, want notify.ErrStopped", err)
	}
	if took >= left-time.Second {
		t.Errorf("the delivery and its record took %s of the %s left", took, left)
	}
	out, err := sm.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("tok")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(out.Tags, func(tg types.Tag) bool { return aws.ToString(tg.Key) == UndeliveredTagPrefix+"webhook" }) {
		t.Errorf("no undelivered tag on the token secret: %v", out.Tags)
	}
}

// lines are status's lines of records.
func lines(records []fleet.Undelivered) []string {
	var out []string
	for _, r := range records {
		out = append(out, r.String())
	}
	return out
}

// tokenSecret is a fake Secrets Manager holding the token secret "tok", with a token document in
// AWSCURRENT, and that version's id.
func tokenSecret(t *testing.T) (*fake.SecretsManager, string) {
	t.Helper()
	sm := fake.NewSecretsManager(time.Now)
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("tok")}); err != nil {
		t.Fatal(err)
	}
	doc, _ := document.MarshalToken(document.Token{AccessToken: clear.NewAccessToken("tok-0123456789-abcdefghij"), IssuedAt: time.Now().UTC(), Client: "default"})
	out, err := sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String("tok"), SecretString: aws.String(string(doc))})
	if err != nil {
		t.Fatal(err)
	}
	return sm, aws.ToString(out.VersionId)
}

// Untold records a token stored by a process that does not tell a kind the token secret is marked
// as told by (a shell without the push settings, the Lambda for a hook) as a delivery of that kind
// that failed: status shows it and the next run that tells the kind resumes it. A secret marked
// by no delivery yet, or by a kind this process tells, records nothing.
func TestUntold(t *testing.T) {
	ctx := t.Context()
	sm, v1 := tokenSecret(t)
	bare, err := New(load(t, nil), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	webhook, err := New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := notify.NewEvent("default", "tok", v1, document.Token{}, notify.Forced)
	untold := func(a *App) []string {
		t.Helper()
		var e *UntoldError
		err := a.Untold(ctx, a.Clients[0], a.Notifier(notify.Run, nil, nil), ev, a.Recorder(nil, nil), nil)
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Untold: %v", err)
		}
		if e == nil {
			return nil
		}
		return e.Kinds
	}
	mark := func(key string) {
		t.Helper()
		if _, err := sm.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tok"),
			Tags: []types.Tag{{Key: aws.String(key), Value: aws.String("told")}}}); err != nil {
			t.Fatal(err)
		}
	}
	if k := untold(bare); k != nil {
		t.Fatalf("a secret marked by nothing: %v recorded", k)
	}
	mark(PushMarkPrefix + "sms") // a kind this release does not know
	if k := untold(bare); k != nil {
		t.Fatalf("a mark of an unknown kind: %v recorded", k)
	}
	mark(PushMarkPrefix + "webhook")
	if k := untold(webhook); k != nil {
		t.Fatalf("a process that tells the kind marked: %v recorded", k)
	}
	if k := untold(bare); !slices.Equal(k, []string{"webhook"}) {
		t.Fatalf("a process without push delivery: %v recorded, want webhook", k)
	}
	got, kinds, ok, err := webhook.Resumable(ctx, webhook.Clients[0])
	if !ok || err != nil || got.VersionID != v1 || got.Reason != notify.Forced || !slices.Equal(kinds, []string{"webhook"}) {
		t.Fatalf("Resumable after Untold = %+v, %v, %v, %v; want the webhook of %s, forced", got, kinds, ok, err, v1)
	}
	mark(PushMarkPrefix + "hook")
	if k := untold(webhook); !slices.Equal(k, []string{"hook"}) {
		t.Fatalf("a process that tells the webhook only: %v recorded, want hook", k)
	}
}

// Resume tells only the kinds this process tells: a hook recorded as not delivered is not "resumed"
// by a process with only a webhook (the Lambda), which would log so at every run and tell nothing
// (a review of the reverted delivered tags, A4).
func TestResumeOnlyWhatThisProcessTells(t *testing.T) {
	ctx := t.Context()
	sm, v1 := tokenSecret(t)
	ev := notify.NewEvent("default", "tok", v1, document.Token{}, notify.Scheduled)
	if _, err := sm.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tok"),
		Tags: []types.Tag{{Key: aws.String(UndeliveredTagPrefix + "hook"), Value: aws.String(undeliveredValue(ev, time.Now()))}}}); err != nil {
		t.Fatal(err)
	}
	a, err := New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &proctest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	if err := a.Resume(log, nil)(ctx, a.Clients[0]); err != nil || strings.Contains(logs.String(), "resuming") {
		t.Fatalf("Resume = %v, logged:\n%s\nwant nothing resumed", err, logs)
	}
}

// tagsOf returns the tags of the fake's token secret "tok", by key.
func tagsOf(t *testing.T, sm *fake.SecretsManager) map[string]string {
	t.Helper()
	out, err := sm.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("tok")})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, tg := range out.Tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// markAs marks the fake's token secret as told by kind.
func markAs(t *testing.T, sm *fake.SecretsManager, kind string) {
	t.Helper()
	if _, err := sm.TagResource(t.Context(), &secretsmanager.TagResourceInput{SecretId: aws.String("tok"),
		Tags: []types.Tag{{Key: aws.String(PushMarkPrefix + kind), Value: aws.String("told")}}}); err != nil {
		t.Fatal(err)
	}
}

// putToken stores a newer token document in the fake's token secret, as another process would,
// and returns its version.
func putToken(t *testing.T, sm *fake.SecretsManager) string {
	t.Helper()
	doc, _ := document.MarshalToken(document.Token{AccessToken: clear.NewAccessToken("tok-9876543210-zyxwvutsrq"), IssuedAt: time.Now().UTC(), Client: "default"})
	out, err := sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String("tok"), SecretString: aws.String(string(doc))})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

// A token that is no longer AWSCURRENT when a run that stored it comes to record what it does not
// tell is not recorded: the newer one was stored since, and is its storer's to tell. The review of
// the store-time records found the CLI and the Lambda recording after their own delivery (up to
// about a minute), so that a newer token stored and told meanwhile was overwritten by a false
// record of the older one; the record is now written before the delivery, and only of AWSCURRENT.
func TestUntoldRecordsOnlyTheTokenInAWSCURRENT(t *testing.T) {
	sm, v2 := tokenSecret(t)
	markAs(t, sm, "hook")
	var v3 string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v3 == "" {
			v3 = putToken(t, sm) // another process, with the hook, stores v3 and tells it
			hooker, _ := New(load(t, map[string]string{config.EnvHookCommand: "/bin/true"}), sm, nil, nil)
			hooker.Recorder(nil, nil).Delivered(notify.NewEvent("default", "tok", v3, document.Token{}, notify.Scheduled), "hook", time.Now())
		}
	}))
	defer srv.Close()
	a, err := New(load(t, map[string]string{config.EnvWebhookURL: srv.URL + "/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Deliver(nil, a.Recorder(nil, nil))(t.Context(), a.Clients[0], rotation.Result{Stored: &rotation.Stored{VersionID: v2}}, false)
	if v := tagsOf(t, sm)[UndeliveredTagPrefix+"hook"]; v != "" {
		t.Fatalf("recorded %q after v3 (%s) was stored and told", v, v3)
	}
	// And a token recorded when it is no longer AWSCURRENT is not recorded at all.
	bare, _ := New(load(t, nil), sm, nil, nil)
	if err := bare.Untold(t.Context(), bare.Clients[0], nil, notify.NewEvent("default", "tok", v2, document.Token{}, notify.Forced), bare.Recorder(nil, nil), nil); err != nil {
		t.Fatalf("Untold of a superseded token: %v", err)
	}
	if v := tagsOf(t, sm)[UndeliveredTagPrefix+"hook"]; v != "" {
		t.Fatalf("recorded %q, a superseded token", v)
	}
}

// A delivery of an older token that succeeds after a process without the push settings stored a
// newer one, and recorded it as not told, leaves that record: it removed it (the review of the
// store-time records), and the newer token was told to nobody with status --check green.
func TestAnOlderDeliveryLeavesTheRecordOfANewerToken(t *testing.T) {
	sm, v2 := tokenSecret(t)
	markAs(t, sm, "webhook")
	entered, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if once.CompareAndSwap(false, true) {
			close(entered)
		}
		<-release
	}))
	defer srv.Close()
	teller, err := New(load(t, map[string]string{config.EnvWebhookURL: srv.URL + "/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := New(load(t, nil), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		done <- teller.Deliver(nil, teller.Recorder(nil, nil))(context.Background(), teller.Clients[0], rotation.Result{Stored: &rotation.Stored{VersionID: v2}}, false)
	}()
	<-entered
	v3 := putToken(t, sm) // an operator's shell without the push settings
	err = bare.Deliver(nil, bare.Recorder(nil, nil))(t.Context(), bare.Clients[0], rotation.Result{Stored: &rotation.Stored{VersionID: v3, Forced: true}}, false)
	if e := (*UntoldError)(nil); !errors.As(err, &e) {
		t.Fatalf("the push-less run: %v, want an UntoldError", err)
	}
	close(release)
	<-done
	if recs, _ := bare.Undelivered(t.Context(), bare.Clients[0]); len(recs) == 0 {
		t.Fatalf("v3 (%s) was told to nobody, and its record is gone: tags %v", v3, tagsOf(t, sm))
	}
}

// A failure of an older token's delivery, recorded after a newer token was stored and its own
// failure recorded, leaves the newer record: it overwrote it (review 5), and status named the old
// version as superseded while the newer one, told to nobody, showed nothing.
func TestAnOlderFailureLeavesTheRecordOfANewerToken(t *testing.T) {
	sm, v2 := tokenSecret(t)
	a, err := New(load(t, nil), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := a.Recorder(nil, nil)
	v3 := putToken(t, sm)
	rec.Failed(notify.NewEvent("default", "tok", v3, document.Token{}, notify.Forced), "webhook", time.Now())
	rec.Failed(notify.NewEvent("default", "tok", v2, document.Token{}, notify.Scheduled), "webhook", time.Now())
	if v := tagsOf(t, sm)[UndeliveredTagPrefix+"webhook"]; !strings.Contains(v, v3) {
		t.Fatalf("the record is %q, want v3's (%s)", v, v3)
	}
	// An older failure with no newer record writes nothing either: the newer token's storer tells
	// it, or records that it did not.
	sm2, old := tokenSecret(t)
	b, _ := New(load(t, nil), sm2, nil, nil)
	putToken(t, sm2)
	b.Recorder(nil, nil).Failed(notify.NewEvent("default", "tok", old, document.Token{}, notify.Scheduled), "webhook", time.Now())
	if v := tagsOf(t, sm2)[UndeliveredTagPrefix+"webhook"]; v != "" {
		t.Fatalf("recorded %q for a superseded token", v)
	}
}

// A daemon's record of a delivery it goes on retrying says so, and a resume that is not a start's
// or a reload's (a replica's look at its next check, rotate, the Lambda) leaves it to that daemon
// for an hour: with the shipped two replicas every failing delivery had been retried by both, and
// delivered twice when the receiver came back (the review of the looks, finding 1). Once the
// retrying daemon gives up, the record is final and any process takes it up. A resume for kinds
// the process does not tell reads no token.
func TestARecordStillRetriedIsLeftToItsRetrier(t *testing.T) {
	sm, v1 := tokenSecret(t)
	a, err := New(load(t, map[string]string{config.EnvWebhookURL: "https://erp.example.com/h", config.EnvWebhookSecret: signing}), sm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, n := a.Clients[0], a.Notifier(notify.Once, nil, nil)
	rec := a.Recorder(nil, nil).(notify.Finisher)
	ev := notify.NewEvent("default", "tok", v1, document.Token{}, notify.Scheduled)
	retrying := ev
	retrying.Retrying = true
	now := time.Now()
	rec.(notify.Recorder).Failed(retrying, "webhook", now)
	if v := tagsOf(t, sm)[UndeliveredTagPrefix+"webhook"]; !strings.HasSuffix(v, " retrying") {
		t.Fatalf("the record %q does not say the delivery goes on", v)
	}
	if _, _, ok, err := a.ResumableBy(t.Context(), c, n, now.Add(-RetryingTrust)); ok || err != nil {
		t.Fatalf("a record still retried was resumed by a look: %v, %v", ok, err)
	}
	if _, kinds, ok, _ := a.ResumableBy(t.Context(), c, n, time.Time{}); !ok || !slices.Equal(kinds, []string{"webhook"}) {
		t.Fatalf("a start's resume left it: %v %v", ok, kinds)
	}
	if _, _, ok, _ := a.ResumableBy(t.Context(), c, n, now.Add(time.Second)); !ok {
		t.Fatal("a record retried for longer than RetryingTrust is still left to its retrier")
	}
	rec.GaveUp(ev, "webhook", now)
	if v := tagsOf(t, sm)[UndeliveredTagPrefix+"webhook"]; strings.Contains(v, "retrying") || !strings.Contains(v, v1) {
		t.Fatalf("after the retrier gave up the record is %q", v)
	}
	if _, _, ok, _ := a.ResumableBy(t.Context(), c, n, now.Add(-RetryingTrust)); !ok {
		t.Fatal("a record its retrier gave up is left")
	}
	// A hook recorded, for a process that tells only the webhook: nothing to resume, no token read.
	if _, err := sm.UntagResource(t.Context(), &secretsmanager.UntagResourceInput{SecretId: aws.String("tok"), TagKeys: []string{UndeliveredTagPrefix + "webhook"}}); err != nil {
		t.Fatal(err)
	}
	rec.(notify.Recorder).Failed(ev, "hook", now)
	reads := sm.Calls()["GetSecretValue"]
	if _, _, ok, err := a.ResumableBy(t.Context(), c, n, time.Time{}); ok || err != nil || sm.Calls()["GetSecretValue"] != reads {
		t.Fatalf("a hook's record for a webhook-only process: %v, %v, %d reads of the token", ok, err, sm.Calls()["GetSecretValue"]-reads)
	}
}

// A "retrying" record keeps the others off only while it names the token in AWSCURRENT: one of an
// older token is no longer being retried (a newer token superseded its delivery), and had kept the
// newer token, recorded by nobody, from being told for RetryingTrust. A skipped record of
// AWSCURRENT still gives the event its reason (review 10, finding 2).
func TestARetryingRecordOfAnOlderTokenKeepsNobodyOff(t *testing.T) {
	now := time.Now()
	at := now.UTC().Format(time.RFC3339)
	tag := func(k, v string) types.Tag {
		return types.Tag{Key: aws.String(UndeliveredTagPrefix + k), Value: aws.String(v)}
	}
	for name, tc := range map[string]struct {
		tags   []types.Tag
		kinds  []string
		reason notify.Reason
	}{
		"an older token's":  {[]types.Tag{tag("hook", "version v1 at "+at+" reason forced retrying")}, []string{"hook"}, notify.Scheduled},
		"AWSCURRENT's":      {[]types.Tag{tag("hook", "version v2 at "+at+" reason forced retrying")}, nil, notify.Forced},
		"AWSCURRENT's, old": {[]types.Tag{tag("hook", "version v2 at 2000-01-01T00:00:00Z reason forced retrying")}, []string{"hook"}, notify.Forced},
	} {
		rec := undeliveredOf(&secretsmanager.DescribeSecretOutput{Tags: tc.tags,
			VersionIdsToStages: map[string][]string{"v1": {"AWSPREVIOUS"}, "v2": {"AWSCURRENT"}}})
		if kinds, reason := rec.due(now.Add(-RetryingTrust)); !slices.Equal(kinds, tc.kinds) || reason != tc.reason {
			t.Errorf("%s: due %v, %s; want %v, %s", name, kinds, reason, tc.kinds, tc.reason)
		}
	}
}

// slowDescribe answers DescribeSecret after d, unless the caller gives up first.
type slowDescribe struct {
	*fake.SecretsManager
	d time.Duration
}

func (s slowDescribe) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.SecretsManager.DescribeSecret(ctx, in, o...)
}

// UntagResource fails, as the SDK does, when the caller's context has ended.
func (s slowDescribe) UntagResource(ctx context.Context, in *secretsmanager.UntagResourceInput, o ...func(*secretsmanager.Options)) (*secretsmanager.UntagResourceOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.SecretsManager.UntagResource(ctx, in, o...)
}

// A delivery that succeeds clears its record though the read before it is slow: the read had the
// whole of tagLimit, and a read that took it left the removal an expired context, so the record of
// a delivery made stayed, for every other process to make it again (review 10, finding 4).
func TestASlowReadLeavesTheDeliveredItsTimeToClear(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm, v1 := tokenSecret(t)
		a, err := New(load(t, nil), slowDescribe{sm, 2 * tagLimit}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev := notify.NewEvent("default", "tok", v1, document.Token{}, notify.Scheduled)
		if _, err := sm.TagResource(t.Context(), &secretsmanager.TagResourceInput{SecretId: aws.String("tok"),
			Tags: []types.Tag{{Key: aws.String(UndeliveredTagPrefix + "webhook"), Value: aws.String(undeliveredValue(ev, time.Now()))}}}); err != nil {
			t.Fatal(err)
		}
		a.Recorder(nil, nil).Delivered(ev, "webhook", time.Now())
		if v := tagsOf(t, sm)[UndeliveredTagPrefix+"webhook"]; v != "" {
			t.Fatalf("the record %q of a delivery made is left", v)
		}
	})
}
