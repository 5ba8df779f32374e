package lambdafn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// stepRig is one client whose token secret Secrets Manager rotates through the function: a rig
// world on the wire (moto) or in memory (the fake Secrets Manager).
type stepRig struct {
	t       *testing.T
	w       *rig.World
	api     store.API
	isMoto  bool
	clock   *fake.Clock
	emu     *emulator.Server
	h       *lambdafn.Handler
	metrics *proctest.Buffer
	secrets []string
	tokenID string
	// secretID is what Secrets Manager sends as SecretId: the ARN with moto, the name with the
	// fake, which has no ARNs.
	secretID string
	// clientSecretIDs are the API clients' client secret ids, in slot order.
	clientSecretIDs []string
	seq             int
}

// eachBackend runs fn against moto and against fake.SecretsManager.
func eachBackend(t *testing.T, fn func(t *testing.T, newRig func(slots, limit int) *stepRig)) {
	for _, backend := range []string{"moto", "fake"} {
		t.Run(backend, func(t *testing.T) {
			fn(t, func(slots, limit int) *stepRig { return newStepRig(t, backend == "moto", slots, limit) })
		})
	}
}

func newStepRig(t *testing.T, isMoto bool, slots, limit int) *stepRig {
	t.Helper()
	return newStepRigWith(t, isMoto, slots, limit, nil)
}

// newStepRigWith is newStepRig with edit changing the environment the function is configured
// from before it is loaded.
func newStepRigWith(t *testing.T, isMoto bool, slots, limit int, edit func(w *rig.World, env map[string]string)) *stepRig {
	t.Helper()
	clock := fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	w := rig.New(t, rig.Options{Memory: !isMoto, Clock: clock, Lifetime: time.Hour, APIClients: slots})
	r := &stepRig{t: t, w: w, api: w.API, isMoto: isMoto, clock: clock, emu: w.Emu, metrics: &proctest.Buffer{},
		secrets: w.Secrets, tokenID: w.TokenID, secretID: w.TokenID}
	w.RecordFrom(r.metrics)
	env := map[string]string{config.EnvLogLevel: "debug", config.EnvLogFormat: "json", config.EnvDailyLimit: fmt.Sprint(limit),
		config.EnvBaseURL: w.ClearURL, config.EnvTokenSecretID: w.TokenID}
	r.clientSecretIDs = w.StoreClientSecrets()
	for i, id := range r.clientSecretIDs {
		if i == 0 {
			env[config.EnvClientSecretID] = id
		} else {
			env[config.EnvClientSecretID2] = id
		}
	}
	w.CreateTokenSecret()
	if isMoto {
		out, err := w.SM.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(r.tokenID)})
		if err != nil || aws.ToString(out.ARN) == "" {
			t.Fatalf("describing the token secret: %v", err)
		}
		r.secretID = aws.ToString(out.ARN)
	}
	if edit != nil {
		edit(w, env)
	}
	cfg, err := config.Load(lookup(env))
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	a, err := app.New(cfg, w.API, w.ClearHTTPClient(), logging.New(w.Logs, cfg.LogLevel, cfg.LogFormat))
	if err != nil {
		t.Fatal(err)
	}
	a.Engine.Now = clock.Now
	a.Engine.Rand = func() float64 { return 0.5 }
	a.Engine.WriteRetry = time.Millisecond
	r.h = lambdafn.New(a, r.metrics)
	return r
}

func (r *stepRig) invoke(payload string) (any, error) {
	r.t.Helper()
	r.seq++
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("req-step-%d", r.seq)})
	return r.h.Handle(ctx, json.RawMessage(payload))
}

func (r *stepRig) step(step lambdafn.Step, token string) (lambdafn.StepAnswer, error) {
	r.t.Helper()
	ans, err := r.invoke(fmt.Sprintf(`{"SecretId":%q,"ClientRequestToken":%q,"Step":%q}`, r.secretID, token, step))
	if err != nil {
		return lambdafn.StepAnswer{}, err
	}
	sa, ok := ans.(lambdafn.StepAnswer)
	if !ok {
		r.t.Fatalf("%s answered %T, want StepAnswer", step, ans)
	}
	return sa, nil
}

