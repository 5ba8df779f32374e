package examples

// The README's recipes, run: the Go ERP example (built with go build) and the Python recipe
// (python3 with boto3 and requests, which must be installed: a missing one fails the test, it is
// never skipped), each as a process in an ERP's world of the shared rig (rig.NewERP): moto, the
// Clear emulator and the real rotator rotating 3.5-second tokens every 2 seconds. Assertions are
// counts of failed calls, never durations.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }

// result is the JSON line both programs print.
type result struct {
	Calls    int            `json:"calls"`
	Failed   int            `json:"failed"`
	Statuses map[string]int `json:"statuses"`
}

// consumer is a token consumer process (an ERP) in an ERP's world.
type consumer struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr proctest.Buffer
	exited         chan struct{}
	err            error // cmd.Wait's, once exited is closed
}

// startConsumer starts name with args and a consumer's environment. Several run at once: each is
// one ERP instance of the world.
func startConsumer(t *testing.T, erp *rig.ERP, name string, args ...string) *consumer {
	t.Helper()
	c := &consumer{name: name, cmd: exec.Command(name, args...), exited: make(chan struct{})}
	c.cmd.Env = erp.ConsumerEnv()
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); <-c.exited })
	return c
}

// wait waits for the process, bounded by timeout, and returns the result it printed as its last
// stdout line, its whole output (which the leak scan reads) and its exit error. A process that
// exits 0 must print a result.
func (c *consumer) wait(t *testing.T, erp *rig.ERP, timeout time.Duration) (result, string, error) {
	t.Helper()
	var err error
	select {
	case <-c.exited:
		err = c.err
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		t.Fatalf("%s did not finish within %s:\n%s%s", c.name, timeout, c.stdout.String(), c.stderr.String())
	}
	out := c.stdout.String() + c.stderr.String()
	erp.Record(out)
	if strings.Contains(out, "ModuleNotFoundError") {
		t.Fatalf("the Python recipe needs python3 with boto3 and requests (pip install boto3 requests):\n%s", out)
	}
	var res result
	lines := strings.Split(strings.TrimSpace(c.stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil && err == nil {
		t.Fatalf("%s printed no result: %v\n%s", c.name, jerr, out)
	}
	return res, out, err
}

// TestERPExample builds examples/erp and runs it through two whole rotations (it stops on SIGTERM
// once the third begins), and meanwhile against a missing secret.
func TestERPExample(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "erp")
	build := exec.Command("go", "build", "-o", bin, "./examples/erp")
	build.Dir = proctest.Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buildOut bytes.Buffer
	build.Stdout, build.Stderr = &buildOut, &buildOut
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	erp := rig.NewERP(t, rig.ERPOptions{}) // while it builds; a rotation every 2 s
	if err := build.Wait(); err != nil {
		t.Fatalf("go build ./examples/erp: %v\n%s", err, buildOut.String())
	}

	before := erp.Issued()
	run := startConsumer(t, erp, bin, "-url", erp.ClearURL+rig.PingPath, "-workers", "8", "-duration", "1m")
	// A missing secret: a clear error, exit status 1.
	missing := startConsumer(t, erp, bin, "-url", erp.ClearURL+rig.PingPath, "-secret-id", "no/such/secret", "-duration", "1s")
	if _, msg, err := missing.wait(t, erp, time.Minute); err == nil || !strings.Contains(msg, "not found") {
		t.Errorf("erp with a missing secret: %v\n%s", err, msg)
	}
	rig.Await(t, "a third rotation while the ERP runs", 30*time.Second, func() bool {
		select {
		case <-run.exited:
			return true // the checks below say why
		default:
			return erp.Issued() >= before+3
		}
	})
	rotations := erp.Issued() - before
	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Error(err)
	}
	res, out, err := run.wait(t, erp, time.Minute)
	t.Logf("erp: %d calls, %d failed, through %d rotations", res.Calls, res.Failed, rotations)
	if err != nil || res.Failed != 0 || res.Calls == 0 {
		t.Errorf("erp: %v, %d of %d calls failed:\n%s", err, res.Failed, res.Calls, out)
	}
	if rotations < 2 {
		t.Errorf("only %d rotations while the ERP ran, want at least 2", rotations)
	}
}

