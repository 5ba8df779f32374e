package rig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Options configures a World. The zero value is one API client on the wire (moto and the
// emulator over HTTP), tokens that never expire, and real time.
type Options struct {
	// Memory builds the world in memory (the fake Secrets Manager, the emulator's Transport), as a
	// synctest bubble needs. Processes cannot reach such a world.
	Memory bool
	// Clock drives the emulator, the in-memory Secrets Manager and the engines. Nil means
	// time.Now: real time, or the bubble's inside synctest.
	Clock *fake.Clock
	// Lifetime of the tokens Clear issues; zero models an API client that never expires.
	Lifetime time.Duration
	// APIClients is the number of API clients, 1 (the default) or 2.
	APIClients int
	// DailyLimit is the rotator's own daily limit for the client the world builds; zero means
	// config.DefaultDailyLimit, the rotator's default.
	DailyLimit int
	// Emulator configures Clear beyond what the fields above set (its clock, lifetime and
	// secrets): its daily limit, token length, Retry-After, a fixed valid_till.
	Emulator emulator.Options
	// SMOptions apply to the SDK client the engines use on the wire, after the defaults: for
	// example an HTTP client that injects faults at the wire level. The test's own reads always
	// use a plain client.
	SMOptions []func(*secretsmanager.Options)
	// Share gives this world the Secrets Manager, the clock, the log buffer and the leak scan of
	// another one, as a second client of the same daemon or account has. It still gets its own
	// emulator, client secrets and token secret. Memory and Clock are taken from Share.
	Share *World
	// Name is the client's name; empty means "erp".
	Name string
	// Secrets are the API clients' secrets, in slot order, for a test that needs their shape
	// (Clear's are base64: letters, digits, / + =); empty means random ones. Their number is the
	// number of API clients when APIClients is zero.
	Secrets []string
}

// World is one client's surroundings. Its exported fields are set by New and must not be
// replaced.
type World struct {
	T testing.TB
	// Clock is Options.Clock; nil when the world runs on time.Now.
	Clock *fake.Clock
	// Emu is Clear, and ClearURL its base URL (on the wire, a real listener; in memory, a URL that
	// only the world's own Clear clients can reach).
	Emu      *emulator.Server
	ClearURL string
	// Moto is the moto_server of a world on the wire; nil in memory.
	Moto *mototest.Server
	// Fake is the Secrets Manager of a world in memory; nil on the wire.
	Fake *fake.SecretsManager
	// SM is the Secrets Manager without faults, for the test's own reads and writes.
	SM store.API
	// API is the Secrets Manager the world's engines use: SM behind the rig's fault hook.
	API *API
	// Secrets holds the API clients' secrets, in slot order.
	Secrets []string
	// TokenID is the token secret's name.
	TokenID string
	// Logs receives the logs of the world's engines; the leak scan reads it.
	Logs *proctest.Buffer

	name       string
	dailyLimit int
	memory     bool
	tap        *tap
	mux        *http.ServeMux
	scan       *scanner
}

// New builds a world for t; everything it starts stops when the test ends, and the leak scan
// runs then.
func New(t testing.TB, o Options) *World {
	t.Helper()
	if o.Share != nil {
		o.Memory, o.Clock = o.Share.memory, o.Share.Clock
	}
	w := &World{T: t, Clock: o.Clock, name: o.Name, dailyLimit: o.DailyLimit, memory: o.Memory}
	if w.name == "" {
		w.name = "erp"
	}
	if w.dailyLimit == 0 {
		w.dailyLimit = config.DefaultDailyLimit
	}
	n := max(o.APIClients, len(o.Secrets), 1)
	if n > 2 || len(o.Secrets) > 0 && len(o.Secrets) != n {
		t.Fatalf("rig: %d API clients and %d secrets; a client has one or two", n, len(o.Secrets))
	}
	w.Secrets = slices.Clone(o.Secrets)
	for i := len(w.Secrets); i < n; i++ {
		w.Secrets = append(w.Secrets, fmt.Sprintf("cs%d-%s", i+1, randomHex(20)))
	}

	eo := o.Emulator
	eo.Lifetime, eo.Secrets = o.Lifetime, slices.Clone(w.Secrets)
	if o.Clock != nil {
		eo.Now = o.Clock.Now
	}
	w.Emu = emulator.New(eo)
	t.Cleanup(w.Emu.Close) // releases requests held by Delay and Hang faults
	w.mux = http.NewServeMux()
	w.mux.Handle("/", w.Emu)

	var clearTransport http.RoundTripper
	switch {
	case o.Memory:
		w.ClearURL = "http://127.0.0.1"
		clearTransport = handlerTransport{w.mux}
	default:
		srv := httptest.NewServer(w.mux)
		t.Cleanup(srv.Close)
		w.ClearURL = srv.URL
		clearTransport = http.DefaultTransport
	}
	w.tap = &tap{next: clearTransport, now: w.Now, slots: w.slotOf}

	switch {
	case o.Share != nil:
		w.Moto, w.Fake, w.SM, w.API, w.Logs, w.scan = o.Share.Moto, o.Share.Fake, o.Share.SM, o.Share.API, o.Share.Logs, o.Share.scan
	case o.Memory:
		w.Fake = fake.NewSecretsManager(w.clockFunc())
		w.SM = w.Fake
		w.API = &API{Next: w.Fake}
	default:
		w.Moto = mototest.Shared(t)
		w.SM = w.Moto.Client()
		w.API = &API{Next: w.Moto.Client(o.SMOptions...)}
	}
	if o.Share == nil {
		w.Logs = &proctest.Buffer{}
		w.scan = &scanner{t: t, logs: w.Logs}
		t.Cleanup(w.scan.run)
	}
	if o.Memory {
		w.TokenID = "tokens/" + w.name
		if o.Share != nil {
			w.TokenID = fmt.Sprintf("tokens/%s-%s", w.name, randomHex(4))
		}
	} else {
		w.TokenID = mototest.Name(t, w.name+"-token")
	}
	w.scan.add(w)
	return w
}

// Now is the world's time: its clock's, or time.Now.
func (w *World) Now() time.Time {
	if w.Clock != nil {
		return w.Clock.Now()
	}
	return time.Now()
}

func (w *World) clockFunc() func() time.Time {
	if w.Clock != nil {
		return w.Clock.Now
	}
	return nil
}

func (w *World) slotOf(secret string) int {
	for i, s := range w.Secrets {
		if s == secret {
			return i + 1
		}
	}
	return 0
}

// Handle adds a route to the Clear server, next to the emulator's (for example a business
// endpoint an ERP calls with the token).
func (w *World) Handle(pattern string, h http.Handler) { w.mux.Handle(pattern, h) }

// BeforeClear sets a function that every Clear request made by the world's clients passes
// through first (to hold it, or to count it); nil removes it.
func (w *World) BeforeClear(f func(*http.Request)) {
	w.tap.mu.Lock()
	w.tap.before = f
	w.tap.mu.Unlock()
}

// ClearHTTPClient is the HTTP client of the world's Clear clients: it reaches the emulator and
// records every request (see Requests).
func (w *World) ClearHTTPClient() *http.Client {
	return &http.Client{Transport: w.tap, Timeout: clear.DefaultTimeout}
}

// Client returns the configured client, as a rotator process would build it from the world's
// settings: its client secrets given literally, and the world's daily limit.
func (w *World) Client() *rotation.Client {
	w.T.Helper()
	cc, err := clear.NewClient(w.ClearURL, w.ClearHTTPClient())
	if err != nil {
		w.T.Fatal(err)
	}
	c := &rotation.Client{Clear: cc, Client: config.Client{
		Name: w.name, BaseURL: w.ClearURL, ClientSecret: clear.NewClientSecret(w.Secrets[0]),
		TokenSecretID: w.TokenID, DailyLimit: w.dailyLimit,
	}}
	if len(w.Secrets) > 1 {
		c.ClientSecret2 = clear.NewClientSecret(w.Secrets[1])
	}
	return c
}

// Logger returns a JSON logger at debug level into the world's log buffer.
func (w *World) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(w.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Engine returns an engine on the world's API (with its fault hook), clock and logs, with a fixed
// jitter (backoff delays are 0.75 of nominal) and short pauses between token write attempts.
// Callers may change its fields before first use, for example Store to put a faulted client in
// front, or ClearTimeout.
func (w *World) Engine(owner string) *rotation.Engine {
	return rotation.NewEngine(rotation.Engine{
		Store: store.New(w.API), Now: w.clockFunc(), Rand: func() float64 { return 0.5 },
		Log: w.Logger(), Owner: owner, WriteRetry: time.Millisecond,
	})
}

// Requests returns the Clear token requests the world's clients made, in order.
func (w *World) Requests() []Request { return w.tap.log() }

// PeakRequests is the most Clear requests the world's clients had in flight at once.
func (w *World) PeakRequests() int {
	w.tap.mu.Lock()
	defer w.tap.mu.Unlock()
	return w.tap.peak
}

// Issued is the number of tokens Clear issued to the world's API clients, from any caller.
func (w *World) Issued() int {
	n := 0
	for _, s := range w.Secrets {
		n += w.Emu.Issued(s)
	}
	return n
}

// ClearRequests is the number of token requests Clear received with the world's client secrets,
// from any caller, its own clients and processes alike.
func (w *World) ClearRequests() int {
	n := 0
	for _, s := range w.Secrets {
		n += w.Emu.Requests(s)
	}
	return n
}

// Read returns the version of the token secret that carries stage, through SM (no faults); ok
// is false when there is none.
func (w *World) Read(stage string) (value, versionID string, ok bool) {
	w.T.Helper()
	v, err := store.New(w.SM).Read(context.Background(), w.TokenID, stage)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", false
	}
	if err != nil {
		w.T.Fatalf("rig: reading %s of %s: %v", stage, w.TokenID, err)
	}
	return v.Value, v.ID, true
}

// Current returns the token document in AWSCURRENT and its version id; ok is false when
// AWSCURRENT is missing or holds no token document (the placeholder of a new secret). It records
// the token for the leak scan.
func (w *World) Current() (tok document.Token, versionID string, ok bool) {
	w.T.Helper()
	v, id, found := w.Read(rotation.CurrentStage)
	if !found {
		return document.Token{}, "", false
	}
	tok, err := document.ParseToken([]byte(v))
	if err != nil {
		return document.Token{}, id, false
	}
	w.scan.token(tok.AccessToken.Reveal())
	return tok, id, true
}

// MustCurrent is Current, failing the test unless AWSCURRENT holds a token document.
func (w *World) MustCurrent() (document.Token, string) {
	w.T.Helper()
	tok, id, ok := w.Current()
	if !ok {
		w.T.Fatalf("rig: AWSCURRENT of %s holds no token document", w.TokenID)
	}
	return tok, id
}

// Live reports whether AWSCURRENT holds a token Clear accepts now.
func (w *World) Live() bool {
	w.T.Helper()
	tok, _, ok := w.Current()
	return ok && w.Emu.Live(tok.AccessToken.Reveal())
}

// State returns the rotator's state document and its version id; ok is false when there is none.
// A state that does not parse fails the test.
func (w *World) State() (st document.State, versionID string, ok bool) {
	w.T.Helper()
	v, id, found := w.Read(document.StateStage)
	if !found {
		return document.State{}, "", false
	}
	st, err := document.ParseState([]byte(v))
	if err != nil {
		w.T.Fatalf("rig: the state document does not parse: %v", err)
	}
	return st, id, true
}

// Versions returns the token secret's versions with their stages, oldest first where the backend
// says (the fake does; moto lists them in its own order).
func (w *World) Versions() []Version {
	if w.Fake != nil {
		var out []Version
		for _, v := range w.Fake.Versions(w.TokenID) {
			out = append(out, Version{ID: v.ID, Value: v.Value, Stages: v.Stages})
		}
		return out
	}
	if w.motoSecretMissing() {
		return nil
	}
	ctx := context.Background()
	sm := w.Moto.Client()
	list, err := sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(w.TokenID), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		return nil
	}
	var out []Version
	for _, v := range list.Versions {
		gv, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(w.TokenID), VersionId: v.VersionId})
		if err != nil {
			continue
		}
		out = append(out, Version{ID: aws.ToString(v.VersionId), Value: aws.ToString(gv.SecretString), Stages: v.VersionStages})
	}
	return out
}

