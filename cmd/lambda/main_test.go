package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// TestMain runs four tests at a time unless -parallel says otherwise: each runs its own bootstrap
// and mostly waits on it, moto and the emulator in real time (two of them through a Clear backoff,
// 3-6 s in their test build), so the default (GOMAXPROCS, two here) queued the short ones behind the long waits.
// Not all at once: eleven bootstraps on one moto_server, on a loaded two-core machine, have made
// its answers outlast the store's timeout.
func TestMain(m *testing.M) { rig.Main(m, 4) }

// reply is what the function posted for one invocation.
type reply struct {
	id   string
	kind string // "response" or "error"
	body []byte
	// errorType is the Lambda-Runtime-Function-Error-Type header of an error.
	errorType string
}

// runtimeAPI stands in for the Lambda Runtime API (2018-06-01), the only interface between a
// provided.al2023 bootstrap and Lambda: the bootstrap long-polls /next for an invocation and posts
// its answer or error. Serving it from the test runs the real executable the way Lambda does,
// without Docker or the runtime interface emulator.
type runtimeAPI struct {
	srv     *httptest.Server
	events  chan [2]string // request id, payload
	replies chan reply
	closing chan struct{}

	mu        sync.Mutex
	firstNext time.Time
	initErr   []byte
}

func newRuntimeAPI(t *testing.T) *runtimeAPI {
	rt := &runtimeAPI{events: make(chan [2]string, 8), replies: make(chan reply, 8), closing: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", rt.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		rt.post(w, r, "response")
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		rt.post(w, r, "error")
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rt.mu.Lock()
		rt.initErr = body
		rt.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	rt.srv = httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(func() {
		close(rt.closing)
		rt.srv.Close()
	})
	return rt
}

// addr is the value of AWS_LAMBDA_RUNTIME_API: host and port, without a scheme.
func (rt *runtimeAPI) addr() string { return strings.TrimPrefix(rt.srv.URL, "http://") }

func (rt *runtimeAPI) next(w http.ResponseWriter, r *http.Request) {
	rt.mu.Lock()
	if rt.firstNext.IsZero() {
		rt.firstNext = time.Now()
	}
	rt.mu.Unlock()
	select {
	case ev := <-rt.events:
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", ev[0])
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(60*time.Second).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:clear-rotator")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
		h.Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, ev[1])
	case <-r.Context().Done():
	case <-rt.closing:
		w.WriteHeader(http.StatusGone)
	}
}

func (rt *runtimeAPI) post(w http.ResponseWriter, r *http.Request, kind string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rt.replies <- reply{id: r.PathValue("id"), kind: kind, body: body, errorType: r.Header.Get("Lambda-Runtime-Function-Error-Type")}
	w.WriteHeader(http.StatusAccepted)
}

// function is a running bootstrap.
type function struct {
	t       *testing.T
	rt      *runtimeAPI
	p       *rig.Proc
	started time.Time
	seq     int
}

// bootstrap builds the function as `make lambda` does, for this machine.
func bootstrap(t *testing.T) string {
	return proctest.Build(t, "./cmd/lambda", "", "-tags", "lambda.norpc")
}

// shortBackoffBootstrap builds the function as bootstrap does, but for a first backoff of 3-6 s
// instead of 15-30 s (timing.TestBackoffFlag), for the tests that wait one out in real time.
func shortBackoffBootstrap(t *testing.T) string {
	return proctest.Build(t, "./cmd/lambda", "", "-tags", "lambda.norpc", "-ldflags="+timing.TestBackoffFlag)
}

// start runs the bootstrap serving w with the environment Lambda gives a provided.al2023
// function, plus env (which overrides the world's settings).
func start(t *testing.T, w *rig.World, env ...string) *function {
	t.Helper()
	return startBin(t, w, bootstrap(t), env...)
}