// TestPythonRecipe runs examples/python/clear_token.py (boto3 and requests) as three ERP instances
// at once: with 8 threads for 6 s, through at least two rotations; with a streamed POST body for
// 4 s; and against a missing secret.
func TestPythonRecipe(t *testing.T) {
	t.Parallel()
	erp := rig.NewERP(t, rig.ERPOptions{}) // a rotation every 2 s
	script := filepath.Join(proctest.Root(), "examples", "python", "clear_token.py")

	before := erp.Issued()
	run := startConsumer(t, erp, "python3", script,
		"--secret-id", erp.TokenID, "--url", erp.ClearURL+rig.PingPath, "--threads", "8", "--seconds", "6")
	// A streamed body is never retried: a call that hits a revoked token comes back 401 (the
	// recipe fetches the newer token in the background for the next calls), and the business
	// endpoint sees each POST once (calls == invoices; only this instance posts).
	stream := startConsumer(t, erp, "python3", script,
		"--secret-id", erp.TokenID, "--url", erp.ClearURL+rig.InvoicePath, "--threads", "2", "--seconds", "4", "--post-stream")
	// A missing secret: the recipe's error, exit status 1, nothing leaked (the rig's scan).
	missing := startConsumer(t, erp, "python3", script, "--secret-id", "no/such/secret", "--url", erp.ClearURL+rig.PingPath, "--seconds", "1")

	if _, msg, err := missing.wait(t, erp, time.Minute); err == nil || !strings.Contains(msg, "not found") {
		t.Errorf("python with a missing secret: %v\n%s", err, msg)
	}
	res, out, err := run.wait(t, erp, time.Minute)
	rotations := erp.Issued() - before
	t.Logf("python: %d calls, %d failed (%v), through %d rotations", res.Calls, res.Failed, res.Statuses, rotations)
	if err != nil || res.Failed != 0 || res.Calls == 0 {
		t.Errorf("python: %v, %d of %d calls failed:\n%s", err, res.Failed, res.Calls, out)
	}
	if rotations < 2 {
		t.Errorf("only %d rotations while the recipe ran, want at least 2", rotations)
	}

	res2, out2, err := stream.wait(t, erp, time.Minute)
	if err != nil {
		t.Errorf("python --post-stream: %v\n%s", err, out2)
	}
	if sent := erp.Invoices.Count(); sent != res2.Calls {
		t.Errorf("%d streamed POSTs reached Clear %d times, want once each", res2.Calls, sent)
	}
	for status := range res2.Statuses {
		if status != "200" && status != "401" {
			t.Errorf("streamed POST answered %s", status)
		}
	}
	t.Logf("python --post-stream: %v", res2.Statuses)
}

