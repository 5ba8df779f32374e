package rig

// What an ERP sees in production, for the tests and benchmarks of token consumers (cleartoken, the
// examples, the ERP benchmark): a world on the wire whose Clear server also has a business
// endpoint, and the real rotator as a daemon keeping the token fresh. The daemon reaches moto
// through a proxy that can hold back its token writes, which models a rotator slow to store the
// token Clear has just issued (the previous one is already revoked then).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

// Paths of the business endpoints on a world's Clear server, below ClearURL.
const (
	// PingPath is the emulator's own GET endpoint: 200 for a live token, 401 otherwise.
	PingPath = "/_emulator/api/ping"
	// InvoicePath takes a POST with a body, reads all of it, then checks the token like PingPath:
	// a request whose body the client cannot send twice. See World.HandleInvoices.
	InvoicePath = "/_rig/api/invoice"
)

// ERPOptions configures an ERP's world.
type ERPOptions struct {
	// Lifetime of Clear's tokens. Zero means FastLifetime with FastRenewBefore (unless RenewBefore
	// is set); a negative lifetime means tokens that never expire, which the daemon then never
	// rotates on its own.
	Lifetime time.Duration
	// RenewBefore is the rotator's ROTATOR_RENEW_BEFORE; zero leaves the rotator's default (a third
	// of the lifetime). Half the lifetime or more makes the rotator renew as early as it may, once
	// half the lifetime has passed.
	RenewBefore time.Duration
	// APIClients is 1 (the default) or 2, the rotator's two-API-client mode.
	APIClients int
	// RotatorEnv is added to the rotator's environment after the rig's, so it can override it.
	RotatorEnv []string
}

// The default rotation of an ERP's world, the fastest the test build renews at steadily: Clear's
// valid_till has whole seconds, so a token lives between 2.5 and 3.5 s and is due after half of
// that; the daemon looks every second (ROTATOR_SCHEDULE=@every 1s), so it renews each token on the
// second tick after its issue. That is a rotation every 2 s, at least half a second before the
// token expires, as long as a round takes less than a quarter of a second.
const (
	FastLifetime    = 3500 * time.Millisecond
	FastRenewBefore = 2 * time.Second
)

// ERP is one ERP's world on the wire: the token secret in moto, Clear with the business endpoints
// (PingPath, InvoicePath), and `rotator run` (the test build, every second) serving that secret.
// Everything else, such as Current, Live, Issued, the leak scan and the processes' environment,
// is the World's.
type ERP struct {
	*World
	// Proc is the rotator daemon. Its Await fails the test if the daemon exits while waiting.
	Proc *Proc
	// Invoices is the endpoint at InvoicePath.
	Invoices *Invoices

	writeDelay atomic.Int64 // nanoseconds to hold back the daemon's token writes
	heldWrites atomic.Int64
}

// NewERP starts an ERP's world and its rotator daemon, and waits until the daemon has stored a
// live token. Everything stops when the test ends.
func NewERP(tb testing.TB, o ERPOptions) *ERP {
	tb.Helper()
	if o.Lifetime == 0 {
		o.Lifetime = FastLifetime
		if o.RenewBefore == 0 {
			o.RenewBefore = FastRenewBefore
		}
	}
	// A daily limit with room for the many short rotations of a process test (Clear's is 288).
	e := &ERP{World: New(tb, Options{Lifetime: o.Lifetime, APIClients: o.APIClients, DailyLimit: 250})}
	e.Invoices = e.HandleInvoices()

	motoURL, err := url.Parse(e.Moto.URL)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := httptest.NewServer(e.holding(httputil.NewSingleHostReverseProxy(motoURL)))
	tb.Cleanup(proxy.Close) // after the daemon is killed (cleanups run last first)
	env := []string{"AWS_ENDPOINT_URL=" + proxy.URL}
	if o.RenewBefore > 0 {
		env = append(env, "ROTATOR_RENEW_BEFORE="+o.RenewBefore.String())
	}
	e.Proc = e.Daemon(append(env, o.RotatorEnv...)...)
	e.Proc.Await("the rotator's first live token", 30*time.Second, e.Live)
	return e
}

