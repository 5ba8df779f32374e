package examples

// The README's recipes, run: the Go ERP example (built with go build), the Python recipe (python3
// with boto3 and requests) and the Java recipe (javac and java, with Debian's Jackson and
// test-only stand-ins for the AWS SDK: see javaRecipe), each as a process in an ERP's world of the
// shared rig (rig.NewERP): moto, the Clear emulator and the real rotator rotating 3.5-second
// tokens every 2 seconds. A missing tool fails the test, it is never skipped. Assertions are
// counts of failed calls, never durations.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
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
	recipeThroughRotations(t, erp, "python", []string{"python3", script}, "not found")
}

// recipeThroughRotations runs a consumer recipe's command-line mode (cmd, then its flags) against
// erp's rotations, three instances at once: 8 threads calling for 6 s, none of whose calls may
// fail through at least two rotations; 2 threads posting bodies of unknown length, which are never
// retried (a call that hits a revoked token comes back 401, the recipe fetching the newer token for
// the next calls), so the business endpoint sees each POST once (only this instance posts); and
// one given a missing secret, which must exit 1 with the recipe's error (missing). The rig scans
// every output for secrets.
func recipeThroughRotations(t *testing.T, erp *rig.ERP, name string, cmd []string, missing string) {
	t.Helper()
	before := erp.Issued()
	start := func(flags ...string) *consumer {
		return startConsumer(t, erp, cmd[0], append(append([]string(nil), cmd[1:]...), flags...)...)
	}
	run := start("--secret-id", erp.TokenID, "--url", erp.ClearURL+rig.PingPath, "--threads", "8", "--seconds", "6")
	stream := start("--secret-id", erp.TokenID, "--url", erp.ClearURL+rig.InvoicePath, "--threads", "2", "--seconds", "4", "--post-stream")
	lost := start("--secret-id", "no/such/secret", "--url", erp.ClearURL+rig.PingPath, "--seconds", "1")

	if _, msg, err := lost.wait(t, erp, time.Minute); err == nil || !strings.Contains(msg, missing) {
		t.Errorf("%s with a missing secret: %v\n%s", name, err, msg)
	} else if code := lost.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("%s with a missing secret exited %d, want 1", name, code)
	}
	res, out, err := run.wait(t, erp, time.Minute)
	rotations := erp.Issued() - before
	t.Logf("%s: %d calls, %d failed (%v), through %d rotations", name, res.Calls, res.Failed, res.Statuses, rotations)
	if err != nil || res.Failed != 0 || res.Calls == 0 {
		t.Errorf("%s: %v, %d of %d calls failed:\n%s", name, err, res.Failed, res.Calls, out)
	}
	if rotations < 2 {
		t.Errorf("only %d rotations while the recipe ran, want at least 2", rotations)
	}

	res2, out2, err := stream.wait(t, erp, time.Minute)
	if err != nil || res2.Calls == 0 {
		t.Errorf("%s --post-stream: %v, %d calls\n%s", name, err, res2.Calls, out2)
	}
	if sent := erp.Invoices.Count(); sent != res2.Calls {
		t.Errorf("%d streamed POSTs reached Clear %d times, want once each", res2.Calls, sent)
	}
	for status := range res2.Statuses {
		if status != "200" && status != "401" {
			t.Errorf("streamed POST answered %s", status)
		}
	}
	t.Logf("%s --post-stream: %v", name, res2.Statuses)
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
	seen := map[string]string{} // path at the other host -> the token headers it received, all of them
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] += r.Header.Get("x-cleartax-auth-token") // a later call must not hide an earlier one's
		mu.Unlock()
		if r.URL.Path == "/refuse" {
			rw.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer other.Close()
	w.Handle("GET /_test/away", http.RedirectHandler(other.URL+"/landed", http.StatusFound))
	w.Handle("GET /_test/away-refused", http.RedirectHandler(other.URL+"/refuse", http.StatusTemporaryRedirect))
	w.Handle("GET /_test/within", http.RedirectHandler(rig.PingPath, http.StatusFound))
	// Refused once (a rotation: the newer token is stored at once), then the retry with the newer
	// token is redirected to the other host: requests follows with a copy of the first request,
	// which carried the refused token.
	var refusedOnce atomic.Bool
	w.Handle("GET /_test/retry-away", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !refusedOnce.Swap(true) {
			w.StoreToken(w.Issue())
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(rw, r, other.URL+"/after-retry", http.StatusFound)
	}))

	script := filepath.Join(proctest.Root(), "examples", "python", "clear_token.py")
	for path, want := range map[string]string{"/_test/away": "200", "/_test/away-refused": "401", "/_test/within": "200", "/_test/retry-away": "200"} {
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
	for _, path := range []string{"/landed", "/refuse", "/after-retry"} {
		if h, ok := seen[path]; !ok {
			t.Errorf("the other host was never asked for %s", path)
		} else if h != "" {
			t.Errorf("the other host received the token (%d characters) at %s", len(h), path)
		}
	}
}