func (r *stepRig) mustStep(step lambdafn.Step, token string) lambdafn.StepAnswer {
	r.t.Helper()
	sa, err := r.step(step, token)
	if err != nil {
		r.t.Fatalf("%s: %v", step, err)
	}
	return sa
}

// stages returns the token secret's labels and the version holding each.
func (r *stepRig) stages() map[string]string {
	r.t.Helper()
	m, err := store.New(r.api).Stages(context.Background(), r.tokenID)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// current returns the AWSCURRENT version id and its token (empty when it holds none).
func (r *stepRig) current() (string, document.Token) {
	r.t.Helper()
	v, err := store.New(r.api).Read(context.Background(), r.tokenID, "AWSCURRENT")
	if err != nil {
		r.t.Fatal(err)
	}
	tok, _ := document.ParseToken([]byte(v.Value))
	return v.ID, tok
}

func (r *stepRig) requests() int {
	n := 0
	for _, s := range r.secrets {
		n += r.emu.Requests(s)
	}
	return n
}

// rotationToken is a ClientRequestToken as Secrets Manager generates one.
const rotationToken = "7c9a6f1e-4b2d-4e8f-9a3c-5d1e2f3a4b5c"

func TestRotationStepsStoreTheTokenAtCreateAndTidyUpAtFinish(t *testing.T) {
	eachBackend(t, func(t *testing.T, newRig func(slots, limit int) *stepRig) {
		r := newRig(1, 48)
		// The secret is in use: the schedule stored a token before rotation was turned on.
		if _, err := r.invoke(`{"action":"scheduled"}`); err != nil {
			t.Fatal(err)
		}
		_, before := r.current()

		// createSecret asks Clear once and stores the token as the new version, AWSCURRENT at once.
		sa := r.mustStep(lambdafn.StepCreate, rotationToken)
		if sa.Result == nil || sa.Result.Outcome != rotation.Rotated || sa.Client != "default" {
			t.Fatalf("createSecret answered %+v", sa)
		}
		id, tok := r.current()
		if id != rotationToken || !r.emu.Live(tok.AccessToken.Reveal()) {
			t.Fatalf("after createSecret AWSCURRENT is %s (live %v), want a live token in version %s", id, r.emu.Live(tok.AccessToken.Reveal()), rotationToken)
		}
		if r.emu.Live(before.AccessToken.Reveal()) {
			t.Error("with one API client the token before the rotation should be revoked")
		}
		if got := r.stages(); got["AWSCURRENT"] != rotationToken || got["AWSPENDING"] != rotationToken {
			t.Fatalf("after createSecret stages = %v, want AWSCURRENT and AWSPENDING on %s", got, rotationToken)
		}
		if n := r.requests(); n != 2 {
			t.Fatalf("Clear requests = %d, want 2 (the schedule's and createSecret's)", n)
		}

		// Every step retried changes nothing and asks Clear nothing.
		stagesAfterCreate := r.stages()
		sa = r.mustStep(lambdafn.StepCreate, rotationToken)
		if sa.Result != nil || !strings.Contains(sa.Message, "retried step") {
			t.Errorf("retried createSecret answered %+v", sa)
		}
		for _, step := range []lambdafn.Step{lambdafn.StepSet, lambdafn.StepSet, lambdafn.StepTest, lambdafn.StepTest} {
			r.mustStep(step, rotationToken)
		}
		if got := r.stages(); !maps.Equal(got, stagesAfterCreate) || r.requests() != 2 {
			t.Fatalf("retried steps changed the stages (%v, was %v) or asked Clear (%d requests)", got, stagesAfterCreate, r.requests())
		}

		// finishSecret leaves the version AWSCURRENT and takes AWSPENDING off it.
		sa = r.mustStep(lambdafn.StepFinish, rotationToken)
		got := r.stages()
		if got["AWSCURRENT"] != rotationToken || got["AWSPENDING"] != "" {
			t.Fatalf("after finishSecret stages = %v, want AWSCURRENT on %s and no AWSPENDING (%s)", got, rotationToken, sa.Message)
		}
		if id, tok := r.current(); id != rotationToken || !r.emu.Live(tok.AccessToken.Reveal()) {
			t.Fatalf("after finishSecret AWSCURRENT = %s, want the live token of %s", id, rotationToken)
		}
		// A retried finishSecret has nothing to do.
		sa = r.mustStep(lambdafn.StepFinish, rotationToken)
		if !strings.Contains(sa.Message, "nothing to do") || !maps.Equal(r.stages(), got) {
			t.Errorf("retried finishSecret: %q, stages %v", sa.Message, r.stages())
		}
		if fk, ok := r.api.(*fake.SecretsManager); ok {
			if n := fk.Calls()["UpdateSecretVersionStage"]; n != 1 {
				t.Errorf("UpdateSecretVersionStage calls = %d, want 1 (AWSPENDING removed once)", n)
			}
		}
		if n := r.requests(); n != 2 {
			t.Fatalf("Clear requests = %d, want 2", n)
		}

		// createSecret's run reported its metrics like any other.
		var outcomes []string
		for _, l := range lines(r.metrics.String()) {
			var m map[string]any
			_ = json.Unmarshal([]byte(l), &m)
			outcomes = append(outcomes, fmt.Sprint(m["Outcome"]))
		}
		if strings.Join(outcomes, ",") != "rotated,rotated" {
			t.Errorf("EMF outcomes %v, want the schedule's and createSecret's rotations", outcomes)
		}
	})
}

func TestRotationStepsWithTwoAPIClientsAlternate(t *testing.T) {
	eachBackend(t, func(t *testing.T, newRig func(slots, limit int) *stepRig) {
		r := newRig(2, 48)
		if _, err := r.invoke(`{}`); err != nil {
			t.Fatal(err)
		}
		_, before := r.current()
		sa := r.mustStep(lambdafn.StepCreate, rotationToken)
		_, after := r.current()
		if sa.Result.APIClient == before.APIClient || after.APIClient == before.APIClient {
			t.Fatalf("createSecret asked API client %d after a token of API client %d; want the other", sa.Result.APIClient, before.APIClient)
		}
		if !r.emu.Live(before.AccessToken.Reveal()) || !r.emu.Live(after.AccessToken.Reveal()) {
			t.Fatal("with two API clients the token before the rotation stays live beside the new one")
		}
		r.mustStep(lambdafn.StepSet, rotationToken)
		r.mustStep(lambdafn.StepTest, rotationToken)
		r.mustStep(lambdafn.StepFinish, rotationToken)
		if got := r.stages(); got["AWSCURRENT"] != rotationToken || got["AWSPENDING"] != "" {
			t.Fatalf("stages = %v", got)
		}
		// Issue 19 item 9, after a native rotation: consumers may still hold the token it
		// replaced, so a force minutes later does not ask that token's API client.
		r.clock.Advance(3 * time.Minute)
		if _, err := r.invoke(`{"action":"rotate","force":true}`); err == nil || !strings.Contains(err.Error(), "not asking API client") {
			t.Fatalf("a force after the native rotation: %v", err)
		}
		if !r.emu.Live(before.AccessToken.Reveal()) {
			t.Fatal("the force revoked the token the native rotation replaced")
		}
	})
}

func TestRotationStepFailures(t *testing.T) {
	eachBackend(t, func(t *testing.T, newRig func(slots, limit int) *stepRig) {
		var se *lambdafn.StepError

		// The daily limit: createSecret fails with a clear message, asking Clear nothing.
		r := newRig(1, 1)
		if _, err := r.invoke(`{}`); err != nil {
			t.Fatal(err)
		}
		_, err := r.step(lambdafn.StepCreate, rotationToken)
		if !errors.As(err, &se) || se.Step != lambdafn.StepCreate || !strings.Contains(err.Error(), "limited: refused by the daily limit") {
			t.Fatalf("createSecret over the limit: %v", err)
		}
		var lim *rotation.LimitError
		if !errors.As(err, &lim) {
			t.Errorf("the step error does not wrap the *rotation.LimitError: %v", err)
		}
		if r.requests() != 1 {
			t.Fatalf("Clear requests = %d, want 1", r.requests())
		}
		// testSecret and finishSecret of a version createSecret never stored fail, changing nothing.
		before := r.stages()
		for _, step := range []lambdafn.Step{lambdafn.StepTest, lambdafn.StepFinish} {
			if _, err := r.step(step, rotationToken); !errors.As(err, &se) || !strings.Contains(err.Error(), rotationToken) {
				t.Errorf("%s of a version never stored: %v", step, err)
			}
		}
		if !maps.Equal(r.stages(), before) {
			t.Errorf("failed steps changed the stages: %v, was %v", r.stages(), before)
		}

		// A secret the function does not keep, existing or not.
		foreign := mototest.Name(t, "foreign")
		if _, err := r.api.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(foreign), SecretString: aws.String("x")}); err != nil {
			t.Fatal(err)
		}
		// One that does not exist is not quoted: it may be a value pasted in its place.
		for id, says := range map[string]string{foreign: "no configured client keeps its token in secret " + strconv.Quote(foreign),
			"no-such-secret": "no configured client keeps its token in the secret given (14 characters, not shown"} {
			_, err = r.invoke(`{"SecretId":"` + id + `","ClientRequestToken":"` + rotationToken + `","Step":"createSecret"}`)
			if !errors.As(err, &se) || !strings.Contains(err.Error(), says) {
				t.Errorf("secret %s: %v", id, err)
			}
		}

		// A rotation in flight: createSecret is busy and fails rather than waiting.
		r2 := newRig(1, 48)
		if _, err := r2.invoke(`{}`); err != nil {
			t.Fatal(err)
		}
		claim(t, r2)
		if _, err := r2.step(lambdafn.StepCreate, rotationToken); !errors.As(err, &se) || !strings.Contains(err.Error(), "busy: a rotation is in progress") {
			t.Fatalf("createSecret during a rotation in flight: %v", err)
		}

		// An earlier delivery of createSecret holds a live claim (it is still asking Clear or
		// storing the token): the retry asks Clear nothing and fails, since no token is there yet.
		r3 := newRig(1, 48)
		if _, err := r3.invoke(`{}`); err != nil {
			t.Fatal(err)
		}
		editState(t, r3, "0c1a1a1a-0000-4000-8000-000000000002", func(st *document.State, base string, now time.Time) {
			st.Claim = &document.Claim{Owner: "earlier-delivery", At: now, LeaseUntil: now.Add(time.Minute), Base: base, Slot: 1,
				Event: "rotation/" + rotationToken}
		})
		if _, err := r3.step(lambdafn.StepCreate, rotationToken); !errors.As(err, &se) || !strings.Contains(err.Error(), "an earlier delivery of this step is still asking Clear") {
			t.Fatalf("createSecret while an earlier delivery holds the claim: %v", err)
		}
		if r3.requests() != 1 {
			t.Fatalf("Clear requests = %d, want 1", r3.requests())
		}

		// Issue 19 item 1: the first delivery failed (Clear answered 500); Secrets Manager retries
		// with the same ClientRequestToken. Within the backoff the retry asks nothing and says so;
		// after it, the retry asks Clear and stores the version.
		r4 := newRig(1, 48)
		if _, err := r4.invoke(`{}`); err != nil {
			t.Fatal(err)
		}
		scheduled, _ := r4.current()
		r4.emu.Inject(emulator.ServerError())
		if _, err := r4.step(lambdafn.StepCreate, rotationToken); !errors.As(err, &se) || !strings.Contains(err.Error(), "500") {
			t.Fatalf("createSecret during a 500: %v", err)
		}
		r4.clock.Advance(5 * time.Second)
		if _, err := r4.step(lambdafn.StepCreate, rotationToken); !errors.As(err, &se) || !strings.Contains(err.Error(), "backing off") || r4.requests() != 2 {
			t.Fatalf("a retry within the backoff: %v (Clear requests %d)", err, r4.requests())
		}
		r4.clock.Advance(time.Minute)
		if sa := r4.mustStep(lambdafn.StepCreate, rotationToken); sa.Result == nil || sa.Result.Outcome != rotation.Rotated || r4.requests() != 3 {
			t.Fatalf("a retry after the backoff: %+v (Clear requests %d)", sa, r4.requests())
		}
		if id, _ := r4.current(); id != rotationToken {
			t.Fatalf("AWSCURRENT is %s, want %s", id, rotationToken)
		}
		// And the version it stored now answers a retried createSecret as done.
		if sa := r4.mustStep(lambdafn.StepCreate, rotationToken); !strings.Contains(sa.Message, "retried step") || r4.requests() != 3 {
			t.Fatalf("a retry after success: %+v", sa)
		}

		// Issue 19 item 14: a createSecret naming a version that exists but that this rotation did
		// not store (here the schedule's) fails, asking nothing, rather than passing as a retry.
		if _, err := r4.step(lambdafn.StepCreate, scheduled); !errors.As(err, &se) || !strings.Contains(err.Error(), "not stored by this rotation") || r4.requests() != 3 {
			t.Fatalf("createSecret naming %s: %v (Clear requests %d)", scheduled, err, r4.requests())
		}
	})
}

