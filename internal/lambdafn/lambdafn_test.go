package lambdafn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// client is one Clear API client of a fixture: a rig world (its secret in the emulator and in
// Secrets Manager, its own Clear), and the token secret the function keeps fresh.
type client struct {
	name, secret, secretID, tokenID string
	w                               *rig.World
}

type fixture struct {
	t       *testing.T
	clock   *fake.Clock
	emu     *emulator.Server // the first client's Clear; with one client, the only one
	logs    *proctest.Buffer
	metrics *proctest.Buffer
	clients []client
	h       *lambdafn.Handler
	seq     int
	start   time.Time
}

// newFixture deploys the function the way template.yaml does, on rig worlds on the wire (one per
// client, sharing moto, the clock and the leak scan): the client secrets in Secrets Manager,
// token secrets created holding "{}", configuration from the environment contract. With names,
// it configures those clients through a YAML file instead.
func newFixture(t *testing.T, lifetime time.Duration, names ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)), metrics: &proctest.Buffer{}}
	f.start = f.clock.Now()
	single := len(names) == 0
	if single {
		names = []string{config.DefaultClientName}
	}
	var first *rig.World
	for _, name := range names {
		w := rig.New(t, rig.Options{Clock: f.clock, Lifetime: lifetime, Name: name, Share: first})
		if first == nil {
			first = w
		}
		c := client{name: name, secret: w.Secrets[0], secretID: w.StoreClientSecrets()[0], tokenID: w.TokenID, w: w}
		w.CreateTokenSecret()
		f.clients = append(f.clients, c)
	}
	f.emu, f.logs = first.Emu, first.Logs
	first.RecordFrom(f.metrics)

	env := map[string]string{
		config.EnvBaseURL:   first.ClearURL,
		config.EnvLogLevel:  "debug",
		config.EnvLogFormat: "json",
	}
	var cfg *config.Config
	var err error
	if single {
		env[config.EnvClientSecretID] = f.clients[0].secretID
		env[config.EnvTokenSecretID] = f.clients[0].tokenID
		cfg, err = config.Load(lookup(env))
	} else {
		var y strings.Builder
		y.WriteString("clients:\n")
		for _, c := range f.clients {
			fmt.Fprintf(&y, "  - name: %s\n    base_url: %s\n    client_secret_id: %s\n    token_secret_id: %s\n", c.name, c.w.ClearURL, c.secretID, c.tokenID)
		}
		cfg, err = config.Parse([]byte(y.String()), "clients.yaml", lookup(env))
	}
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	// The function reaches Clear through the rig's recording client, so that the leak scan knows
	// every token Clear delivered, stored or not.
	a, err := app.New(cfg, first.API, first.ClearHTTPClient(), logging.New(f.logs, cfg.LogLevel, cfg.LogFormat))
	if err != nil {
		t.Fatal(err)
	}
	a.Engine.Now = f.clock.Now
	a.Engine.Rand = func() float64 { return 0.5 }
	a.Engine.WriteRetry = time.Millisecond
	f.h = lambdafn.New(a, f.metrics)
	t.Cleanup(f.checkOutput)
	return f
}

func lookup(env map[string]string) config.LookupFunc {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// invoke calls the handler the way aws-lambda-go does: with a Lambda context carrying a fresh
// request id, and a deadline.
func (f *fixture) invoke(payload string) (any, string, error) {
	f.t.Helper()
	f.seq++
	return f.invokeAs(fmt.Sprintf("req-%d-%s", f.seq, strings.ReplaceAll(f.t.Name(), "/", "-")), payload)
}

// invokeAs calls the handler with the Lambda request id id, as Lambda does when it retries an
// asynchronous invocation.
func (f *fixture) invokeAs(id, payload string) (any, string, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: id})
	ans, err := f.h.Handle(ctx, json.RawMessage(payload))
	return ans, id, err
}

// rotated invokes and expects a RotateAnswer (or, for a revoke, a RevokeAnswer).
func (f *fixture) rotated(payload string) ([]rotation.Result, string) {
	f.t.Helper()
	ans, id, err := f.invoke(payload)
	if err != nil {
		f.t.Fatalf("%s: %v", payload, err)
	}
	switch a := ans.(type) {
	case lambdafn.RotateAnswer:
		return a.Results, id
	case lambdafn.RevokeAnswer:
		if len(a.MayBeLive) != 0 {
			f.t.Fatalf("%s: a revoke answered success with API clients possibly live: %+v", payload, a.MayBeLive)
		}
		return a.Results, id
	}
	f.t.Fatalf("%s answered %T, want RotateAnswer or RevokeAnswer", payload, ans)
	return nil, id
}