// motoSecretMissing reports whether moto certainly has no token secret. moto answers
// ListSecretVersionIds for a missing secret with a 500, which the SDK retries for seconds; tests
// that never store a token (usage errors, refused configurations) would pay that in their leak
// scan. DescribeSecret answers a proper ResourceNotFoundException at once.
func (w *World) motoSecretMissing() bool {
	_, err := w.Moto.Client().DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(w.TokenID)})
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// Version is one version of the token secret.
type Version struct {
	ID     string
	Value  string
	Stages []string
}

// StoredTokens returns the access tokens of every token document in the token secret's versions.
func (w *World) StoredTokens() []string {
	var toks []string
	for _, v := range w.Versions() {
		if d, err := document.ParseToken([]byte(v.Value)); err == nil {
			toks = append(toks, d.AccessToken.Reveal())
		}
	}
	return toks
}

// Record adds captured outputs (a command's stdout, an error's text) to what the leak scan reads.
func (w *World) Record(outputs ...string) { w.scan.output(outputs...) }

// RecordFrom adds a buffer whose contents the leak scan reads when the test ends.
func (w *World) RecordFrom(b interface{ String() string }) { w.scan.source(b) }

// Hide adds values the leak scan must not find (a token the test obtained elsewhere).
func (w *World) Hide(secrets ...string) {
	for _, s := range secrets {
		w.scan.token(s)
	}
}