// claim writes a live claim into the rotation state, as a rotator that has just claimed would.
func claim(t *testing.T, r *stepRig) {
	t.Helper()
	editState(t, r, "0c1a1a1a-0000-4000-8000-000000000001", func(st *document.State, base string, now time.Time) {
		st.Claim = &document.Claim{Owner: "another-rotator", At: now, LeaseUntil: now.Add(time.Minute), Base: base, Slot: 1}
	})
}

// editState writes a successor of the rotation state, changed by edit.
func editState(t *testing.T, r *stepRig, requestToken string, edit func(st *document.State, base string, now time.Time)) {
	t.Helper()
	s := store.New(r.api)
	ctx := context.Background()
	cur, err := s.Read(ctx, r.tokenID, "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}
	stv, err := s.Read(ctx, r.tokenID, document.StateStage)
	if err != nil {
		t.Fatal(err)
	}
	st, err := document.ParseState([]byte(stv.Value))
	if err != nil {
		t.Fatal(err)
	}
	edit(&st, cur.ID, r.clock.Now())
	body, err := document.MarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, r.tokenID, requestToken, string(body), document.StateStage); err != nil {
		t.Fatal(err)
	}
}

// TestFinishSecretKeepsANewerToken: a forced rotation between createSecret and finishSecret stores
// a newer token; finishSecret must not move AWSCURRENT back to the older one, which Clear revoked.
func TestFinishSecretKeepsANewerToken(t *testing.T) {
	eachBackend(t, func(t *testing.T, newRig func(slots, limit int) *stepRig) {
		r := newRig(1, 48)
		r.mustStep(lambdafn.StepCreate, rotationToken)
		r.clock.Advance(time.Minute)
		if _, err := r.invoke(`{"action":"rotate","force":true}`); err != nil {
			t.Fatal(err)
		}
		newer, tok := r.current()
		sa := r.mustStep(lambdafn.StepFinish, rotationToken)
		got := r.stages()
		if got["AWSCURRENT"] != newer || got["AWSPENDING"] != "" || !r.emu.Live(tok.AccessToken.Reveal()) {
			t.Fatalf("finishSecret after a newer rotation: stages %v (%s), want AWSCURRENT kept on %s and no AWSPENDING", got, sa.Message, newer)
		}
	})
}