func (f *fixture) token(c client) string {
	f.t.Helper()
	tok, _, ok := c.w.Current()
	if !ok {
		return ""
	}
	return tok.AccessToken.Reveal()
}

// checkOutput fails the test if a log line is not JSON. (The rig's leak scan checks the logs and
// the metrics for every client secret and token.)
func (f *fixture) checkOutput() {
	for _, line := range lines(f.logs.String()) {
		if !json.Valid([]byte(line)) {
			f.t.Errorf("log line is not JSON: %s", line)
		}
	}
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// logsOf returns the decoded log records of one request.
func (f *fixture) logsOf(requestID string) []map[string]any {
	f.t.Helper()
	var out []map[string]any
	for _, l := range lines(f.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			f.t.Fatalf("log line is not JSON: %s", l)
		}
		if rec["request_id"] == requestID {
			out = append(out, rec)
		}
	}
	return out
}

// emfLine is a decoded Embedded Metric Format line.
type emfLine map[string]any

// emfLines decodes and validates every EMF line written so far: the structure CloudWatch needs to
// extract metrics, and a value for every metric declared.
func (f *fixture) emfLines() []emfLine {
	f.t.Helper()
	var out []emfLine
	for _, l := range lines(f.metrics.String()) {
		var m emfLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			f.t.Fatalf("EMF line is not JSON: %s", l)
		}
		var meta struct {
			Timestamp         *int64 `json:"Timestamp"`
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		raw, _ := json.Marshal(m["_aws"])
		if err := json.Unmarshal(raw, &meta); err != nil {
			f.t.Fatalf("EMF _aws: %v in %s", err, l)
		}
		if meta.Timestamp == nil || *meta.Timestamp < f.start.UnixMilli() || *meta.Timestamp > f.clock.Now().UnixMilli() {
			f.t.Errorf("EMF Timestamp = %v, want the clock's time of the run (epoch ms)", meta.Timestamp)
		}
		if len(meta.CloudWatchMetrics) != 1 {
			f.t.Fatalf("EMF has %d directives, want 1: %s", len(meta.CloudWatchMetrics), l)
		}
		d := meta.CloudWatchMetrics[0]
		if d.Namespace != "ClearRotator" || !slices.EqualFunc(d.Dimensions, [][]string{{"Client"}}, slices.Equal) {
			f.t.Errorf("EMF directive %+v, want namespace ClearRotator and dimensions [[Client]]", d)
		}
		if _, ok := m["Client"].(string); !ok {
			f.t.Errorf("EMF line has no Client dimension value: %s", l)
		}
		for _, metric := range d.Metrics {
			if _, ok := m[metric.Name].(float64); !ok {
				f.t.Errorf("EMF metric %s has no numeric value: %s", metric.Name, l)
			}
			if metric.Unit != "Count" && metric.Unit != "Seconds" {
				f.t.Errorf("EMF metric %s has unit %q", metric.Name, metric.Unit)
			}
		}
		m["_metrics"] = names(d.Metrics)
		out = append(out, m)
	}
	return out
}

func names(ms []struct{ Name, Unit string }) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

func (m emfLine) has(metric string) bool { return slices.Contains(m["_metrics"].([]string), metric) }

func (m emfLine) num(metric string) float64 {
	v, _ := m[metric].(float64)
	return v
}

// outcomeCounts checks that the line counts exactly its outcome.
func (m emfLine) checkOutcome(t *testing.T, want rotation.Outcome) {
	t.Helper()
	for _, o := range rotation.Outcomes {
		wantN := 0.0
		if o == want {
			wantN = 1
		}
		name := lambdafn.OutcomeMetric(o)
		if !m.has(name) || m.num(name) != wantN {
			t.Errorf("EMF %s = %v, want %v (line outcome %v)", name, m[name], wantN, m["Outcome"])
		}
	}
}

func expect(t *testing.T, results []rotation.Result, want ...rotation.Outcome) {
	t.Helper()
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(results), len(want), results)
	}
	for i, r := range results {
		if r.Outcome != want[i] {
			t.Fatalf("client %s: outcome %q (%s), want %q", r.Client, r.Outcome, r.Message, want[i])
		}
	}
}