// holding holds back PutSecretValue calls that store a token document (not the rotator's state)
// by the current write delay: Clear has issued the token, and revoked the previous one, already.
func (e *ERP) holding(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if d := time.Duration(e.writeDelay.Load()); d > 0 && strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".PutSecretValue") {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte("access_token")) {
				e.heldWrites.Add(1)
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

// SetTokenWriteDelay makes the daemon's token writes reach Secrets Manager d late from now on.
// Callers refused meanwhile pick the new token up at their next backoff read after it lands, so
// the token must stay live that long: choose a Lifetime whose half exceeds d plus that read's
// step (cleartoken's wait re-reads at 0.1, 0.3, 0.7, 1.5, 3.1 s...).
func (e *ERP) SetTokenWriteDelay(d time.Duration) { e.writeDelay.Store(int64(d)) }

// HeldWrites is the number of token writes held back so far.
func (e *ERP) HeldWrites() int { return int(e.heldWrites.Load()) }

// ConsumerEnv is the environment of a token consumer process (an ERP): the AWS variables that
// reach moto directly, CLEAR_BASE_URL and ROTATOR_TOKEN_SECRET_ID, and no client secret.
func (e *ERP) ConsumerEnv() []string {
	return proctest.Env(append(e.Moto.Env(), "CLEAR_BASE_URL="+e.ClearURL, "ROTATOR_TOKEN_SECRET_ID="+e.TokenID)...)
}

// Invoices is the business endpoint at InvoicePath: it reads the whole body, then answers 200
// with the number of bytes read for a live token, and Clear's 401 (CLI-TOK-002) otherwise.
type Invoices struct {
	w *World
	n atomic.Int64
}

// HandleInvoices mounts the endpoint at InvoicePath on the world's Clear server.
func (w *World) HandleInvoices() *Invoices {
	i := &Invoices{w: w}
	w.Handle("POST "+InvoicePath, i)
	return i
}

// Count is the number of requests the endpoint has answered.
func (i *Invoices) Count() int { return int(i.n.Load()) }

func (i *Invoices) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	i.n.Add(1)
	n, _ := io.Copy(io.Discard, req.Body)
	w.Header().Set("Content-Type", "application/json")
	tok := req.Header.Get(clear.HeaderAuthToken)
	if tok == "" || !i.w.Emu.Live(tok) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"error_code":"CLI-TOK-002","error_message":"Invalid, revoked or expired auth token.","error_source":"CLEAR","error_id":null}]}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "bytes": n})
}

// Transport is an http.RoundTripper to the world's Clear server (the emulator and the routes added
// with Handle) for a token consumer's business calls: unlike ClearHTTPClient's, it records nothing
// as a token request. In memory it serves requests in-process, so it works inside a synctest
// bubble.
func (w *World) Transport() http.RoundTripper {
	if w.memory {
		return handlerTransport{w.mux}
	}
	return http.DefaultTransport
}

// Issue asks Clear for a new token with the first API client, as a rotator would, and stores
// nothing: Clear has revoked the previous token, and the rotator has not stored the new one yet.
// The token is known to the leak scan. It may be called from any goroutine; a failure is an error
// of the test and returns "".
func (w *World) Issue() string { return w.IssueWith(1) }

// IssueWith is Issue with API client slot (1 or 2): someone outside the rotator asking Clear with
// that API client's secret, which revokes the token that API client issued last.
func (w *World) IssueWith(slot int) string {
	if slot < 1 || slot > len(w.Secrets) {
		w.T.Errorf("rig: no API client %d (the world has %d)", slot, len(w.Secrets))
		return ""
	}
	c := w.Client()
	g, err := c.Clear.Token(context.Background(), clear.NewClientSecret(w.Secrets[slot-1]))
	if err != nil {
		w.T.Errorf("rig: Clear issued no token: %v", err)
		return ""
	}
	return g.AccessToken.Reveal()
}

// Store writes value as a new AWSCURRENT version of the token secret through SM (no faults),
// creating the secret first if needed, and returns the version id. It may be called from any
// goroutine; a failure is an error of the test and returns "".
func (w *World) Store(value string) string {
	return w.StoreInput(&secretsmanager.PutSecretValueInput{SecretString: aws.String(value)})
}

// StoreToken writes a token document for tok, as the rotator stores it, with Store.
func (w *World) StoreToken(tok string) string {
	doc, err := document.MarshalToken(document.Token{AccessToken: clear.NewAccessToken(tok), IssuedAt: w.Now(), Client: w.name})
	if err != nil {
		panic(err)
	}
	w.scan.token(tok)
	return w.Store(string(doc))
}

// StoreInput is Store for any value: in is sent with the token secret's id filled in, as a
// CreateSecret when the secret does not exist yet (a binary value, say).
func (w *World) StoreInput(in *secretsmanager.PutSecretValueInput) string {
	ctx := context.Background()
	in.SecretId = aws.String(w.TokenID)
	out, err := w.SM.PutSecretValue(ctx, in)
	if err == nil {
		return aws.ToString(out.VersionId)
	}
	if _, missing := errors.AsType[*types.ResourceNotFoundException](err); !missing {
		w.T.Errorf("rig: storing a version of %s: %v", w.TokenID, err)
		return ""
	}
	created, cerr := w.SM.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: in.SecretId, SecretString: in.SecretString, SecretBinary: in.SecretBinary,
	})
	if cerr != nil {
		w.T.Errorf("rig: creating %s: %v (the put: %v)", w.TokenID, cerr, err)
		return ""
	}
	return aws.ToString(created.VersionId)
}
