package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// world is one client's world inside a synctest bubble: the SDK-level in-memory Secrets Manager
// (wrapped by the real store), the Clear emulator reached in memory through its Transport, and
// the bubble's clock for both. Every Clear request is recorded, with the token it delivered, so
// that the fault tests can measure spacing and check that AWSCURRENT holds the latest token.
type world struct {
	t       *testing.T
	sm      *fake.SecretsManager
	emu     *emulator.Server
	secrets []string // one per API client, slot order
	tokenID string
	logs    *proctest.Buffer

	mu       sync.Mutex
	requests []clearRequest
}

// clearRequest is one request Clear received: when, with which API client, and the token it
// delivered ("" when none reached the caller).
type clearRequest struct {
	at    time.Time
	slot  int
	token string
}

// newWorld must be called inside a synctest bubble. slots is the number of API clients (1 or 2).
func newWorld(t *testing.T, opts emulator.Options, slots int) *world {
	w := &world{t: t, sm: fake.NewSecretsManager(nil), tokenID: "erp/clear-token", logs: &proctest.Buffer{}}
	for i := range slots {
		w.secrets = append(w.secrets, fmt.Sprintf("bubble-client-secret-%d-0123456789", i+1))
	}
	opts.Secrets = w.secrets
	w.emu = emulator.New(opts)
	t.Cleanup(w.emu.Close)
	t.Cleanup(func() {
		var toks []string
		w.mu.Lock()
		for _, r := range w.requests {
			if r.token != "" {
				toks = append(toks, r.token)
			}
		}
		w.mu.Unlock()
		proctest.AssertNoLeak(t, []string{w.logs.String()}, append(toks, w.secrets...)...)
	})
	return w
}

// client returns the configured client as a rotator process would build it.
func (w *world) client(dailyLimit int) *rotation.Client {
	cc, err := clear.NewClient("http://127.0.0.1", &http.Client{Transport: &worldClear{w: w}})
	if err != nil {
		w.t.Fatal(err)
	}
	c := &rotation.Client{Name: "erp", BaseURL: "http://127.0.0.1", Clear: cc, ClientSecret: clear.NewClientSecret(w.secrets[0]),
		TokenSecretID: w.tokenID, DailyLimit: dailyLimit}
	if len(w.secrets) > 1 {
		c.ClientSecret2 = clear.NewClientSecret(w.secrets[1])
	}
	return c
}

// engine returns an engine on api (nil: the shared fake, unfaulted) with the given Clear timeout.
func (w *world) engine(owner string, api store.API, clearTimeout time.Duration) *rotation.Engine {
	if api == nil {
		api = w.sm
	}
	return &rotation.Engine{Store: store.New(api), Owner: owner, ClearTimeout: clearTimeout, Rand: func() float64 { return 0.5 },
		Log: slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// current returns the token document in AWSCURRENT, if there is one.
func (w *world) current() (document.Token, bool) {
	v, ok := w.sm.Stage(w.tokenID, rotation.CurrentStage)
	if !ok {
		return document.Token{}, false
	}
	tok, err := document.ParseToken([]byte(v.Value))
	return tok, err == nil
}

// live reports whether AWSCURRENT holds a token Clear still accepts.
func (w *world) live() bool {
	tok, ok := w.current()
	return ok && w.emu.Live(tok.AccessToken.Reveal())
}

func (w *world) log() []clearRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.requests)
}

// worldClear is the path to the emulator: its in-memory transport, with every token request
// recorded.
type worldClear struct{ w *world }

func (c *worldClear) RoundTrip(req *http.Request) (*http.Response, error) {
	w := c.w
	before := make([]int, len(w.secrets))
	for i, s := range w.secrets {
		before[i] = w.emu.Requests(s)
	}
	resp, err := w.emu.Transport().RoundTrip(req)
	rec := clearRequest{at: time.Now()}
	for i, s := range w.secrets {
		if w.emu.Requests(s) > before[i] {
			rec.slot = i + 1
		}
	}
	if err == nil && resp.StatusCode == http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		var g struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(b, &g) == nil {
			rec.token = g.AccessToken
		}
	}
	if rec.slot != 0 {
		w.mu.Lock()
		w.requests = append(w.requests, rec)
		w.mu.Unlock()
	}
	return resp, err
}

// daemonLoop runs e on c every tick until ctx ends, as the daemon does (every tick looks, through
// a cache), and returns when it has stopped.
func daemonLoop(ctx context.Context, e *rotation.Engine, c *rotation.Client, tick time.Duration) (stopped <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var cache rotation.Cache
		for {
			e.Run(ctx, c, rotation.Request{}, &cache)
			select {
			case <-ctx.Done():
				return
			case <-time.After(tick):
			}
		}
	}()
	return done
}

// faultyAPI is one process's view of the shared in-memory Secrets Manager, with faults: hooks that
// refuse a call, apply it but lose its answer, or kill the process (every later call fails, and
// nothing it sends lands).
type faultyAPI struct {
	sm   *fake.SecretsManager
	dead atomic.Bool
	mu   sync.Mutex
	// put decides a PutSecretValue: refuse (not applied) or lose (applied, answer lost) with err.
	put func(in *secretsmanager.PutSecretValueInput) (applied bool, err error)
	// get may fail a GetSecretValue.
	get func(in *secretsmanager.GetSecretValueInput) error
}

var errProcessDied = &smithy.GenericAPIError{Code: "RequestCanceled", Message: "the process died"}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "injected " + code, Fault: smithy.FaultServer}
}

func (f *faultyAPI) hooks() (func(*secretsmanager.PutSecretValueInput) (bool, error), func(*secretsmanager.GetSecretValueInput) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.put, f.get
}

func (f *faultyAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if f.dead.Load() {
		return nil, errProcessDied
	}
	if _, get := f.hooks(); get != nil {
		if err := get(in); err != nil {
			return nil, err
		}
	}
	return f.sm.GetSecretValue(ctx, in, o...)
}

func (f *faultyAPI) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if f.dead.Load() {
		return nil, errProcessDied
	}
	if put, _ := f.hooks(); put != nil {
		if applied, err := put(in); err != nil {
			if applied {
				_, _ = f.sm.PutSecretValue(ctx, in, o...)
			}
			return nil, err
		}
	}
	return f.sm.PutSecretValue(ctx, in, o...)
}

func (f *faultyAPI) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if f.dead.Load() {
		return nil, errProcessDied
	}
	return f.sm.CreateSecret(ctx, in, o...)
}

func (f *faultyAPI) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	if f.dead.Load() {
		return nil, errProcessDied
	}
	return f.sm.DescribeSecret(ctx, in, o...)
}

func (f *faultyAPI) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, o ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	if f.dead.Load() {
		return nil, errProcessDied
	}
	return f.sm.UpdateSecretVersionStage(ctx, in, o...)
}

// isTokenWrite reports whether a put stores a token document (not the state).
func isTokenWrite(in *secretsmanager.PutSecretValueInput) bool {
	if slices.Contains(in.VersionStages, document.StateStage) {
		return false
	}
	_, err := document.ParseToken([]byte(aws.ToString(in.SecretString)))
	return err == nil
}

// isClaimBy reports whether a put is owner's claim.
func isClaimBy(in *secretsmanager.PutSecretValueInput, owner string) bool {
	if !slices.Contains(in.VersionStages, document.StateStage) {
		return false
	}
	st, err := document.ParseState([]byte(aws.ToString(in.SecretString)))
	return err == nil && st.Claim != nil && st.Claim.Owner == owner
}