func TestScheduledRotatesDueTokenThenDoesNothing(t *testing.T) {
	f := newFixture(t, time.Hour)
	c := f.clients[0]

	res, id := f.rotated(eventBridgeScheduled)
	expect(t, res, rotation.Rotated)
	if n := f.emu.Requests(c.secret); n != 1 {
		t.Fatalf("Clear requests = %d, want 1", n)
	}
	first := f.token(c)
	if !f.emu.Live(first) {
		t.Fatal("the stored token is not live")
	}

	// The scheduler's input, and the empty object, each find the token fresh.
	for _, payload := range []string{`{"action":"scheduled"}`, `{}`} {
		res, _ := f.rotated(payload)
		expect(t, res, rotation.NotDue)
	}
	if n := f.emu.Requests(c.secret); n != 1 {
		t.Fatalf("Clear requests = %d after runs with nothing due, want 1", n)
	}
	if f.token(c) != first {
		t.Fatal("a run with nothing due replaced the token")
	}

	// Past the renewal point (a third of the lifetime before expiry) the next run rotates.
	f.clock.Advance(41 * time.Minute)
	res, _ = f.rotated(eventBridgeScheduled)
	expect(t, res, rotation.Rotated)
	if f.emu.Live(first) || !f.emu.Live(f.token(c)) {
		t.Fatal("after the second rotation the new token should be live and the first revoked")
	}

	ems := f.emfLines()
	if len(ems) != 4 {
		t.Fatalf("%d EMF lines, want one per run: %s", len(ems), f.metrics.String())
	}
	for i, want := range []rotation.Outcome{rotation.Rotated, rotation.NotDue, rotation.NotDue, rotation.Rotated} {
		m := ems[i]
		m.checkOutcome(t, want)
		if m["Client"] != "default" {
			t.Errorf("EMF Client = %v", m["Client"])
		}
		// Every run reports the day's count, not-due runs included, so that the budget alarm sees
		// a value on every run instead of flapping between a value and missing data.
		if wantReq := float64(1 + i/3); !m.has("RequestsToday") || m.num("RequestsToday") != wantReq {
			t.Errorf("EMF line %d RequestsToday = %v, want %v", i, m["RequestsToday"], wantReq)
		}
		for _, name := range []string{"Degraded", "TokenLost"} {
			if !m.has(name) || m.num(name) != 0 {
				t.Errorf("EMF line %d %s = %v, want 0", i, name, m[name])
			}
		}
		if m.num("DailyLimit") != 48 {
			t.Errorf("EMF DailyLimit = %v, want 48", m["DailyLimit"])
		}
		if !m.has("TokenSecondsRemaining") {
			t.Errorf("EMF line %d has no TokenSecondsRemaining", i)
		}
	}
	if got := ems[0].num("TokenSecondsRemaining"); got != 3600 {
		t.Errorf("TokenSecondsRemaining right after rotation = %v, want 3600", got)
	}
	if ems[0]["request_id"] != id {
		t.Errorf("EMF request_id = %v, want %s", ems[0]["request_id"], id)
	}

	// Every record of the first invocation, the engine's included, carries its request id.
	recs := f.logsOf(id)
	if !slices.ContainsFunc(recs, func(r map[string]any) bool { return r["msg"] == "rotated the token" }) {
		t.Errorf("the engine's log line lacks the request id; records of %s: %v", id, recs)
	}
}

