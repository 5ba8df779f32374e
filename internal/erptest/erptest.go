// Package erptest runs what an ERP sees in production, for the tests and benchmarks of token
// consumers (cleartoken, the examples, the ERP benchmark): moto as Secrets Manager, the Clear
// emulator with a business endpoint that checks the token, and the real rotator as a process
// (`rotator run`) keeping the token fresh. The rotator reaches moto through a proxy that can hold
// back its token writes, which models a rotator slow to store the token Clear has just issued
// (the previous one is already revoked then).
package erptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// Paths of the business endpoints, below Rig.ClearURL.
const (
	// PingPath is the emulator's own GET endpoint: 200 for a live token, 401 otherwise.
	PingPath = "/_emulator/api/ping"
	// InvoicePath takes a POST with a body, reads all of it, then checks the token like PingPath:
	// a request whose body the client cannot send twice.
	InvoicePath = "/_erptest/api/invoice"
)

// Options configures a Rig.
type Options struct {
	// Lifetime of Clear's tokens; the rotator renews them when a third is left. Zero means 20 s.
	Lifetime time.Duration
	// RotatorEnv is added to the rotator's environment after the defaults, so it can override
	// them (ROTATOR_SCHEDULE, ROTATOR_RENEW_BEFORE) or add to them (CLEAR_CLIENT_SECRET_2 for the
	// two-API-client mode: the secret is then also registered with the emulator, see Secrets).
	RotatorEnv []string
	// Secrets are extra client secrets the emulator knows, for example a second API client's.
	Secrets []string
	// NoRotator leaves the rotator unstarted; the test stores what it wants in the secret.
	NoRotator bool
}

// Rig is one ERP's world: a token secret in moto, Clear, and the rotator serving that secret.
type Rig struct {
	Moto          *mototest.Server
	SM            *secretsmanager.Client // straight to moto, as an ERP reads it
	Emu           *emulator.Server
	ClearURL      string // the emulator's base URL
	TokenSecretID string
	ClientSecret  string

	tb          testing.TB
	writeDelay  atomic.Int64 // nanoseconds to hold back the rotator's token writes
	heldWrites  atomic.Int64
	invoices    atomic.Int64
	rotatorOut  *proctest.Buffer
	rotator     *exec.Cmd
	rotatorDone chan struct{}
	secrets     []string

	mu     sync.Mutex
	tokens map[string]bool // every token the rig has seen, for the leak scan
}

// Start starts the rig and, unless o.NoRotator, waits until the rotator has stored a live token.
// Everything stops when the test ends.
func Start(tb testing.TB, o Options) *Rig {
	tb.Helper()
	if o.Lifetime == 0 {
		o.Lifetime = 20 * time.Second
	}
	r := &Rig{
		tb:            tb,
		Moto:          mototest.Shared(tb),
		TokenSecretID: mototest.Name(tb, "token"),
		ClientSecret:  "erptest-client-secret-" + strings.ReplaceAll(mototest.Name(tb, "cs"), "/", "_"),
		tokens:        map[string]bool{},
	}
	r.SM = r.Moto.Client()
	r.secrets = append([]string{r.ClientSecret}, o.Secrets...)
	for _, kv := range o.RotatorEnv {
		if v, ok := strings.CutPrefix(kv, "CLEAR_CLIENT_SECRET_2="); ok && v != "" {
			r.secrets = append(r.secrets, v)
		}
	}
	r.Emu = emulator.New(emulator.Options{Lifetime: o.Lifetime, Secrets: r.secrets})
	mux := http.NewServeMux()
	mux.Handle("/", r.Emu)
	mux.HandleFunc("POST "+InvoicePath, r.handleInvoice)
	clearSrv := httptest.NewServer(mux)
	tb.Cleanup(func() { r.Emu.Close(); clearSrv.Close() })
	r.ClearURL = clearSrv.URL

	if o.NoRotator {
		return r
	}
	motoURL, err := url.Parse(r.Moto.URL)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := httptest.NewServer(r.delaying(httputil.NewSingleHostReverseProxy(motoURL)))
	tb.Cleanup(proxy.Close)

	env := proctest.Env(
		"AWS_ENDPOINT_URL="+proxy.URL, "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"CLEAR_BASE_URL="+r.ClearURL, "CLEAR_CLIENT_SECRET="+r.ClientSecret,
		"ROTATOR_TOKEN_SECRET_ID="+r.TokenSecretID, "ROTATOR_SCHEDULE=@every 1s",
		"ROTATOR_DAILY_LIMIT=250", "ROTATOR_HTTP_ADDR=", "LOG_FORMAT=json", "LOG_LEVEL=debug",
	)
	bin := proctest.TestRotator(tb)
	r.rotatorOut = &proctest.Buffer{}
	r.rotator = exec.Command(bin, "run")
	r.rotator.Env = append(env, o.RotatorEnv...)
	r.rotator.Stdout, r.rotator.Stderr = r.rotatorOut, r.rotatorOut
	r.rotator.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.rotator.Start(); err != nil {
		tb.Fatal(err)
	}
	r.rotatorDone = make(chan struct{})
	go func() { _ = r.rotator.Wait(); close(r.rotatorDone) }()
	tb.Cleanup(func() {
		_ = r.rotator.Process.Kill()
		<-r.rotatorDone
	})
	r.Await("the rotator's first live token", 30*time.Second, func() bool {
		tok, err := r.Current(context.Background())
		return err == nil && r.Emu.Live(tok)
	})
	return r
}

