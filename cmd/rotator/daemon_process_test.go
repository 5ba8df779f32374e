package main

// Process tests of `rotator run`: the built binary, against moto (Secrets Manager) and the Clear
// emulator served in-process, observed the way an ERP and an orchestrator see it: by reading the
// secret, by probing the ops listener, and by signals. TestMain (main_test.go) stops moto and
// removes the built binaries.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// daemonLifetime is the emulator's token lifetime: the daemon renews at two thirds of it.
const daemonLifetime = 20 * time.Second

// writeWindow is how long the ERP may hold a token Clear has already revoked: Clear revokes the old
// token when it answers, and the daemon stores the new one straight after, so a read can fall in
// between. A read whose token was found revoked is tolerated only if a read starting no more than
// writeWindow after that finding returns the new token, live. The write takes a few milliseconds;
// the window is wide enough for a loaded machine's slow moto, and narrow enough that a token that
// expired before its renewal (dead reads for seconds on end) fails the test.
const writeWindow = 3 * time.Second

// daemonFixture is moto plus an in-process Clear emulator, shared by the daemons a test starts.
type daemonFixture struct {
	t       *testing.T
	bin     string
	moto    *mototest.Server
	sm      *secretsmanager.Client
	emu     *emulator.Server
	baseURL string

	mu      sync.Mutex
	secrets []string // client secrets, for the leak scan
	tokens  []string // every token seen, for the leak scan
	tokenID []string // token secrets, for the leak scan
	outputs []*proctest.Buffer
}

func newDaemonFixture(t *testing.T, lifetime time.Duration, secrets ...string) *daemonFixture {
	t.Helper()
	f := &daemonFixture{t: t, bin: proctest.TestRotator(t), moto: mototest.Shared(t), secrets: secrets}
	f.sm = f.moto.Client()
	f.emu = emulator.New(emulator.Options{Lifetime: lifetime, Secrets: secrets})
	srv := httptest.NewServer(f.emu)
	t.Cleanup(func() {
		f.emu.Close() // release a request held by a Delay fault, or Close would wait for it
		srv.Close()
	})
	f.baseURL = srv.URL
	t.Cleanup(f.assertNoLeak)
	return f
}

func (f *daemonFixture) assertNoLeak() {
	for _, id := range f.tokenID {
		f.tokens = append(f.tokens, f.storedTokens(id)...)
	}
	var outs []string
	for _, b := range f.outputs {
		outs = append(outs, b.String())
	}
	proctest.AssertNoLeak(f.t, outs, append(append([]string{}, f.secrets...), f.tokens...)...)
}

// storedTokens returns every token in the versions of a token secret.
func (f *daemonFixture) storedTokens(id string) []string {
	ctx := context.Background()
	out, err := f.sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		return nil
	}
	var toks []string
	for _, v := range out.Versions {
		gv, err := f.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionId: v.VersionId})
		if err != nil {
			continue
		}
		if d, err := document.ParseToken([]byte(aws.ToString(gv.SecretString))); err == nil {
			toks = append(toks, d.AccessToken.Reveal())
		}
	}
	return toks
}

// current reads AWSCURRENT the way an ERP does; ok is false when it holds no token yet.
func (f *daemonFixture) current(ctx context.Context, id string) (tok string, ok bool, err error) {
	out, err := f.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		return "", false, err
	}
	d, perr := document.ParseToken([]byte(aws.ToString(out.SecretString)))
	if perr != nil {
		return "", false, nil
	}
	return d.AccessToken.Reveal(), true, nil
}

func (f *daemonFixture) sawToken(tok string) {
	f.mu.Lock()
	f.tokens = append(f.tokens, tok)
	f.mu.Unlock()
}