func TestManualForcedRotation(t *testing.T) {
	f := newFixture(t, time.Hour)
	c := f.clients[0]
	res, _ := f.rotated(`{"action":"scheduled"}`)
	expect(t, res, rotation.Rotated)
	first := f.token(c)

	// Not due: an unforced manual rotation does nothing.
	res, _ = f.rotated(`{"action":"rotate","client":"default"}`)
	expect(t, res, rotation.NotDue)

	// Forced, right after the last rotation: a new token although the old one is fresh.
	ans, id, err := f.invoke(`{"action":"rotate","force":true}`)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ans.(lambdafn.RotateAnswer).Results, rotation.Rotated)
	second := f.token(c)
	if second == first || f.emu.Live(first) || !f.emu.Live(second) {
		t.Fatal("a forced rotation should store a new live token and revoke the old one")
	}

	// Lambda retries a failed asynchronous invocation with the same request id: the retry is
	// recognised as a duplicate and asks Clear for nothing.
	ans, _, err = f.invokeAs(id, `{"action":"rotate","force":true}`)
	if err != nil {
		t.Fatal(err)
	}
	res = ans.(lambdafn.RotateAnswer).Results
	expect(t, res, rotation.Duplicate)
	if !strings.Contains(res[0].Message, "already acted on") || f.token(c) != second {
		t.Errorf("a retried invocation: message %q, token changed %v", res[0].Message, f.token(c) != second)
	}

	// Another forced rotation, a new invocation, forces again: forcing always forces.
	res, _ = f.rotated(`{"action":"rotate","force":true,"client":"default"}`)
	expect(t, res, rotation.Rotated)
	third := f.token(c)

	// An event's own request_id identifies it across invocations: the same request_id delivered
	// twice is answered once.
	res, _ = f.rotated(`{"action":"rotate","force":true,"request_id":"ops-ticket-42"}`)
	expect(t, res, rotation.Rotated)
	fourth := f.token(c)
	res, _ = f.rotated(`{"action":"rotate","force":true,"request_id":"ops-ticket-42"}`)
	expect(t, res, rotation.Duplicate)
	if f.token(c) != fourth || fourth == third {
		t.Fatal("a duplicated request_id replaced the token")
	}
	if n := f.emu.Requests(c.secret); n != 4 {
		t.Fatalf("Clear requests = %d, want 4", n)
	}
	ems := f.emfLines()
	ems[len(ems)-1].checkOutcome(t, rotation.Duplicate)
}

func TestRotateUnknownClientFails(t *testing.T) {
	f := newFixture(t, time.Hour)
	_, _, err := f.invoke(`{"action":"rotate","client":"nope","force":true}`)
	var ce *lambdafn.ClientError
	if !errors.As(err, &ce) || ce.Name != "nope" {
		t.Fatalf("error = %v, want a *ClientError for nope", err)
	}
	if !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "default") {
		t.Errorf("error %q should name the unknown client and the configured ones", err)
	}
	if n := f.emu.Stats().Requests; n != 0 {
		t.Fatalf("Clear requests = %d, want 0", n)
	}
	if f.metrics.String() != "" {
		t.Errorf("metrics written for a refused event: %s", f.metrics.String())
	}
}

func TestStatusAnswersTheStatusDocument(t *testing.T) {
	f := newFixture(t, time.Hour)

	// Before any rotation: no token, nothing used.
	ans, _, err := f.invoke(`{"action":"status"}`)
	if err != nil {
		t.Fatal(err)
	}
	doc := marshal(t, ans)
	checkKeys(t, doc)
	cl := doc["clients"].([]any)[0].(map[string]any)
	if cl["name"] != "default" || cl["valid_till"] != nil || cl["requests_today"] != 0.0 || cl["daily_limit"] != 48.0 {
		t.Errorf("status before rotating = %v", cl)
	}

	f.rotated(`{}`)
	ans, _, err = f.invoke(`{"action":"status","client":"default"}`)
	if err != nil {
		t.Fatal(err)
	}
	doc = marshal(t, ans)
	checkKeys(t, doc)
	cl = doc["clients"].([]any)[0].(map[string]any)
	want := f.clock.Now().Add(time.Hour).Format(time.RFC3339)
	if cl["valid_till"] != want || cl["requests_today"] != 1.0 || cl["blocked_until"] != nil || cl["last_error"] != nil {
		t.Errorf("status after rotating = %v, want valid_till %s and one request", cl, want)
	}
	if n := f.emu.Requests(f.clients[0].secret); n != 1 {
		t.Fatalf("Clear requests = %d, want 1: status must not call Clear", n)
	}
	if strings.Count(f.metrics.String(), "\n") != 1 {
		t.Errorf("status wrote metrics: %s", f.metrics.String())
	}
}