// startBin is start with the executable bin.
func startBin(t *testing.T, w *rig.World, bin string, env ...string) *function {
	t.Helper()
	f := &function{t: t, rt: newRuntimeAPI(t)}
	env = append([]string{
		"AWS_LAMBDA_RUNTIME_API=" + f.rt.addr(),
		"AWS_LAMBDA_FUNCTION_NAME=clear-rotator",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/clear-rotator",
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/11/21/[$LATEST]0123456789abcdef0123456789abcdef",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"_HANDLER=bootstrap",
		"TZ=:UTC",
		"ROTATOR_HTTP_ADDR=", // a function has no ops listener: nothing to wait for
	}, env...)
	f.started = time.Now()
	f.p = w.Start(bin, env)
	t.Cleanup(func() {
		f.p.Kill()
		if t.Failed() {
			t.Logf("bootstrap output:\n%s", f.p.Output())
		}
	})
	return f
}

// invoke queues payload and waits for the function's answer.
func (f *function) invoke(payload string) reply {
	f.t.Helper()
	f.seq++
	return f.invokeAs(fmt.Sprintf("8f1c7a52-0000-4000-8000-%012d", f.seq), payload)
}

// invokeAs queues payload with the request id id, as Lambda does when it retries an asynchronous
// invocation, and waits for the answer.
func (f *function) invokeAs(id, payload string) reply {
	f.t.Helper()
	f.rt.events <- [2]string{id, payload}
	select {
	case r := <-f.rt.replies:
		if r.id != id {
			f.t.Fatalf("answer for %s, want %s", r.id, id)
		}
		return r
	case <-f.p.Done():
		f.t.Fatalf("the bootstrap exited during invocation %s:\n%s", id, f.p.Output())
	case <-time.After(90 * time.Second):
		f.t.Fatalf("no answer to invocation %s within 90s", id)
	}
	return reply{}
}

// ok invokes and expects a response, decoded into a generic document.
func (f *function) ok(payload string) map[string]any {
	f.t.Helper()
	r := f.invoke(payload)
	if r.kind != "response" {
		f.t.Fatalf("%s: the function failed: %s", payload, r.body)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		f.t.Fatalf("%s: answer is not a JSON object: %s", payload, r.body)
	}
	return doc
}

// result returns the only result of a rotate answer.
func result(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	rs, _ := doc["results"].([]any)
	if len(rs) != 1 || len(doc) != 1 {
		t.Fatalf("answer %v, want {\"results\": [one result]}", doc)
	}
	return rs[0].(map[string]any)
}

func expectOutcome(t *testing.T, r map[string]any, want string) {
	t.Helper()
	if r["outcome"] != want {
		t.Fatalf("outcome %v (%v), want %s", r["outcome"], r["message"], want)
	}
}

// deployment is what template.yaml creates in moto, as a rig world on the wire, and the
// function's configuration for it beyond the world's own settings.
type deployment struct {
	*rig.World
	env []string
}

func deploy(t *testing.T) *deployment {
	t.Helper()
	return deployWith(t, 1)
}

// deployWith deploys with one or two API clients. The first one's secret is in a secret the
// function reads (CLEAR_CLIENT_SECRET_ID), as the template's ClientSecretArn parameter has it; the
// second one's is given literally in CLEAR_CLIENT_SECRET_2 (the world's setting), as the
// template's ClientSecretArn2 parameter does through the environment. The token secret holds "{}",
// as the template creates it.
func deployWith(t *testing.T, slots int) *deployment {
	t.Helper()
	d := &deployment{World: rig.New(t, rig.Options{Lifetime: time.Hour, APIClients: slots})}
	clientID := mototest.Name(t, "client")
	for id, value := range map[string]string{clientID: d.Secrets[0], d.TokenID: "{}"} {
		if _, err := d.SM.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(value)}); err != nil {
			t.Fatal(err)
		}
	}
	d.env = []string{"CLEAR_CLIENT_SECRET=", "CLEAR_CLIENT_SECRET_ID=" + clientID, "LOG_LEVEL=info"}
	return d
}

// start runs the bootstrap for the deployment.
func (d *deployment) start(t *testing.T) *function {
	t.Helper()
	return start(t, d.World, d.env...)
}