// daemonProc is one `rotator run` process.
type daemonProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *proctest.Buffer
	addr   string
	done   chan struct{}
	code   int
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs `rotator run` with the fixture's moto and the given environment, and waits until its
// ops listener answers /healthz.
func (f *daemonFixture) start(env ...string) *daemonProc {
	f.t.Helper()
	p := &daemonProc{t: f.t, addr: freeLoopbackAddr(f.t), stderr: &proctest.Buffer{}, done: make(chan struct{})}
	stdout := &proctest.Buffer{}
	f.mu.Lock()
	f.outputs = append(f.outputs, p.stderr, stdout)
	f.mu.Unlock()
	p.cmd = exec.Command(f.bin, "run")
	p.cmd.Env = proctest.Env(append(append(f.moto.Env(),
		"ROTATOR_SCHEDULE=@every 1s",
		"ROTATOR_HTTP_ADDR="+p.addr,
		"LOG_FORMAT=json",
		"LOG_LEVEL=debug",
	), env...)...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	f.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	p.await("the ops listener", 15*time.Second, func() bool { code, _ := p.get("/healthz"); return code == http.StatusOK })
	return p
}

// await polls cond every 50ms until it holds, failing the test after timeout.
func (p *daemonProc) await(what string, timeout time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			p.t.Fatalf("the daemon exited (status %d) while waiting for %s:\n%s", p.code, what, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %s for %s:\n%s", timeout, what, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var opsClient = &http.Client{Timeout: 2 * time.Second}

func (p *daemonProc) get(path string) (int, string) {
	resp, err := opsClient.Get("http://" + p.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metric returns one sample's value from /metrics, or "" when it is absent.
func (p *daemonProc) metric(series string) string {
	_, body := p.get("/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// stop sends sig and returns the exit status, failing the test if the process outlives timeout.
func (p *daemonProc) stop(sig os.Signal, timeout time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("the daemon did not exit within %s of %s:\n%s", timeout, sig, p.stderr.String())
		return -1
	}
}

// logged reports whether a JSON log line has msg as its message.
func (p *daemonProc) logged(msg string) bool {
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == msg {
			return true
		}
	}
	return false
}

// read is one poll of the ERP: when it began, and when its token's liveness was checked.
type read struct {
	at, checked time.Time
	token       string
	live        bool
}

// TestDaemonProcess runs the daemon for a minute of 20-second tokens while an ERP polls the secret,
// then stops it during a slow Clear answer and restarts it. It checks that the ERP always holds a
// live token (but for the write window), that the daemon asks Clear exactly as often as the
// tokens' renewal point requires, that the ops endpoints tell the truth, that SIGHUP and SIGTERM
// behave, and that no secret or token reaches the logs.
func TestDaemonProcess(t *testing.T) {
	t.Parallel()
	secret := "daemon-secret-" + strings.ReplaceAll(mototest.Name(t, "s"), "/", "_")
	f := newDaemonFixture(t, daemonLifetime, secret)
	tokenID := mototest.Name(t, "token")
	f.tokenID = append(f.tokenID, tokenID)
	env := []string{"CLEAR_BASE_URL=" + f.baseURL, "CLEAR_CLIENT_SECRET=" + secret, "ROTATOR_TOKEN_SECRET_ID=" + tokenID}

	started := time.Now()
	p := f.start(env...)
	p.await("readiness", 15*time.Second, func() bool { code, _ := p.get("/readyz"); return code == http.StatusOK })
	if code, body := p.get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}

	// The ERP polls AWSCURRENT every 200ms for a minute; halfway through, the daemon gets SIGHUP.
	ctx := context.Background()
	var reads []read
	end := time.Now().Add(time.Minute)
	hupAt := time.Now().Add(30 * time.Second)
	for {
		now := time.Now()
		if now.After(end) && (len(reads) == 0 || reads[len(reads)-1].live) || now.After(end.Add(writeWindow+time.Second)) {
			break
		}
		tok, ok, err := f.current(ctx, tokenID)
		if err != nil {
			t.Fatalf("the ERP could not read the secret: %v", err)
		}
		r := read{at: now, token: tok, live: ok && f.emu.Live(tok), checked: time.Now()}
		if ok {
			f.sawToken(tok)
		}
		reads = append(reads, r)
		if !hupAt.IsZero() && now.After(hupAt) {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			hupAt = time.Time{}
		}
		time.Sleep(200*time.Millisecond - time.Since(now))
	}
	finished := time.Now()
	requests := f.emu.Requests(secret)

	// Every read holds a live token, except within the write window of a rotation.
	var bad []string
	for i, r := range reads {
		if r.live {
			continue
		}
		j := i + 1
		for j < len(reads) && reads[j].token == r.token {
			j++
		}
		if j == len(reads) || reads[j].at.Sub(r.checked) > writeWindow || !reads[j].live {
			bad = append(bad, r.at.Format(time.StampMilli))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d ERP reads found a token Clear does not accept, with no live successor within %s; the first at %s",
			len(bad), len(reads), writeWindow, strings.Join(bad[:min(5, len(bad))], ", "))
	}
	// The tokens never changed before the renewal point (2/3 of 20s, less the second to which the
	// stored issue time is truncated): no request was wasted. Lateness is not asserted as a time
	// window, which a loaded machine can stretch; that no ERP read found a dead token (above) is
	// the property that matters.
	var changes []time.Time
	for i, r := range reads {
		if i == 0 || r.token != reads[i-1].token {
			changes = append(changes, r.at)
		}
	}
	for i := 1; i < len(changes); i++ {
		if gap := changes[i].Sub(changes[i-1]); gap < 12*time.Second {
			t.Errorf("token %d replaced its predecessor after %s, before its renewal point (%s)", i+1, gap, daemonLifetime*2/3)
		}
	}
	// The most requests the run can justify: the first token, then one per renewal interval of at
	// least 12.33s (renewal at 13.33s after an issue time truncated by up to a second). At least
	// two, or the daemon did not renew at all.
	hi := 1 + int(finished.Sub(started)/(12330*time.Millisecond))
	if requests < 2 || requests > hi {
		t.Errorf("%d requests to Clear in %s, want 2 to %d", requests, finished.Sub(started).Round(time.Millisecond), hi)
	}
	// The ERP sees every token, since each stays in place for over 12s; a request that began in the
	// milliseconds between the ERP's last read and the count is the only other possibility.
	if latest, _, _ := f.current(ctx, tokenID); requests != len(changes) && (requests != len(changes)+1 || latest == reads[len(reads)-1].token) {
		t.Errorf("the ERP saw %d tokens, Clear issued %d", len(changes), requests)
	}
	t.Logf("%d requests to Clear in %s; %d ERP reads", requests, finished.Sub(started).Round(time.Millisecond), len(reads))

	// SIGHUP reloaded the (unchanged) configuration without a request of its own.
	if !p.logged("reloaded the configuration") {
		t.Error("no reload logged after SIGHUP")
	}

	// The ops endpoints.
	if code, body := p.get("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, body := p.get("/metrics"); code != http.StatusOK || !strings.Contains(body, "# TYPE clear_rotator_checks_total counter") {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
	// The counter and Clear's count are read at different instants; a rotation may fall in between.
	p.await("the rotated counter to match Clear's count", 5*time.Second, func() bool {
		return p.metric(`clear_rotator_checks_total{client="default",outcome="rotated"}`) == fmt.Sprint(f.emu.Requests(secret))
	})
	if v, want := p.metric(`clear_rotator_requests_today{client="default",api_client="1"}`), f.emu.RequestsToday(secret); v != fmt.Sprint(want) && time.Now().UTC().Hour() != 0 {
		t.Errorf("requests_today = %q, Clear counts %d", v, want)
	}
	for _, series := range []string{`clear_rotator_blocked{client="default"}`, `clear_rotator_checks_total{client="default",outcome="failed"}`} {
		if v := p.metric(series); v != "0" {
			t.Errorf("%s = %q, want 0", series, v)
		}
	}
	if v := p.metric(`clear_rotator_daily_limit{client="default"}`); v != "48" {
		t.Errorf("daily_limit = %q, want 48", v)
	}
	if v := p.metric(`clear_rotator_token_expiry_timestamp_seconds{client="default"}`); v == "" {
		t.Error("no expiry metric")
	}
	if _, body := p.get("/metrics"); !strings.Contains(body, `clear_rotator_build_info{version="`) || !strings.Contains(body, `,go_version="go`) ||
		strings.Contains(body, `version="clear-rotator`) {
		t.Errorf("no build_info with the version:\n%s", body)
	}

	// SIGTERM while Clear takes 3s to answer: the daemon waits, stores the token, and exits 0.
	f.emu.Inject(emulator.Fault{Delay: 3 * time.Second})
	before, _, _ := f.current(ctx, tokenID)
	n := f.emu.Requests(secret)
	p.await("the next rotation", 16*time.Second, func() bool { return f.emu.Requests(secret) > n })
	sent := time.Now()
	if code := p.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, p.stderr.String())
	}
	if waited := time.Since(sent); waited < 2*time.Second {
		t.Errorf("the daemon exited %s after SIGTERM, before Clear's delayed answer", waited)
	}
	after, ok, err := f.current(ctx, tokenID)
	if err != nil || !ok || after == before || !f.emu.Live(after) {
		t.Fatalf("after SIGTERM during a rotation AWSCURRENT holds no new live token (err %v)", err)
	}
	f.sawToken(after)
	for _, msg := range []string{"shutting down: no new checks; waiting for those in flight", "rotated the token", "stopped"} {
		if !p.logged(msg) {
			t.Errorf("log lacks %q", msg)
		}
	}

	// A restart right after that rotation finds the token fresh in Secrets Manager: no request.
	n = f.emu.Requests(secret)
	p2 := f.start(env...)
	p2.await("readiness after the restart", 15*time.Second, func() bool { code, _ := p2.get("/readyz"); return code == http.StatusOK })
	if v := p2.metric(`clear_rotator_checks_total{client="default",outcome="not_due"}`); v != "1" {
		t.Errorf("not_due counter after the restart = %q, want 1", v)
	}
	if got := f.emu.Requests(secret); got != n {
		t.Errorf("the restarted daemon made %d requests, want none", got-n)
	}
	if code := p2.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestDaemonProcessReload changes a YAML configuration under a running daemon: SIGHUP adds a
// client, which is rotated at once while the unchanged one keeps its token; a broken file is
// refused and the running configuration kept.
func TestDaemonProcessReload(t *testing.T) {
	t.Parallel()
	sa := "reload-a-" + strings.ReplaceAll(mototest.Name(t, "s"), "/", "_")
	sb := "reload-b-" + strings.ReplaceAll(mototest.Name(t, "s"), "/", "_")
	f := newDaemonFixture(t, time.Hour, sa, sb)
	ta, tb := mototest.Name(t, "token-a"), mototest.Name(t, "token-b")
	f.tokenID = append(f.tokenID, ta, tb)
	entry := func(name, secret, tokenID string) string {
		return fmt.Sprintf("  - name: %s\n    base_url: %s\n    client_secret: %s\n    token_secret_id: %s\n", name, f.baseURL, secret, tokenID)
	}
	path := filepath.Join(t.TempDir(), "rotator.yaml")
	if err := os.WriteFile(path, []byte("clients:\n"+entry("a", sa, ta)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := f.start("ROTATOR_CONFIG=" + path)
	p.await("readiness", 15*time.Second, func() bool { code, _ := p.get("/readyz"); return code == http.StatusOK })

	if err := os.WriteFile(path, []byte("clients:\n"+entry("a", sa, ta)+entry("b", sb, tb)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.await("client b's first token", 10*time.Second, func() bool {
		tok, ok, _ := f.current(context.Background(), tb)
		return ok && f.emu.Live(tok)
	})
	if n := f.emu.Requests(sa); n != 1 {
		t.Errorf("the unchanged client made %d requests, want 1", n)
	}

	if err := os.WriteFile(path, []byte("clients: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.await("the refused reload", 10*time.Second, func() bool { return p.logged("reload failed; keeping the previous configuration") })
	if code, body := p.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a refused reload = %d %q", code, body)
	}
	if v := p.metric(`clear_rotator_checks_total{client="b",outcome="rotated"}`); v != "1" {
		t.Errorf("client b's rotated counter = %q after the refused reload, want 1", v)
	}
	if code := p.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}