func marshal(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// statusKeys are the keys of a client's status, as `rotator status --json` prints them.
var statusKeys = []string{"api_client", "api_clients", "blocked_reason", "blocked_until", "consumer_reread_interval", "daily_limit",
	"degraded", "in_flight", "issued_at", "last_error", "name", "renew_at", "renewals_per_day", "requests_today", "revoked_outside", "state", "token_lost", "valid_till"}

// checkKeys checks the status document's keys: the operator contract of `rotator status --json`.
func checkKeys(t *testing.T, doc map[string]any) {
	t.Helper()
	if got := slices.Sorted(maps.Keys(doc)); !slices.Equal(got, []string{"clients"}) {
		t.Fatalf("status document keys = %v, want [clients]", got)
	}
	for _, c := range doc["clients"].([]any) {
		got := slices.Sorted(maps.Keys(c.(map[string]any)))
		if !slices.Equal(got, statusKeys) {
			t.Errorf("client keys = %v, want %v", got, statusKeys)
		}
	}
}

func TestUnknownEventFails(t *testing.T) {
	f := newFixture(t, time.Hour)
	for _, payload := range []string{`{"action":"rotate","forse":true}`, `{"detail-type":"Object Created","source":"aws.s3"}`, `[1]`} {
		_, id, err := f.invoke(payload)
		var ee *lambdafn.EventError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: error = %v, want an *EventError", payload, err)
		}
		if len(f.logsOf(id)) == 0 {
			t.Errorf("%s: the refusal was not logged with the request id", payload)
		}
	}
	if n := f.emu.Stats().Requests; n != 0 {
		t.Fatalf("Clear requests = %d, want 0", n)
	}
}

func TestRefusedClientIsAnErrorAndKeepsItsBudget(t *testing.T) {
	f := newFixture(t, time.Hour)
	c := f.clients[0]
	f.emu.SetSecretActive(c.secret, false)

	_, id, err := f.invoke(eventBridgeScheduled)
	var re *lambdafn.RotationError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want a *RotationError", err)
	}
	if len(re.Failed) != 1 || re.Failed[0].Outcome != rotation.Failed || !strings.Contains(err.Error(), "default: failed: ") {
		t.Fatalf("error %q should list the client and its outcome", err)
	}

	// The next run is blocked by the recorded refusal: still an error, and no Clear request.
	_, _, err = f.invoke(`{"action":"scheduled"}`)
	if !errors.As(err, &re) || re.Failed[0].Outcome != rotation.Blocked || !strings.Contains(err.Error(), "default: blocked: ") {
		t.Fatalf("second run: error = %v, want the client blocked", err)
	}
	if n := f.emu.Requests(c.secret); n != 1 {
		t.Fatalf("Clear requests = %d, want 1", n)
	}

	ems := f.emfLines()
	if len(ems) != 2 {
		t.Fatalf("%d EMF lines, want 2", len(ems))
	}
	ems[0].checkOutcome(t, rotation.Failed)
	ems[1].checkOutcome(t, rotation.Blocked)
	for _, m := range ems {
		if m.num("RequestsToday") != 1 {
			t.Errorf("RequestsToday = %v, want 1", m["RequestsToday"])
		}
		if m.has("TokenSecondsRemaining") {
			t.Errorf("TokenSecondsRemaining reported without a token: %v", m["TokenSecondsRemaining"])
		}
	}
	if !slices.ContainsFunc(f.logsOf(id), func(r map[string]any) bool { return r["level"] == "ERROR" }) {
		t.Error("the failure was not logged at error level with the request id")
	}
}

func TestOneFailingClientAmongSeveral(t *testing.T) {
	f := newFixture(t, time.Hour, "erp", "payroll", "books")
	f.clients[1].w.Emu.SetSecretActive(f.clients[1].secret, false)

	_, _, err := f.invoke(`{"action":"scheduled"}`)
	var re *lambdafn.RotationError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want a *RotationError", err)
	}
	if re.Total != 3 || len(re.Failed) != 1 || re.Failed[0].Client != "payroll" {
		t.Fatalf("error %q: want only payroll failed of 3", err)
	}
	if !strings.HasPrefix(err.Error(), "1 of 3 client(s) not rotated as asked: payroll: failed: ") {
		t.Errorf("error message %q", err)
	}
	for _, i := range []int{0, 2} {
		if tok := f.token(f.clients[i]); tok == "" || !f.clients[i].w.Emu.Live(tok) {
			t.Errorf("client %s was not rotated alongside the failing one", f.clients[i].name)
		}
	}
	got := map[string]any{}
	for _, m := range f.emfLines() {
		got[m["Client"].(string)] = m["Outcome"]
	}
	want := map[string]any{"erp": "rotated", "payroll": "failed", "books": "rotated"}
	if !maps.Equal(got, want) {
		t.Errorf("EMF outcomes by client = %v, want %v", got, want)
	}

	// One client by name leaves the others alone.
	f.clock.Advance(2 * time.Minute)
	res, _ := f.rotated(`{"action":"rotate","client":"books","force":true}`)
	expect(t, res, rotation.Rotated)
	if res[0].Client != "books" || f.emu.Requests(f.clients[0].secret) != 1 {
		t.Fatal("a rotation of one client touched another")
	}
}