// TestPythonRecipeKeepsTheTokenOnItsHost: requests follows a redirect with every header of the
// request but Authorization, so the recipe's x-cleartax-auth-token went to whatever host Clear's
// answer named; and when that host answered 401, the recipe's hook took it for a refusal and sent
// it the cached token. The Go Transport sends the token only to the origin the caller addressed
// (TestTransportSendsTheTokenOnlyToItsHost); the recipe must do the same. A redirect within the
// origin keeps the token.
func TestPythonRecipeKeepsTheTokenOnItsHost(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{})
	tok := w.Issue()
	w.StoreToken(tok)
	var mu sync.Mutex
	seen := map[string]string{} // path at the other host -> the token header it received
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("x-cleartax-auth-token")
		mu.Unlock()
		if r.URL.Path == "/refuse" {
			rw.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer other.Close()
	w.Handle("GET /_test/away", http.RedirectHandler(other.URL+"/landed", http.StatusFound))
	w.Handle("GET /_test/away-refused", http.RedirectHandler(other.URL+"/refuse", http.StatusTemporaryRedirect))
	w.Handle("GET /_test/within", http.RedirectHandler(rig.PingPath, http.StatusFound))

	script := filepath.Join(proctest.Root(), "examples", "python", "clear_token.py")
	for path, want := range map[string]string{"/_test/away": "200", "/_test/away-refused": "401", "/_test/within": "200"} {
		cmd := exec.Command("python3", script, "--secret-id", w.TokenID, "--url", w.ClearURL+path, "--threads", "1", "--seconds", "0.1")
		cmd.Env = proctest.Env(w.Moto.Env()...)
		out, err := cmd.CombinedOutput()
		w.Record(string(out))
		if strings.Contains(string(out), "ModuleNotFoundError") {
			t.Fatalf("the Python recipe needs python3 with boto3 and requests:\n%s", out)
		}
		var res result
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || jerr != nil {
			t.Fatalf("%s: %v %v\n%s", path, err, jerr, out)
		}
		if res.Calls == 0 || res.Statuses[want] != res.Calls {
			t.Errorf("%s: statuses %v, want every call %s", path, res.Statuses, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/landed", "/refuse"} {
		if h, ok := seen[path]; !ok {
			t.Errorf("the other host was never asked for %s", path)
		} else if h != "" {
			t.Errorf("the other host received the token (%d characters) at %s", len(h), path)
		}
	}
}

// TestWebhookReceiverRecipe runs the receiver's check that docs/consumers.md shows, as written,
// on messages the rotator's own signer signs (internal/notify): a right signature, a tampered
// body, another key, two keys while the secret changes, and a message too old.
func TestWebhookReceiverRecipe(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(proctest.Root(), "docs", "consumers.md"))
	if err != nil {
		t.Fatal(err)
	}
	var recipe string
	for block := range strings.SplitSeq(string(doc), "```python\n") {
		if code, _, ok := strings.Cut(block, "```"); ok && strings.Contains(code, "def verify(") {
			recipe = code
		}
	}
	if recipe == "" {
		t.Fatal("docs/consumers.md has no Python block with def verify(")
	}
	// 32 key bytes whose base64 has '+', '/' and padding: the one form the rotator accepts
	// (notify.TestParseKeysRefusesWithoutQuoting refuses the others).
	raw := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32]
	forms := map[string]string{"standard": base64.StdEncoding.EncodeToString(raw)}
	other := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	type check struct {
		Name, Secret, ID, TS, Sig, Body string
		Want                            bool
	}
	var checks []check
	now := time.Now()
	body := `{"type":"clear.token.rotated","client":"erp"}`
	for name, b64 := range forms {
		secret := "whsec_" + b64
		keys, err := notify.ParseKeys(notify.NewSecret(secret))
		if err != nil {
			t.Fatalf("the rotator refuses the %s key: %v", name, err)
		}
		sig := keys.Sign("msg_1", now, []byte(body))
		ts := strconv.FormatInt(now.Unix(), 10)
		checks = append(checks,
			check{name, secret, "msg_1", ts, sig, body, true},
			check{name + ", tampered body", secret, "msg_1", ts, sig, body + " ", false},
			check{name + ", another key", other, "msg_1", ts, sig, body, false})
	}
	// While the secret changes the rotator signs with both keys; a receiver holding either accepts.
	both, err := notify.ParseKeys(notify.NewSecret(other + " whsec_" + forms["standard"]))
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-10 * time.Minute)
	checks = append(checks,
		check{"two keys, the new one held", "whsec_" + forms["standard"], "msg_2", strconv.FormatInt(now.Unix(), 10), both.Sign("msg_2", now, []byte(body)), body, true},
		check{"too old", other, "msg_3", strconv.FormatInt(old.Unix(), 10), both.Sign("msg_3", old, []byte(body)), body, false})

	input, _ := json.Marshal(checks)
	driver := recipe + `
import json, sys
for c in json.load(sys.stdin):
    try:
        got = verify(c["Secret"], {"webhook-id": c["ID"], "webhook-timestamp": c["TS"], "webhook-signature": c["Sig"]}, c["Body"].encode())
    except Exception as e:
        got = type(e).__name__
    print(json.dumps([c["Name"], got]))
`
	cmd := exec.Command("python3", "-c", driver)
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	want := map[string]bool{}
	for _, c := range checks {
		want[c.Name] = c.Want
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(checks) {
		t.Fatalf("%d answers for %d checks:\n%s", len(lines), len(checks), out)
	}
	for _, line := range lines {
		var r [2]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		name, _ := r[0].(string)
		if got, ok := r[1].(bool); !ok || got != want[name] {
			t.Errorf("%s: verify answered %v, want %v", name, r[1], want[name])
		}
	}
}