// Await polls cond every 20 ms until it holds, failing the test after timeout (real time).
func Await(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scanner is the leak scan of a world and the worlds that share it.
type scanner struct {
	t       testing.TB
	logs    *proctest.Buffer
	mu      sync.Mutex
	worlds  []*World
	outputs []string
	sources []interface{ String() string }
	tokens  []string
}

func (s *scanner) add(w *World) { s.mu.Lock(); s.worlds = append(s.worlds, w); s.mu.Unlock() }
func (s *scanner) output(o ...string) {
	s.mu.Lock()
	s.outputs = append(s.outputs, o...)
	s.mu.Unlock()
}
func (s *scanner) source(b interface{ String() string }) {
	s.mu.Lock()
	s.sources = append(s.sources, b)
	s.mu.Unlock()
}
func (s *scanner) token(tok string) {
	if tok == "" {
		return
	}
	s.mu.Lock()
	s.tokens = append(s.tokens, tok)
	s.mu.Unlock()
}

// run fails the test if any client secret, or any token that Clear delivered to the world's
// clients, that was stored, or that the test saw, appears in the captured logs and outputs. One
// pass over each text for all the values at once: a thousand clients store thousands of tokens.
func (s *scanner) run() {
	s.mu.Lock()
	worlds, secrets := slices.Clone(s.worlds), slices.Clone(s.tokens)
	texts := append(slices.Clone(s.outputs), s.logs.String())
	for _, b := range s.sources {
		texts = append(texts, b.String())
	}
	s.mu.Unlock()
	for _, w := range worlds {
		secrets = append(secrets, w.Secrets...)
		secrets = append(secrets, w.tap.tokens()...)
		secrets = append(secrets, w.StoredTokens()...)
	}
	// Client secrets are also looked for in the other spellings an echo gives them (case, URL
	// encoding, zero-width characters, a piece cut short): the one redactor's own matcher.
	var clientSecrets []string
	for _, w := range worlds {
		clientSecrets = append(clientSecrets, w.Secrets...)
	}
	spelled := secret.NewMatcher(clientSecrets...)
	for _, text := range texts {
		if spelled.Reveals(text) {
			// Show where, redacted: the first difference between the text and its redaction.
			r, i := spelled.Redact(text), 0
			for i < len(r) && i < len(text) && r[i] == text[i] {
				i++
			}
			s.t.Errorf("rig: a client secret leaked into captured output, in some spelling: …%s…", r[max(0, i-150):min(len(r), i+150)])
		}
	}
	var pairs []string
	for _, v := range secrets {
		if v != "" {
			pairs = append(pairs, v, "")
		}
	}
	if len(pairs) == 0 {
		return
	}
	r := strings.NewReplacer(pairs...)
	for _, text := range texts {
		if r.Replace(text) != text {
			// Name the culprit without printing it.
			for _, v := range secrets {
				if v != "" && strings.Contains(text, v) {
					s.t.Errorf("rig: a secret (%d chars, starting %q) leaked into captured output", len(v), v[:min(4, len(v))])
					break
				}
			}
		}
	}
}

// handlerTransport serves requests with a handler in-process, through the emulator's Transport
// when the handler is the emulator, so that synctest bubbles never see network I/O.
type handlerTransport struct{ mux *http.ServeMux }

func (h handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if e, ok := handlerOf(h.mux, req).(*emulator.Server); ok {
		return e.Transport().RoundTrip(req)
	}
	rec := httptest.NewRecorder()
	in := req.Clone(req.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	h.mux.ServeHTTP(rec, in)
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func handlerOf(mux *http.ServeMux, req *http.Request) http.Handler {
	h, _ := mux.Handler(req)
	return h
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