func TestNeverExpiringTokenHasNoRemainingTime(t *testing.T) {
	f := newFixture(t, 0)
	res, _ := f.rotated(`{}`)
	expect(t, res, rotation.Rotated)
	res, _ = f.rotated(`{}`)
	expect(t, res, rotation.NotDue)
	for _, m := range f.emfLines() {
		if m.has("TokenSecondsRemaining") {
			t.Errorf("a never-expiring token reported TokenSecondsRemaining %v", m["TokenSecondsRemaining"])
		}
	}
	if ems := f.emfLines(); len(ems) != 2 || !ems[0].has("RequestsToday") {
		t.Error("the rotating run did not report RequestsToday")
	}
}

func TestUnconfiguredFailsEveryInvocation(t *testing.T) {
	logs := &proctest.Buffer{}
	cause := errors.New("CLEAR_BASE_URL: is not set")
	h := lambdafn.Unconfigured(cause, logging.New(logs, 0, logging.FormatJSON))
	for range 2 {
		ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-unconfigured"})
		_, err := h.Handle(ctx, json.RawMessage(`{"action":"status"}`))
		var ie *lambdafn.InitError
		if !errors.As(err, &ie) || !errors.Is(err, cause) || !strings.Contains(err.Error(), "CLEAR_BASE_URL") {
			t.Fatalf("error = %v, want an *InitError naming the problem", err)
		}
	}
	if n := strings.Count(logs.String(), `"request_id":"req-unconfigured"`); n != 2 {
		t.Errorf("%d logged refusals with the request id, want 2: %s", n, logs.String())
	}
}

func TestInvokeTakesRawBytes(t *testing.T) {
	f := newFixture(t, time.Hour)
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-raw"})

	// An empty payload is the default action; the answer is the JSON document.
	b, err := f.h.Invoke(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Results) != 1 || doc.Results[0]["outcome"] != "rotated" || doc.Results[0]["client"] != "default" {
		t.Fatalf("answer %s (%v), want one rotated result", b, err)
	}

	_, err = f.h.Invoke(ctx, []byte("rotate please"))
	var ee *lambdafn.EventError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("error = %v, want an *EventError about the payload", err)
	}
}

func TestRevokeKillsTheStoredTokenOnce(t *testing.T) {
	f := newFixture(t, time.Hour)
	c := f.clients[0]
	res, _ := f.rotated(`{}`)
	expect(t, res, rotation.Rotated)
	first := f.token(c)

	res, _ = f.rotated(`{"action":"revoke","client":"default","request_id":"incident-9"}`)
	expect(t, res, rotation.Rotated)
	if f.emu.Live(first) || !f.emu.Live(f.token(c)) {
		t.Fatal("revoke should leave the stored token dead and a new one live")
	}
	// The same incident event delivered again asks Clear nothing.
	res, _ = f.rotated(`{"action":"revoke","client":"default","request_id":"incident-9"}`)
	expect(t, res, rotation.Duplicate)
	if n := f.emu.Requests(c.secret); n != 2 {
		t.Fatalf("Clear requests = %d, want 2", n)
	}

	// A revoke that cannot ask Clear is an error: the stored token may still be live.
	f.emu.SetSecretActive(c.secret, false)
	_, _, err := f.invoke(`{"action":"revoke","client":"default"}`)
	var re *lambdafn.RevokeError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "1 of 1 client(s) not revoked") {
		t.Fatalf("error = %v, want a *RevokeError", err)
	}
	if _, _, err := f.invoke(`{"action":"revoke","client":"nope"}`); err == nil {
		t.Fatal("a revoke of an unknown client succeeded")
	}
}