// TestJavaRecipe runs examples/java/ClearToken.java, compiled as written with Jackson and
// stand-ins for the AWS SDK's classes that speak Secrets Manager's wire protocol to moto (see
// javaRecipe), as TestPythonRecipe runs the Python recipe: three ERP instances at once, with 8
// threads for 6 s through at least two rotations, with a POST body of unknown length for 4 s,
// and against a missing secret.
func TestJavaRecipe(t *testing.T) {
	t.Parallel()
	prepareJava()
	erp := rig.NewERP(t, rig.ERPOptions{}) // a rotation every 2 s, while javac runs
	recipeThroughRotations(t, erp, "java", javaRecipe(t), `clear token secret "no/such/secret": not found`)
}

// TestJavaRecipeKeepsTheTokenOnItsHost: java.net.http follows a redirect with every header of the
// request, so the Java recipe sends the token only through a client that does not follow
// redirects (HttpClient's default) and refuses one that does. Given the default client, a
// redirect to another host comes back to the caller as it is (a 307 to a host that answers 401
// is not taken for Clear's refusal); given a client that follows redirects, every call is refused
// before anything is sent. Either way the other host never sees the token, nor a request.
func TestJavaRecipeKeepsTheTokenOnItsHost(t *testing.T) {
	t.Parallel()
	prepareJava()
	w := rig.New(t, rig.Options{})
	w.StoreToken(w.Issue())
	java := javaRecipe(t)
	var asked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.Header.Get("x-cleartax-auth-token") != "" {
			t.Errorf("the other host received the token at %s", r.URL.Path)
		}
		rw.WriteHeader(http.StatusUnauthorized)
	}))
	defer other.Close()
	w.Handle("GET /_test/away", http.RedirectHandler(other.URL+"/landed", http.StatusFound))
	w.Handle("GET /_test/away-refused", http.RedirectHandler(other.URL+"/refuse", http.StatusTemporaryRedirect))

	cases := []struct {
		path   string
		follow bool
		want   string
	}{
		{"/_test/away", false, "302"},
		{"/_test/away-refused", false, "307"},
		{"/_test/away", true, "IllegalArgumentException"},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		args := append(java[1:len(java):len(java)], "--secret-id", w.TokenID, "--url", w.ClearURL+c.path, "--threads", "1", "--seconds", "0.3")
		if c.follow {
			args = append(args, "--follow-redirects")
		}
		cmd := exec.Command(java[0], args...)
		cmd.Env = proctest.Env(w.Moto.Env()...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.CombinedOutput()
			w.Record(string(out))
			var res result
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || jerr != nil {
				t.Errorf("%s (follow redirects: %v): %v %v\n%s", c.path, c.follow, err, jerr, out)
				return
			}
			if res.Calls == 0 || res.Statuses[c.want] != res.Calls {
				t.Errorf("%s (follow redirects: %v): statuses %v, want every call %s", c.path, c.follow, res.Statuses, c.want)
			}
		}()
	}
	wg.Wait()
	if n := asked.Load(); n != 0 {
		t.Errorf("the other host was asked %d times, want never: the recipe does not follow redirects", n)
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
	testSecretsManagerDown(t, pythonRecipe)
}

// TestJavaRecipeSecretsManagerDown: TestPythonRecipeSecretsManagerDown for the Java recipe.
func TestJavaRecipeSecretsManagerDown(t *testing.T) {
	t.Parallel()
	prepareJava()
	testSecretsManagerDown(t, javaRecipe)
}