// TestPythonRecipeSecretsManagerDown: as TestSecretsManagerDownServesTheCachedToken for the Go
// package. The recipe re-reads the secret once its TTL has passed; when that read failed (here
// Secrets Manager refuses every call with AccessDeniedException), token() raised and every call
// failed, though the token it held was still live at Clear. It must keep using that token (until
// its valid_till) and try the read again once per TTL.
func TestPythonRecipeSecretsManagerDown(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{})
	w.StoreToken(w.Issue())
	sm := newFlakySM(t, w)
	recipe := startRecipe(t, w, sm.URL, "--threads", "2", "--interval", "0.02", "--ttl", "0.5")
	rig.Await(t, "the recipe's first read", 30*time.Second, func() bool { return sm.reads.Load() > 0 })
	sm.down.Store(true)
	res := recipe.wait(t)
	refused := &sm.refused
	t.Logf("%d calls (%v), %d reads refused", res.Calls, res.Statuses, refused.Load())
	if refused.Load() < 2 {
		t.Errorf("%d reads refused, want the recipe to have tried again while Secrets Manager was down", refused.Load())
	}
	if res.Failed != 0 || res.Calls == 0 {
		t.Errorf("%d of %d calls failed while Secrets Manager was down: %v", res.Failed, res.Calls, res.Statuses)
	}
	// Once per TTL, not once per call: 4 s at a 0.5 s TTL is at most 8 or 9 reads.
	if n := refused.Load(); n > 12 {
		t.Errorf("%d reads while Secrets Manager was down, want about one per TTL", n)
	}
}