// TestStatusKeepsTheRowOfAClientItCannotRead: with one client's token secret unreadable, the status
// answer still has a row for it, state unknown with the failure as its last error, beside the
// readable client's row. The function used to fail the whole invocation, dropping every row
// (issue 16 item 2: one status behaviour, the CLI's).
func TestStatusKeepsTheRowOfAClientItCannotRead(t *testing.T) {
	f := newFixture(t, time.Hour, "erp-a", "erp-b")
	unreadable := f.clients[1].tokenID
	f.clients[0].w.API.Fail(func(op string, in any) error {
		if g, ok := in.(*secretsmanager.GetSecretValueInput); ok && aws.ToString(g.SecretId) == unreadable {
			return errors.New("injected: the token secret cannot be read")
		}
		return nil
	})
	ans, _, err := f.invoke(`{"action":"status"}`)
	if err != nil {
		t.Fatalf("status failed: %v", err)
	}
	doc := marshal(t, ans)
	checkKeys(t, doc)
	rows := doc["clients"].([]any)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2: %v", len(rows), rows)
	}
	a, b := rows[0].(map[string]any), rows[1].(map[string]any)
	if a["name"] != "erp-a" || a["state"] == "unknown" {
		t.Errorf("readable client: %v", a)
	}
	if b["name"] != "erp-b" || b["state"] != "unknown" || b["requests_today"] != nil || !strings.Contains(fmt.Sprint(b["last_error"]), "cannot be read") {
		t.Errorf("unreadable client: %v, want state unknown, requests_today null and the failure as last_error", b)
	}
	if !strings.Contains(f.logs.String(), "could not read every client's status") {
		t.Error("the failure was not logged")
	}
}

// EventError promises that a refusal never quotes the payload's values, which could be anything a
// caller pasted: here the client secret itself, in each field whose value a refusal used to quote
// (the action, a rotation step's Step, an EventBridge event's detail-type and source). Neither the
// answer nor the log (the rig's leak scan, at cleanup) may hold it; the answer still says what to
// send instead.
func TestRefusedEventNeverQuotesItsValues(t *testing.T) {
	f := newFixture(t, time.Hour)
	s := f.clients[0].secret
	for _, tc := range []struct{ payload, says string }{
		{`{"action":"` + s + `"}`, `"action" is not one of`},
		{`{"SecretId":"tok","ClientRequestToken":"` + token32 + `","Step":"` + s + `"}`, `"Step" is not a Secrets Manager rotation step`},
		{`{"detail-type":"` + s + `","source":"aws.events"}`, "not a scheduled event"},
		{`{"detail-type":"Scheduled Event","source":"` + s + `"}`, "not a scheduled event"},
	} {
		_, _, err := f.invoke(tc.payload)
		var ee *lambdafn.EventError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: error = %v, want an *EventError", tc.payload, err)
		}
		if strings.Contains(err.Error(), s[:16]) {
			t.Errorf("the refusal of %s quotes the value: %v", tc.payload, err)
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("the refusal of %s does not say %q: %v", tc.payload, tc.says, err)
		}
	}
	// Nor a key that cannot be a field's name, nor a secret id that is not a secret's ARN: a value
	// pasted into the wrong place (the Lambda audit's fifth finding). The leak scan of the logs runs
	// at the end of the test.
	for _, payload := range []string{
		`{"` + s + `":1}`,
		`{"action":"status","` + s + `":1}`,
		`{"SecretId":"` + s + `","ClientRequestToken":"` + token32 + `","Step":"createSecret"}`,
	} {
		if _, _, err := f.invoke(payload); err == nil || strings.Contains(err.Error(), s[:16]) {
			t.Errorf("the refusal of %s: %v, want an error that does not quote the value", payload, err)
		}
	}
	// A near miss still gets its "did you mean", which names a field or an action, not the value.
	if _, _, err := f.invoke(`{"action":"status","clinet":"a"}`); err == nil || !strings.Contains(err.Error(), `unknown field "clinet"`) {
		t.Errorf(`{"action":"status","clinet":"a"}: %v, want the key named`, err)
	}
	if _, _, err := f.invoke(`{"action":"rotat"}`); err == nil || !strings.Contains(err.Error(), `did you mean "rotate"`) {
		t.Errorf(`{"action":"rotat"}: %v, want a "did you mean "rotate""`, err)
	}
	if n := f.emu.Stats().Requests; n != 0 {
		t.Fatalf("Clear requests = %d, want 0", n)
	}
}