// recipe is pythonRecipe or javaRecipe, called once the world is set up.
func testSecretsManagerDown(t *testing.T, recipe func(*testing.T) []string) {
	w := rig.New(t, rig.Options{})
	w.StoreToken(w.Issue())
	sm := newFlakySM(t, w)
	run := startRecipe(t, w, sm.URL, recipe(t), "--threads", "2", "--interval", "0.02", "--ttl", "0.5")
	rig.Await(t, "the recipe's first read", 30*time.Second, func() bool { return sm.reads.Load() > 0 })
	sm.down.Store(true)
	res := run.wait(t)
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
// (notify.SplitCommand) and runs it with the hook's environment, reload-erp being a
// stand-in that prints what it gets. Written with a bare $CLEAR_ROTATOR_VERSION_ID inside the
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
	for name, script := range map[string]string{"reload-erp": `echo "reload-erp $*"`} {
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
	// A reload that fails, or is not there, fails the hook, so that the rotator retries it and
	// reports it: a recipe that piped its output into logger exited with logger's status, and
	// reported every failed reload as delivered (an audit's walk-through).
	if err := os.WriteFile(filepath.Join(bin, "reload-erp"), []byte("#!/bin/sh\necho failing; exit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, missing := range []bool{false, true} {
		if missing {
			os.Remove(filepath.Join(bin, "reload-erp"))
		}
		hook := exec.Command(argv[0], argv[1:]...)
		hook.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "CLEAR_ROTATOR_VERSION_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7"}
		if out, err := hook.CombinedOutput(); err == nil {
			t.Errorf("reload-erp missing %v: the hook succeeded: %s", missing, out)
		}
	}
}

// TestPythonRecipeAFailedReadDuringTheWait: as TestAFailedReadDuringTheWaitIsTriedAgain for the Go
// package. Clear revokes the recipe's token (one API client) and the recipe's first re-read in its
// wait for the newer token fails (a Secrets Manager error boto3 does not retry); the rotator
// stores the newer token just after. The recipe raised at that first failed read and returned
// Clear's 401, though its wait had almost all of its 10 s left; it must read again within the wait.
func TestPythonRecipeAFailedReadDuringTheWait(t *testing.T) {
	t.Parallel()
	testAFailedReadDuringTheWait(t, pythonRecipe)
}

// TestJavaRecipeAFailedReadDuringTheWait: TestPythonRecipeAFailedReadDuringTheWait for the Java
// recipe.
func TestJavaRecipeAFailedReadDuringTheWait(t *testing.T) {
	t.Parallel()
	prepareJava()
	testAFailedReadDuringTheWait(t, javaRecipe)
}

// recipe is pythonRecipe or javaRecipe, called once the world is set up.
func testAFailedReadDuringTheWait(t *testing.T, recipe func(*testing.T) []string) {
	w := rig.New(t, rig.Options{})
	w.StoreToken(w.Issue())
	sm := newFlakySM(t, w)
	run := startRecipe(t, w, sm.URL, recipe(t), "--threads", "1", "--interval", "0.05", "--ttl", "60")
	rig.Await(t, "the recipe's first read", 30*time.Second, func() bool { return sm.reads.Load() > 0 })
	time.Sleep(500 * time.Millisecond) // calls with the token read
	sm.down.Store(true)
	tok2 := w.Issue() // Clear revoked the recipe's token; the rotator stores tok2 after a failed read
	rig.Await(t, "a re-read refused during the wait", 10*time.Second, func() bool { return sm.refused.Load() > 0 })
	sm.down.Store(false)
	w.StoreToken(tok2)
	res := run.wait(t)
	refused := &sm.refused
	t.Logf("%d calls (%v), %d reads refused", res.Calls, res.Statuses, refused.Load())
	if res.Failed != 0 || res.Calls == 0 {
		t.Errorf("%d of %d calls failed across a rotation with one failed re-read: %v", res.Failed, res.Calls, res.Statuses)
	}
}

// TestJavaRecipeSecretsManagerDownThroughTheWait: Clear revokes the recipe's token while Secrets
// Manager refuses every read, for longer than the recipe's wait for a newer token. The refused
// call gets Clear's 401, as the Go Transport and the Python recipe give it (the Java recipe once
// threw the SDK's exception out of send instead). The later calls get the read's exception: the
// token Clear refused is not sent again (as in cleartoken and the Python recipe), which would
// cost each call a 401 and another wait. Before, whether it was depended on a millisecond's
// rounding at the wait's end, and the test failed now and then.
func TestJavaRecipeSecretsManagerDownThroughTheWait(t *testing.T) {
	t.Parallel()
	prepareJava()
	w := rig.New(t, rig.Options{})
	w.StoreToken(w.Issue())
	sm := newFlakySM(t, w)
	run := startRecipe(t, w, sm.URL, javaRecipe(t), "--threads", "1", "--interval", "0.05", "--ttl", "60", "--max-wait", "0.5")
	rig.Await(t, "the recipe's first read", 30*time.Second, func() bool { return sm.reads.Load() > 0 })
	time.Sleep(time.Second) // calls with the token read (a JVM on a loaded machine made none in 300 ms)
	sm.down.Store(true)
	w.Issue() // Clear revokes the recipe's token; no newer one can be read
	res := run.wait(t)
	t.Logf("%d calls (%v), %d reads refused", res.Calls, res.Statuses, sm.refused.Load())
	if res.Statuses["200"] == 0 || res.Statuses["401"] != 1 ||
		res.Statuses["200"]+res.Statuses["401"]+res.Statuses["SecretsManagerException"] != res.Calls {
		t.Errorf("statuses %v, want Clear's 200s, its 401 for the call refused, then the read's exception", res.Statuses)
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

// recipeRun is a recipe's demo loop (Python's or Java's) running against w's Clear for 4 s.
type recipeRun struct {
	w              *rig.World
	name           string
	stdout, stderr proctest.Buffer
	exited         chan error
}

// startRecipe starts recipe (pythonRecipe's or javaRecipe's command, which takes the Python
// script's flags) calling w's Clear, reading the token through smURL; args set its threads,
// interval and TTL.
func startRecipe(t *testing.T, w *rig.World, smURL string, recipe []string, args ...string) *recipeRun {
	t.Helper()
	argv := append(append([]string{}, recipe...), "--secret-id", w.TokenID, "--url", w.ClearURL+rig.PingPath, "--seconds", "4")
	cmd := exec.Command(argv[0], append(argv[1:], args...)...)
	cmd.Env = proctest.Env(append(w.Moto.Env(), "AWS_ENDPOINT_URL="+smURL)...)
	r := &recipeRun{w: w, name: argv[0], exited: make(chan error, 1)}
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
		t.Fatalf("the %s recipe did not finish within a minute", r.name)
	}
	out := r.stdout.String() + r.stderr.String()
	r.w.Record(out)
	var res result
	lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); werr != nil || jerr != nil {
		t.Fatalf("%s: %v %v\n%s", r.name, werr, jerr, out)
	}
	return res
}

// pythonRecipe is the command that runs examples/python/clear_token.py's demo loop.
func pythonRecipe(*testing.T) []string {
	return []string{"python3", filepath.Join(proctest.Root(), "examples", "python", "clear_token.py")}
}

// The Java recipe's build, once per test binary: ClearToken.java as written, the harness
// testdata/Demo.java, and testdata/sdkstub, the stand-ins for the AWS SDK's classes that the
// recipe uses (the SDK cannot be downloaded here), which speak Secrets Manager's wire protocol to
// AWS_ENDPOINT_URL. Jackson is Debian's (libjackson2-databind-java).
var (
	javaOnce    sync.Once
	javaCommand []string
	javaErr     error
)

// jacksonJars are the jars of Debian's libjackson2-databind-java and its dependencies.
var jacksonJars = []string{"/usr/share/java/jackson-databind.jar", "/usr/share/java/jackson-core.jar", "/usr/share/java/jackson-annotations.jar"}

// prepareJava starts the Java recipe's build in the background, so that it overlaps a test's
// setup; javaRecipe waits for it.
func prepareJava() { go javaOnce.Do(buildJava) }

// javaRecipe compiles the Java recipe with its harness (once per test binary) and returns the
// command that runs the harness, which takes the Python recipe's flags. A missing javac, java or
// Jackson fails the test: it is never skipped.
func javaRecipe(t *testing.T) []string {
	t.Helper()
	javaOnce.Do(buildJava)
	if javaErr != nil {
		t.Fatal(javaErr)
	}
	return append([]string(nil), javaCommand...) // the caller's to append to
}

func buildJava() { javaCommand, javaErr = compileJava() }

func compileJava() ([]string, error) {
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the Java recipe's tests need %s (Java 11 or later; apt-get install default-jdk-headless, make test-deps does)", tool)
		}
	}
	for _, jar := range jacksonJars {
		if _, err := os.Stat(jar); err != nil {
			return nil, fmt.Errorf("the Java recipe's tests need Jackson (apt-get install libjackson2-databind-java, make test-deps does): %w", err)
		}
	}
	shared, err := proctest.Dir()
	if err != nil {
		return nil, err
	}
	classes, err := os.MkdirTemp(shared, "java-")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(proctest.Root(), "examples", "java")
	sources := []string{filepath.Join(dir, "ClearToken.java"), filepath.Join(dir, "testdata", "Demo.java"), filepath.Join(dir, "testdata", "WaitCheck.java")}
	err = filepath.WalkDir(filepath.Join(dir, "testdata", "sdkstub"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".java") {
			sources = append(sources, path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	classpath := strings.Join(jacksonJars, string(os.PathListSeparator))
	// -Werror with -Xlint: the recipe compiles without a warning (serial aside: its exception is
	// never serialized).
	javac := exec.Command("javac", append([]string{"-Xlint:all,-serial", "-Werror", "--release", "11", "-d", classes, "-cp", classpath}, sources...)...)
	if out, err := javac.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("javac: %v\n%s", err, out)
	}
	// A small heap and the quick compiler: the machine's CPUs are shared by the tests in parallel.
	return []string{"java", "-Xmx64m", "-XX:TieredStopAtLevel=1", "-cp", classes + string(os.PathListSeparator) + classpath, "example.clear.Demo"}, nil
}

// pythonWaitDriver checks the Python recipe's waits against a Secrets Manager stand-in (a token
// that never changes, or reads that fail) and prints one line per check that failed: as cleartoken,
// concurrent refusals share one wait, a second refusal of a token a whole wait found still current
// holds no other thread, and a wait that ends in failed reads leaves the refused token unused.
const pythonWaitDriver = `
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import clear_token as ct

class Exceptions:
    class ResourceNotFoundException(Exception):
        pass

class FakeSM:
    exceptions = Exceptions
    def __init__(self):
        self.reads, self.fail, self.tok = 0, False, "T1"
    def get_secret_value(self, SecretId, VersionStage):
        self.reads += 1
        if self.fail:
            raise RuntimeError("EndpointConnectionError")
        return {"SecretString": json.dumps({"access_token": self.tok, "valid_till": None}), "VersionId": "v1"}

def refuse(src, call=None):
    try:
        src.refused("T1", call)
    except ct.ClearTokenError:
        pass

sm = FakeSM()
src = ct.ClearTokenSource("s", sm, ttl=60, max_wait=1.0)
src.token()
start = time.monotonic()
threads = [threading.Thread(target=refuse, args=(src,)) for _ in range(5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if time.monotonic() - start > 1.8:
    print("five refusals at once took %.1fs: each waited in turn" % (time.monotonic() - start))

src.token()  # the next call re-reads: AWSCURRENT still holds T1
t = threading.Thread(target=refuse, args=(src,))
t.start()
time.sleep(0.1)
held = time.monotonic()
if src.token() != "T1":
    print("the token a whole wait outlived is not served to other calls")
if time.monotonic() - held > 0.3:
    print("a second refusal of a token a wait outlived held another thread %.1fs" % (time.monotonic() - held))
t.join()

def held_until_stored(first, second):
    """Whether a call made while T1 is refused for call second, after a whole wait for call first,
    gets T2, which the rotator stores 0.3 s into that refusal."""
    sm = FakeSM()
    src = ct.ClearTokenSource("s", sm, ttl=60, max_wait=1.0)
    src.token()
    refuse(src, first)
    src.token()
    t = threading.Thread(target=refuse, args=(src, second))
    t.start()
    time.sleep(0.1)
    threading.Timer(0.2, lambda: setattr(sm, "tok", "T2")).start()
    got = src.token()
    t.join()
    return got == "T2"

# Clear refuses one call for a reason of its own; then the rotation, seen by another call.
if not held_until_stored(("GET", "/no-product"), ("POST", "/invoices")):
    print("after a wait a token outlived for one call, a refusal of another call did not hold the calls made during it")
# The rotator stores late, after a whole wait; the same call refused again.
if not held_until_stored(("GET", "/ping"), ("GET", "/ping")):
    print("a call refused again after one wait its token outlived did not hold the calls made during it")

sm = FakeSM()
src = ct.ClearTokenSource("s", sm, ttl=60, max_wait=0.5)
src.token()
sm.fail = True
refuse(src)
try:
    src.token()
    print("after a wait that ended in failed reads, the refused token is served")
except ct.ClearTokenError:
    pass
`

// TestPythonRecipeSharesOneWait runs pythonWaitDriver: the recipe once held its lock through the
// whole wait, so five threads refused at once waited 5 s in turn, every other call was held each
// time, and a wait ended by failed reads left the refused token cached.
func TestPythonRecipeSharesOneWait(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("python3", "-c", pythonWaitDriver, filepath.Join(proctest.Root(), "examples", "python"))
	cmd.Env = proctest.Env("PYTHONDONTWRITEBYTECODE=1") // no __pycache__ in the source tree
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "clear token secret") { // the recipe's own warnings
			t.Error(line)
		}
	}
}

// TestJavaRecipeSharesOneWait: TestPythonRecipeSharesOneWait for the Java recipe, whose refused()
// was synchronized through its whole wait (testdata/WaitCheck.java).
func TestJavaRecipeSharesOneWait(t *testing.T) {
	t.Parallel()
	java := javaRecipe(t)
	cmd := exec.Command(java[0], append(java[1:len(java)-1:len(java)-1], "example.clear.WaitCheck")...)
	cmd.Env = proctest.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			t.Error(line)
		}
	}
}
