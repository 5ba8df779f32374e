package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// procWorld is a rig.World on the wire whose rotator processes reach moto through a proxy that
// can hold chosen calls (proxy), against the Clear emulator on the real clock. The world records
// every token Clear serves (World.RecordServed), so that the leak scan knows the tokens killed
// processes took with them.
type procWorld struct {
	*rig.World
	proxy    *motoProxy
	proxyURL string
}

func newProcWorld(t *testing.T) *procWorld {
	t.Helper()
	w := rig.New(t, rig.Options{Name: "default", Lifetime: time.Hour})
	w.RecordServed()
	p := &procWorld{World: w, proxy: newMotoProxy(w.Moto.URL)}
	psrv := httptest.NewServer(p.proxy)
	t.Cleanup(psrv.Close)
	t.Cleanup(p.proxy.releaseAll)
	p.proxyURL = psrv.URL
	return p
}

// env is what the processes get beyond the world's environment: the proxy as their Secrets
// Manager, and debug logs.
func (p *procWorld) env() []string {
	return []string{"AWS_ENDPOINT_URL=" + p.proxyURL, "LOG_LEVEL=debug"}
}

// run runs the rotator's test build to completion.
func (p *procWorld) run(args ...string) rig.Result {
	p.T.Helper()
	return p.RunEnv(proctest.TestRotator(p.T), p.env(), args...)
}

// start starts the rotator's test build without an ops listener; Kill SIGKILLs it.
func (p *procWorld) start(args ...string) *rig.Proc {
	p.T.Helper()
	return p.Start(proctest.TestRotator(p.T), append(p.env(), "ROTATOR_HTTP_ADDR="), args...)
}

func wantExit(t *testing.T, r rig.Result, code int, contains string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Stdout+r.Stderr, contains) {
		t.Fatalf("exit %d (want %d), output lacks %q:\n%s", r.Code, code, contains, r.Output())
	}
}

// makeDue rewrites the stored token document so that it is due (issued age ago, valid for an
// hour from then), keeping the token itself, which Clear still considers live for an hour.
func (p *procWorld) makeDue(age time.Duration) {
	p.T.Helper()
	tok, _ := p.MustCurrent()
	now := time.Now().UTC()
	tok.IssuedAt = now.Add(-age)
	vt := tok.IssuedAt.Add(time.Hour)
	tok.ValidTill = &vt
	body, err := document.MarshalToken(tok)
	if err != nil {
		p.T.Fatal(err)
	}
	if _, err := p.SM.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(p.TokenID), SecretString: aws.String(string(body))}); err != nil {
		p.T.Fatal(err)
	}
}

// expireLease simulates the passage of the lease for a claim left by a killed process: it writes
// the state again with the claim's lease_until in the past, as a new ROTATOR_STATE version with a
// fresh ClientRequestToken. Everything else in the state (the count, the claim's base) stays as
// the killed process left it.
func (p *procWorld) expireLease() {
	p.T.Helper()
	st := state(p.World)
	if st.Claim == nil {
		p.T.Fatal("there is no claim to expire")
	}
	st.Claim.LeaseUntil = time.Now().UTC().Add(-time.Second)
	body, err := document.MarshalState(st)
	if err != nil {
		p.T.Fatal(err)
	}
	if _, err := p.SM.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(p.TokenID), SecretString: aws.String(string(body)),
		VersionStages: []string{document.StateStage}, ClientRequestToken: aws.String(uuid()),
	}); err != nil {
		p.T.Fatal(err)
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
	refuseOnce                      // answers the first such call AccessDeniedException, unapplied, then disarms
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
	if mode == refuseOnce {
		m.mu.Lock()
		delete(m.rules, s)
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", "AccessDeniedException")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"AccessDeniedException","message":"injected: not authorized to perform this action"}`)
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