// The template's budget alarm divides RequestsToday by DailyLimit and fires at 0.8, "80% of the
// daily request budget". DailyLimit applies to each API client (README, status's daily_limit), so
// RequestsToday must be the count of the API client that made the most requests today, as the
// daemon's ClearRotatorBudgetHigh compares each API client's count with the limit. It was the sum
// across both: with two API clients used in turn, the alarm fired when each had used 40%.
func TestBudgetMetricIsTheBusiestAPIClientsCount(t *testing.T) {
	r := newStepRig(t, false, 2, 10)
	// Eight scheduled rotations, 41 minutes apart (one-hour tokens are due when a third is left):
	// the two API clients are asked in turn, four requests each, on one UTC day.
	for i := range 8 {
		if i > 0 {
			r.clock.Advance(41 * time.Minute)
		}
		ans, err := r.invoke(`{"action":"scheduled"}`)
		if err != nil {
			t.Fatal(err)
		}
		if got := ans.(lambdafn.RotateAnswer).Results[0].Outcome; got != rotation.Rotated {
			t.Fatalf("run %d: %s, want rotated", i+1, got)
		}
	}
	for i, s := range r.secrets {
		if n := r.emu.Requests(s); n != 4 {
			t.Fatalf("API client %d was asked %d times, want 4", i+1, n)
		}
	}
	ls := lines(r.metrics.String())
	var last map[string]any
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &last); err != nil {
		t.Fatal(err)
	}
	requests, limit := last[lambdafn.MetricRequestsToday].(float64), last[lambdafn.MetricDailyLimit].(float64)
	if requests != 4 || limit != 10 {
		t.Fatalf("EMF RequestsToday = %v, DailyLimit = %v; want 4 (the busiest API client's count) and 10", requests, limit)
	}
	if requests/limit >= 0.8 {
		t.Fatalf("the budget alarm's requests / limit = %v: it fires while each API client has used 40%%", requests/limit)
	}
}