// delaying holds back PutSecretValue calls that store a token document (not the rotator's state)
// by the current write delay: Clear has issued the token, and revoked the previous one, already.
func (r *Rig) delaying(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if d := time.Duration(r.writeDelay.Load()); d > 0 && strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".PutSecretValue") {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte("access_token")) {
				r.heldWrites.Add(1)
				select {
				case <-time.After(d):
				case <-req.Context().Done():
					return
				}
			}
		}
		next.ServeHTTP(w, req)
	})
}

// SetTokenWriteDelay makes the rotator's token writes reach Secrets Manager d late from now on.
func (r *Rig) SetTokenWriteDelay(d time.Duration) { r.writeDelay.Store(int64(d)) }

// HeldWrites is the number of token writes held back so far.
func (r *Rig) HeldWrites() int { return int(r.heldWrites.Load()) }

// Invoices is the number of requests InvoicePath has answered.
func (r *Rig) Invoices() int { return int(r.invoices.Load()) }

func (r *Rig) handleInvoice(w http.ResponseWriter, req *http.Request) {
	r.invoices.Add(1)
	n, _ := io.Copy(io.Discard, req.Body)
	w.Header().Set("Content-Type", "application/json")
	tok := req.Header.Get(clear.HeaderAuthToken)
	if tok == "" || !r.Emu.Live(tok) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"error_code":"CLI-TOK-002","error_message":"Invalid, revoked or expired auth token.","error_source":"CLEAR","error_id":null}]}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "bytes": n})
}

// Issued is the number of tokens Clear has issued to the rotator's API client(s): one per rotation.
func (r *Rig) Issued() int {
	n := 0
	for _, s := range r.secrets {
		n += r.Emu.Issued(s)
	}
	return n
}

// Current reads AWSCURRENT's token as an ERP does; it records the token for the leak scan.
func (r *Rig) Current(ctx context.Context) (string, error) {
	out, err := r.SM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.TokenSecretID), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		return "", err
	}
	var doc struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &doc); err != nil || doc.AccessToken == "" {
		return "", fmt.Errorf("no token in %s yet", r.TokenSecretID)
	}
	r.SawToken(doc.AccessToken)
	return doc.AccessToken, nil
}

// SawToken adds tok to the tokens the leak scan looks for.
func (r *Rig) SawToken(tok string) {
	r.mu.Lock()
	r.tokens[tok] = true
	r.mu.Unlock()
}

// Env is the environment a consumer process needs to reach Secrets Manager (moto, directly) and
// Clear: the AWS variables plus CLEAR_BASE_URL and CLEAR_TOKEN_SECRET_ID.
func (r *Rig) Env() []string {
	return append(r.Moto.Env(), "CLEAR_BASE_URL="+r.ClearURL, "CLEAR_TOKEN_SECRET_ID="+r.TokenSecretID)
}

// Await polls cond every 50 ms until it holds, failing the test after timeout or if the rotator
// has exited.
func (r *Rig) Await(what string, timeout time.Duration, cond func() bool) {
	r.tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if r.rotatorDone != nil {
			select {
			case <-r.rotatorDone:
				r.tb.Fatalf("the rotator exited while waiting for %s:\n%s", what, r.RotatorOutput())
			default:
			}
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("waited %s for %s; rotator output:\n%s", timeout, what, r.RotatorOutput())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RotatorOutput is what the rotator has logged so far.
func (r *Rig) RotatorOutput() string {
	if r.rotatorOut == nil {
		return ""
	}
	return r.rotatorOut.String()
}

// AssertNoLeak fails the test if a client secret or any token the rig has seen (plus extra)
// appears in outputs or in the rotator's log.
func (r *Rig) AssertNoLeak(outputs []string, extra ...string) {
	r.tb.Helper()
	r.mu.Lock()
	secrets := append(append([]string{}, r.secrets...), extra...)
	for tok := range r.tokens {
		secrets = append(secrets, tok)
	}
	r.mu.Unlock()
	proctest.AssertNoLeak(r.tb, append(outputs, r.RotatorOutput()), secrets...)
}
