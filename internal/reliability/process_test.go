package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
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
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// procRig runs the built rotator binary against moto, through a proxy that can hold chosen calls,
// and against the Clear emulator on the real clock. Everything the processes print is kept for
// the leak scan.
type procRig struct {
	t        *testing.T
	bin      string
	moto     *mototest.Server
	sm       *secretsmanager.Client // straight to moto
	proxy    *motoProxy
	emu      *emulator.Server
	tap      *serverTap
	secret   string
	tokenID  string
	clearURL string
	proxyURL string
	env      []string

	mu      sync.Mutex
	outputs []string
}

func newProcRig(t *testing.T) *procRig {
	t.Helper()
	p := &procRig{t: t, bin: proctest.TestRotator(t), moto: mototest.Shared(t)}
	p.sm = p.moto.Client()
	p.secret = "proc-client-secret-" + strings.ReplaceAll(mototest.Name(t, "s"), "/", "_")
	p.emu = emulator.New(emulator.Options{Lifetime: time.Hour, Secrets: []string{p.secret}})
	p.tap = &serverTap{next: p.emu}
	srv := httptest.NewServer(p.tap)
	t.Cleanup(srv.Close)
	t.Cleanup(p.emu.Close)
	p.clearURL = srv.URL
	p.proxy = newMotoProxy(p.moto.URL)
	psrv := httptest.NewServer(p.proxy)
	t.Cleanup(psrv.Close)
	p.proxyURL = psrv.URL
	t.Cleanup(p.proxy.releaseAll)
	p.tokenID = mototest.Name(t, "token")
	env := slices.DeleteFunc(p.moto.Env(), func(s string) bool { return strings.HasPrefix(s, "AWS_ENDPOINT_URL=") })
	p.env = proctest.Env(append(env,
		"AWS_ENDPOINT_URL="+psrv.URL,
		"CLEAR_BASE_URL="+srv.URL,
		"CLEAR_CLIENT_SECRET="+p.secret,
		"ROTATOR_TOKEN_SECRET_ID="+p.tokenID,
		"LOG_FORMAT=json", "LOG_LEVEL=debug",
	)...)
	t.Cleanup(func() {
		p.mu.Lock()
		outs := slices.Clone(p.outputs)
		p.mu.Unlock()
		proctest.AssertNoLeak(t, outs, append(p.tap.tokens(), p.secret)...)
	})
	return p
}

type procResult struct {
	code           int
	stdout, stderr string
}

func (r procResult) String() string { return r.stdout + r.stderr }

// run runs the binary to completion.
func (p *procRig) run(args ...string) procResult {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = p.env
	var stdout, stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := procResult{stdout: stdout.String(), stderr: stderr.String()}
	p.keep(r.stdout, r.stderr)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		p.t.Fatalf("running rotator %v: %v", args, err)
	}
	return r
}

func (p *procRig) keep(outs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outputs = append(p.outputs, outs...)
}

// start starts the binary and returns a function that SIGKILLs it and waits for it.
func (p *procRig) start(args ...string) (kill func()) {
	p.t.Helper()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env
	var stdout, stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			p.keep(stdout.String(), stderr.String())
		})
	}
	p.t.Cleanup(kill)
	return kill
}

func wantExit(t *testing.T, r procResult, code int, contains string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout+r.stderr, contains) {
		t.Fatalf("exit %d (want %d), output lacks %q:\nstdout: %s\nstderr: %s", r.code, code, contains, r.stdout, r.stderr)
	}
}

// current reads AWSCURRENT straight from moto and fails unless it is a token document.
func (p *procRig) current() (document.Token, string) {
	p.t.Helper()
	out, err := p.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(p.tokenID), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		p.t.Fatal(err)
	}
	d, err := document.ParseToken([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		p.t.Fatalf("AWSCURRENT does not hold a token document: %v", err)
	}
	return d, aws.ToString(out.VersionId)
}

func (p *procRig) state() document.State {
	p.t.Helper()
	out, err := p.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(p.tokenID), VersionStage: aws.String(document.StateStage)})
	if err != nil {
		p.t.Fatal(err)
	}
	st, err := document.ParseState([]byte(aws.ToString(out.SecretString)))
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

// checkCount asserts that the state counts Clear's requests today plus the lost claims.
func (p *procRig) checkCount(lost int) {
	p.t.Helper()
	st := p.state()
	got := 0
	for _, a := range st.APIClients {
		got += a.RequestsOn(timing.Day(time.Now()))
	}
	if want := p.emu.RequestsToday(p.secret) + lost; got != want {
		p.t.Fatalf("the state counts %d requests today; Clear received %d, and %d claims never reached it", got, p.emu.RequestsToday(p.secret), lost)
	}
}