// startShortBackoff runs the bootstrap with the short first backoff (shortBackoffBootstrap) for
// the deployment.
func (d *deployment) startShortBackoff(t *testing.T) *function {
	t.Helper()
	return startBin(t, d.World, shortBackoffBootstrap(t), d.env...)
}

// token returns the access token in AWSCURRENT (which the rig's leak scan then looks for).
func (d *deployment) token() string {
	tok, _ := d.MustCurrent()
	return tok.AccessToken.Reveal()
}

func TestBootstrapUnderTheRuntimeAPI(t *testing.T) {
	t.Parallel()
	d := deploy(t)
	f := d.start(t)

	// 1. A scheduled event finds no token (the template creates the secret holding "{}") and
	// rotates.
	r := result(t, f.ok(`{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],"detail":{}}`))
	f.rt.mu.Lock()
	coldStart := f.rt.firstNext.Sub(f.started)
	f.rt.mu.Unlock()
	t.Logf("exec to the first /next request: %v", coldStart)
	expectOutcome(t, r, "rotated")
	first := d.token()
	if !d.Emu.Live(first) || d.Emu.Requests(d.Secrets[0]) != 1 {
		t.Fatalf("after the first run: token live %v, Clear requests %d; want a live token and 1 request", d.Emu.Live(first), d.Emu.Requests(d.Secrets[0]))
	}

	// 2. The next scheduled run (EventBridge Scheduler's input) has nothing to do, and asks Clear
	// nothing.
	r = result(t, f.ok(`{"action":"scheduled"}`))
	expectOutcome(t, r, "not_due")
	if n := d.Emu.Requests(d.Secrets[0]); n != 1 {
		t.Fatalf("Clear requests = %d after a run with nothing due, want 1", n)
	}

	// 3. A forced manual rotation replaces the fresh token...
	r = result(t, f.ok(`{"action":"rotate","force":true}`))
	expectOutcome(t, r, "rotated")
	second := d.token()
	if second == first || d.Emu.Live(first) || !d.Emu.Live(second) || d.Emu.Requests(d.Secrets[0]) != 2 {
		t.Fatal("the forced rotation should have revoked the first token for a new live one, with one more request")
	}
	// ...and Lambda's retry of that invocation (the same request id) costs Clear nothing.
	rr := f.invokeAs(fmt.Sprintf("8f1c7a52-0000-4000-8000-%012d", f.seq), `{"action":"rotate","force":true}`)
	if rr.kind != "response" {
		t.Fatalf("a retried invocation failed: %s", rr.body)
	}
	var retried map[string]any
	_ = json.Unmarshal(rr.body, &retried)
	r = result(t, retried)
	expectOutcome(t, r, "duplicate")
	if d.Emu.Requests(d.Secrets[0]) != 2 {
		t.Fatalf("a retried forced rotation: Clear requests %d, want 2", d.Emu.Requests(d.Secrets[0]))
	}

	// 4. Status answers the `rotator status --json` document.
	doc := f.ok(`{"action":"status"}`)
	if got := slices.Sorted(maps.Keys(doc)); !slices.Equal(got, []string{"clients"}) {
		t.Fatalf("status keys %v, want [clients]", got)
	}
	cl := doc["clients"].([]any)[0].(map[string]any)
	want := []string{"api_client", "api_clients", "blocked_reason", "blocked_until", "consumer_reread_interval", "daily_limit",
		"degraded", "in_flight", "issued_at", "last_error", "name", "renew_at", "renewals_per_day", "requests_today", "revoked_outside", "state", "token_lost", "valid_till"}
	if got := slices.Sorted(maps.Keys(cl)); !slices.Equal(got, want) {
		t.Fatalf("client keys %v, want %v", got, want)
	}
	if cl["name"] != "default" || cl["requests_today"] != 2.0 || cl["daily_limit"] != 48.0 || cl["valid_till"] == nil {
		t.Errorf("status %v", cl)
	}

	// 5. Clear refusing the client secret (401) reaches the Runtime API as a function error.
	d.Emu.SetSecretActive(d.Secrets[0], false)
	er := f.invoke(`{"action":"rotate","force":true}`)
	if er.kind != "error" {
		t.Fatalf("a 401 from Clear was answered as a %s: %s", er.kind, er.body)
	}
	var lerr struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	if err := json.Unmarshal(er.body, &lerr); err != nil {
		t.Fatalf("error body is not JSON: %s", er.body)
	}
	if lerr.Type != "RotationError" || !strings.Contains(lerr.Message, "default: failed: ") || !strings.Contains(lerr.Message, "401") {
		t.Fatalf("error %+v, want a RotationError naming the client, its outcome and the 401", lerr)
	}

	// A payload that is not even JSON is refused by the handler, naming the accepted events.
	if r := f.invoke(`rotate please`); r.kind != "error" || !strings.Contains(string(r.body), `"errorType":"EventError"`) ||
		!strings.Contains(string(r.body), `action`) {
		t.Fatalf("a non-JSON payload: %s %s", r.kind, r.body)
	}

	// The process lives on after failed invocations.
	if r := f.invoke(`{"action":"status"}`); r.kind != "response" {
		t.Fatalf("status after the failure: %s %s", r.kind, r.body)
	}
	f.rt.mu.Lock()
	if f.rt.initErr != nil {
		t.Errorf("init error posted: %s", f.rt.initErr)
	}
	f.rt.mu.Unlock()

	checkOutput(t, f)
}