// TestHookCommandRecipe takes the hook command that docs/consumers.md shows (a shell assignment
// of ROTATOR_HOOK_COMMAND), sets it as a POSIX shell does, splits it as the rotator does
// (notify.SplitCommand) and runs it with the hook's environment, reload-erp and logger being
// stand-ins that print what they get. Written with a bare $CLEAR_ROTATOR_VERSION_ID inside the
// double quotes, the operator's shell expanded it at the assignment, to nothing, and the hook
// was told version "".
func TestHookCommandRecipe(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(proctest.Root(), "docs", "consumers.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "`ROTATOR_HOOK_COMMAND=")
	line, _, _ := strings.Cut(rest, "`")
	if !ok || line == "" {
		t.Fatal("docs/consumers.md shows no ROTATOR_HOOK_COMMAND=... line")
	}
	assign := exec.Command("sh", "-c", "ROTATOR_HOOK_COMMAND="+line+`; printf %s "$ROTATOR_HOOK_COMMAND"`)
	assign.Env = proctest.Env() // no CLEAR_ROTATOR_* in the operator's shell
	value, err := assign.Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	argv, err := notify.SplitCommand(string(value))
	if err != nil {
		t.Fatalf("the rotator refuses %q: %v", value, err)
	}
	bin := t.TempDir()
	for name, script := range map[string]string{"reload-erp": `echo "reload-erp $*"`, "logger": "cat"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hook := exec.Command(argv[0], argv[1:]...)
	hook.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "CLEAR_ROTATOR_VERSION_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7"}
	out, err := hook.CombinedOutput()
	if err != nil {
		t.Fatalf("the hook %q: %v\n%s", argv, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "reload-erp --version 7c9e6679-7425-40de-944b-e07fc1f90ae7" {
		t.Errorf("the hook ran %q", got)
	}
}

// TestPythonRecipeAFailedReadDuringTheWait: as TestAFailedReadDuringTheWaitIsTriedAgain for the Go
// package. Clear revokes the recipe's token (one API client) and the recipe's first re-read in its
// wait for the newer token fails (a Secrets Manager error boto3 does not retry); the rotator
// stores the newer token just after. The recipe raised at that first failed read and returned
// Clear's 401, though its wait had almost all of its 10 s left; it must read again within the wait.
func TestPythonRecipeAFailedReadDuringTheWait(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{})
	w.StoreToken(w.Issue())
	sm := newFlakySM(t, w)
	recipe := startRecipe(t, w, sm.URL, "--threads", "1", "--interval", "0.05", "--ttl", "60")
	rig.Await(t, "the recipe's first read", 30*time.Second, func() bool { return sm.reads.Load() > 0 })
	time.Sleep(500 * time.Millisecond) // calls with the token read
	sm.down.Store(true)
	tok2 := w.Issue() // Clear revoked the recipe's token; the rotator stores tok2 after a failed read
	rig.Await(t, "a re-read refused during the wait", 10*time.Second, func() bool { return sm.refused.Load() > 0 })
	sm.down.Store(false)
	w.StoreToken(tok2)
	res := recipe.wait(t)
	refused := &sm.refused
	t.Logf("%d calls (%v), %d reads refused", res.Calls, res.Statuses, refused.Load())
	if res.Failed != 0 || res.Calls == 0 {
		t.Errorf("%d of %d calls failed across a rotation with one failed re-read: %v", res.Failed, res.Calls, res.Statuses)
	}
}

// flakySM is a proxy in front of the rig's moto that refuses every GetSecretValue with an
// AccessDeniedException (an error boto3 does not retry) while down is set, and counts the reads
// and the refusals.
type flakySM struct {
	URL            string
	down           atomic.Bool
	reads, refused atomic.Int64
}

func newFlakySM(t *testing.T, w *rig.World) *flakySM {
	t.Helper()
	motoURL, err := url.Parse(w.Moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := &flakySM{}
	moto := httputil.NewSingleHostReverseProxy(motoURL)
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetSecretValue") {
			f.reads.Add(1)
			if f.down.Load() {
				f.refused.Add(1)
				rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
				rw.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(rw, `{"__type":"AccessDeniedException","message":"not now"}`)
				return
			}
		}
		moto.ServeHTTP(rw, r)
	}))
	t.Cleanup(proxy.Close)
	f.URL = proxy.URL
	return f
}

// recipeRun is the Python recipe's demo loop running against w's Clear for 4 s.
type recipeRun struct {
	w              *rig.World
	stdout, stderr proctest.Buffer
	exited         chan error
}

// startRecipe starts the Python recipe calling w's Clear, reading the token through smURL; args
// set its threads, interval and TTL.
func startRecipe(t *testing.T, w *rig.World, smURL string, args ...string) *recipeRun {
	t.Helper()
	script := filepath.Join(proctest.Root(), "examples", "python", "clear_token.py")
	cmd := exec.Command("python3", append([]string{script, "--secret-id", w.TokenID, "--url", w.ClearURL + rig.PingPath,
		"--seconds", "4"}, args...)...)
	cmd.Env = proctest.Env(append(w.Moto.Env(), "AWS_ENDPOINT_URL="+smURL)...)
	r := &recipeRun{w: w, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &r.stdout, &r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return r
}

// wait waits for the recipe to finish, hands its output to the rig's leak scan and returns the
// summary it printed last.
func (r *recipeRun) wait(t *testing.T) result {
	t.Helper()
	var werr error
	select {
	case werr = <-r.exited:
	case <-time.After(time.Minute):
		t.Fatal("the recipe did not finish within a minute")
	}
	out := r.stdout.String() + r.stderr.String()
	r.w.Record(out)
	var res result
	lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); werr != nil || jerr != nil {
		t.Fatalf("python: %v %v\n%s", werr, jerr, out)
	}
	return res
}