// makeDue rewrites the stored token document so that it is due (issued 50 minutes ago, valid
// for 10 more), keeping the token itself, which Clear still considers live for an hour.
func (p *procRig) makeDue(age time.Duration) {
	p.t.Helper()
	tok, _ := p.current()
	now := time.Now().UTC()
	tok.IssuedAt = now.Add(-age)
	vt := tok.IssuedAt.Add(time.Hour)
	tok.ValidTill = &vt
	body, err := document.MarshalToken(tok)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(p.tokenID), SecretString: aws.String(string(body))}); err != nil {
		p.t.Fatal(err)
	}
}

// expireLease simulates the passage of the lease (5 minutes) for a claim left by a killed
// process: it writes the state again with the claim's lease_until in the past, as a new
// ROTATOR_STATE version with a fresh ClientRequestToken. Everything else in the state (the
// count, the claim's base) stays as the killed process left it.
func (p *procRig) expireLease() {
	p.t.Helper()
	st := p.state()
	if st.Claim == nil {
		p.t.Fatal("there is no claim to expire")
	}
	st.Claim.LeaseUntil = time.Now().UTC().Add(-time.Second)
	body, err := document.MarshalState(st)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(p.tokenID), SecretString: aws.String(string(body)),
		VersionStages: []string{document.StateStage}, ClientRequestToken: aws.String(uuid()),
	}); err != nil {
		p.t.Fatal(err)
	}
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// proxyMode is what the proxy does with a matching call.
type proxyMode int

const (
	holdBefore proxyMode = iota + 1 // never forwards: the call is not applied
	holdAfter                       // forwards (the call is applied) and never answers
)

// motoProxy forwards the rotator's Secrets Manager calls to moto, and holds the ones of an armed
// step until the caller goes away (it was killed) or the test ends. It classifies calls the way
// awsFaults does; the re-read is the AWSCURRENT read that follows a claim in the same process, and
// the proxy serves one process at a time when a step is armed.
type motoProxy struct {
	target string
	client *http.Client

	mu      sync.Mutex
	rules   map[step]proxyMode
	claimed bool
	held    chan step
	done    chan struct{}
	// gate holds the first reads of AWSCURRENT until gateN of them have arrived, so that racers
	// that start at different speeds (processes, in-process engines) really race.
	gate       chan struct{}
	gateN      int
	gateArrive int
}

func newMotoProxy(target string) *motoProxy {
	return &motoProxy{target: target, client: &http.Client{}, rules: map[step]proxyMode{},
		held: make(chan step, 16), done: make(chan struct{})}
}

func (m *motoProxy) arm(s step, mode proxyMode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rules[s], m.claimed = mode, false
}

// barrier makes the next n first reads of AWSCURRENT wait for one another (for at most 10s).
func (m *motoProxy) barrier(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gate, m.gateN, m.gateArrive, m.claimed = make(chan struct{}), n, 0, false
}

func (m *motoProxy) disarm() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rules = map[step]proxyMode{}
}

func (m *motoProxy) releaseAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.done:
	default:
		close(m.done)
	}
}

func (m *motoProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	var c wireCall
	_ = json.Unmarshal(body, &c)
	s := classify(req.Header.Get("X-Amz-Target"), c)
	m.mu.Lock()
	s = afterClaim(s, &m.claimed)
	mode := m.rules[s]
	var gate chan struct{}
	if s == stepReadCurrent && m.gate != nil && m.gateArrive < m.gateN {
		gate = m.gate
		if m.gateArrive++; m.gateArrive == m.gateN {
			close(m.gate)
		}
	}
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
		}
	}

	hold := func() {
		m.held <- s
		select {
		case <-req.Context().Done(): // the process was killed
		case <-m.done:
		}
	}
	if mode == holdBefore {
		hold()
		return
	}
	out, err := http.NewRequestWithContext(context.WithoutCancel(req.Context()), req.Method, m.target+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = req.Header.Clone()
	resp, err := m.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if mode == holdAfter {
		hold()
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

func (m *motoProxy) waitHeld(t *testing.T, want step) {
	t.Helper()
	select {
	case s := <-m.held:
		if s != want {
			t.Fatalf("the proxy held %s, want %s", s, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the proxy never held %s", want)
	}
}

// serverTap serves the emulator and records every access token in its answers.
type serverTap struct {
	next http.Handler
	mu   sync.Mutex
	seen []string
}

type tapWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *tapWriter) Write(p []byte) (int, error) { w.buf.Write(p); return w.ResponseWriter.Write(p) }

func (s *serverTap) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	tw := &tapWriter{ResponseWriter: w}
	s.next.ServeHTTP(tw, req)
	var g struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(tw.buf.Bytes(), &g) == nil && g.AccessToken != "" {
		s.mu.Lock()
		s.seen = append(s.seen, g.AccessToken)
		s.mu.Unlock()
	}
}

func (s *serverTap) tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}