// checkOutput checks what the function wrote: stdout is JSON lines only (logs and EMF), each
// invocation's log lines carry its request id, and EMF lines are well formed. (That no secret
// appears anywhere, the rig's leak scan checks.)
func checkOutput(t *testing.T, f *function) {
	t.Helper()
	ids := map[string]bool{}
	emf := 0
	for line := range strings.SplitSeq(strings.TrimSpace(f.p.Stdout()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stdout line is not JSON: %s", line)
			continue
		}
		if id, ok := rec["request_id"].(string); ok {
			ids[id] = true
		}
		if meta, ok := rec["_aws"].(map[string]any); ok {
			emf++
			dirs, _ := meta["CloudWatchMetrics"].([]any)
			if _, ok := meta["Timestamp"].(float64); !ok || len(dirs) != 1 || dirs[0].(map[string]any)["Namespace"] != "ClearRotator" {
				t.Errorf("malformed EMF line: %s", line)
			}
		}
	}
	for i := 1; i <= f.seq; i++ {
		if id := fmt.Sprintf("8f1c7a52-0000-4000-8000-%012d", i); !ids[id] {
			t.Errorf("no log line carries request id %s", id)
		}
	}
	// One line per rotating invocation: scheduled, scheduled, forced, retried, failed.
	if emf != 5 {
		t.Errorf("%d EMF lines, want 5", emf)
	}
}

func TestBootstrapWithoutConfigurationFailsEveryInvocation(t *testing.T) {
	t.Parallel()
	// No configuration: every CLEAR_* and ROTATOR_* setting of the world empty, which the
	// configuration reads as unset (as a template with a missing parameter leaves it).
	f := start(t, rig.New(t, rig.Options{}), "CLEAR_BASE_URL=", "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID=",
		"ROTATOR_DAILY_LIMIT=", "LOG_FORMAT=")
	for range 2 {
		r := f.invoke(`{}`)
		if r.kind != "error" {
			t.Fatalf("answered %s: %s", r.kind, r.body)
		}
		var lerr struct {
			Message string `json:"errorMessage"`
			Type    string `json:"errorType"`
		}
		_ = json.Unmarshal(r.body, &lerr)
		if lerr.Type != "InitError" || !strings.Contains(lerr.Message, "CLEAR_BASE_URL") || !strings.Contains(lerr.Message, "ROTATOR_TOKEN_SECRET_ID") {
			t.Fatalf("error %+v, want an InitError naming the missing variables", lerr)
		}
	}
	if !strings.Contains(f.p.Stdout(), `"level":"ERROR"`) {
		t.Errorf("the configuration problem was not logged: %s", f.p.Stdout())
	}
}