// The template's RotationSchedule has RotateImmediatelyOnUpdate false, so when CloudFormation
// creates it (and when an update changes it) Secrets Manager calls RotateSecret with
// RotateImmediately false: it tests the rotation configuration by putting an AWSPENDING version
// holding a copy of the current value and invoking testSecret alone with that version's id (moto
// does exactly this, here with a rotation function it cannot find, so that it invokes nothing).
// On the first deployment the current value is the "{}" the stack created, so a testSecret that
// wants a token document failed the probe, and with it the stack's rotation set-up. The probe
// asks Clear nothing and changes nothing.
func TestTestSecretPassesSecretsManagersProbe(t *testing.T) {
	r := newStepRig(t, true, 1, 48)
	probe := func(token string) (lambdafn.StepAnswer, error) {
		t.Helper()
		_, err := r.w.Moto.Client().RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{
			SecretId: aws.String(r.tokenID), ClientRequestToken: aws.String(token), RotateImmediately: aws.Bool(false),
			RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:not-deployed"),
		})
		if err == nil || !strings.Contains(err.Error(), "ResourceNotFound") {
			t.Fatalf("moto's RotateSecret: %v, want ResourceNotFoundException after it put the probe's version", err)
		}
		if got := r.stages()["AWSPENDING"]; got != token {
			t.Fatalf("AWSPENDING is on %q, want the probe's version %s", got, token)
		}
		before := r.stages()
		sa, err := r.step(lambdafn.StepTest, token)
		if !maps.Equal(r.stages(), before) {
			t.Errorf("testSecret of the probe moved labels: %v, were %v", r.stages(), before)
		}
		return sa, err
	}

	// The first deployment: no token yet.
	if _, err := probe("11111111-2222-4333-8444-555555555555"); err != nil {
		t.Fatalf("testSecret of Secrets Manager's probe before the first token: %v", err)
	}
	// Later (a stack update that changes the schedule): the probe copies the stored token.
	if _, err := r.invoke(`{"action":"scheduled"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := probe("66666666-7777-4888-8999-aaaaaaaaaaaa"); err != nil {
		t.Fatalf("testSecret of Secrets Manager's probe of a stored token: %v", err)
	}
	if n := r.requests(); n != 1 {
		t.Fatalf("Clear requests = %d, want 1 (the scheduled run's)", n)
	}
}

// TestCreateSecretRefusesASharedClientSecret: createSecret goes through the same guard as every
// other rotation. Client b's client secret id holds client a's client secret (the configuration
// cannot see it: the ids and names differ), so each request for one would revoke the other's token;
// Secrets Manager's rotation of a's token secret must be refused without a request, as rotate is.
// Before, createSecret called the engine directly and asked Clear.
func TestCreateSecretRefusesASharedClientSecret(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ func(slots, limit int) *stepRig) {
		isMoto := strings.HasSuffix(t.Name(), "/moto")
		r := newStepRigWith(t, isMoto, 1, 48, func(w *rig.World, env map[string]string) {
			other := env[config.EnvClientSecretID] + "-b"
			doc, _ := json.Marshal(map[string]string{"client_secret": w.Secrets[0]})
			w.CreateSecret(other, string(doc))
			file := filepath.Join(t.TempDir(), "clients.yaml")
			yaml := fmt.Sprintf("clients:\n  - name: a\n    client_secret_id: %s\n    token_secret_id: %s\n"+
				"  - name: b\n    client_secret_id: %s\n    token_secret_id: %s-b\n",
				env[config.EnvClientSecretID], w.TokenID, other, w.TokenID)
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			delete(env, config.EnvClientSecretID)
			delete(env, config.EnvTokenSecretID)
			env[config.EnvConfig] = file
		})
		_, err := r.step(lambdafn.StepCreate, rotationToken)
		var shared *rotation.SharedSecretError
		if !errors.As(err, &shared) {
			t.Fatalf("createSecret with a shared client secret: %v, want a *rotation.SharedSecretError", err)
		}
		if n := r.requests(); n != 0 {
			t.Fatalf("%d request(s) to Clear with a shared client secret", n)
		}
		if v, ok := r.stages()[lambdafn.PendingStage]; ok {
			t.Errorf("AWSPENDING is on version %s after a refused createSecret", v)
		}
	})
}

// testSecret fails a version whose token has expired (a rotation left pending past the token's
// life): Secrets Manager would otherwise finish a rotation to a dead token.
func TestTestSecretFailsAnExpiredToken(t *testing.T) {
	eachBackend(t, func(t *testing.T, newRig func(slots, limit int) *stepRig) {
		r := newRig(1, 48)
		r.mustStep(lambdafn.StepCreate, rotationToken)
		r.mustStep(lambdafn.StepTest, rotationToken)
		r.clock.Advance(time.Hour) // the rig's tokens live an hour
		var se *lambdafn.StepError
		if _, err := r.step(lambdafn.StepTest, rotationToken); !errors.As(err, &se) || !strings.Contains(err.Error(), "expired at") {
			t.Fatalf("testSecret of an expired token: %v", err)
		}
	})
}

// A run that finds the client degraded (one of its two API clients blocked) says so in the log even
// when it rotates nothing: the engine warns only when it rotates, and a degraded client may go
// hours without one while every rotation would revoke the token in use.
func TestADegradedClientIsWarnedOfOnEveryRun(t *testing.T) {
	r := newStepRig(t, false, 2, 48)
	if _, err := r.invoke(`{}`); err != nil { // API client 1
		t.Fatal(err)
	}
	r.emu.Inject(emulator.Fault{Status: 401})
	_, _ = r.invoke(`{"action":"rotate","force":true}`) // API client 2, refused: blocked
	const warning = "degraded: only one of the client's two API clients can be asked"
	before := strings.Count(r.w.Logs.String(), warning)
	for range 2 {
		ans, err := r.invoke(`{}`)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, ans.(lambdafn.RotateAnswer).Results, rotation.NotDue)
	}
	if n := strings.Count(r.w.Logs.String(), warning) - before; n != 2 {
		t.Fatalf("%d degraded warnings in two runs that rotated nothing, want 2:\n%s", n, r.w.Logs.String())
	}
}
