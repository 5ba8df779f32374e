package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// SecretReader is what a watcher needs from Secrets Manager (store.SecretsManager has it): a cheap
// look at the staging labels, and a read of one version.
type SecretReader interface {
	Stages(ctx context.Context, secretID string) (map[string]string, error)
	Read(ctx context.Context, secretID, stage string) (store.Version, error)
}

const currentStage = "AWSCURRENT"

// Default intervals of a watcher.
const (
	// DefaultPoll is how often a watcher looks at a secret's labels: one DescribeSecret, shared by
	// every request the gateway serves. A 401 from Clear makes it look at once (see Holder.OnWait).
	DefaultPoll = 5 * time.Second
	// minGap bounds how often nudges make a watcher look, however many requests wait.
	minGap = 200 * time.Millisecond
)

// Watcher follows one secret's AWSCURRENT version: it reads the value (GetSecretValue) only when
// the version changed, and hands it to Changed. It never runs on a request's path.
type Watcher struct {
	Store    SecretReader
	SecretID string
	// Changed receives each new AWSCURRENT version; it must not block for long.
	Changed func(v store.Version)
	// Poll is the interval between looks; zero means DefaultPoll.
	Poll time.Duration
	Log  *slog.Logger
	// What names the secret's role in logs: "token" or "key".
	What string

	once    sync.Once
	nudge   chan struct{}
	mu      sync.Mutex
	version string // the AWSCURRENT version last handed to Changed
	failing bool
}

func (w *Watcher) init() { w.once.Do(func() { w.nudge = make(chan struct{}, 1) }) }

// Nudge asks for a look as soon as the minimum gap allows; it never blocks.
func (w *Watcher) Nudge() {
	w.init()
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// Run looks at the secret until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	w.init()
	poll := w.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.nudge:
			t.Stop()
		}
		_, _ = w.Check(ctx)
		// The gap holds back a burst of nudges; the poll is the longest wait.
		select {
		case <-ctx.Done():
			return
		case <-time.After(minGap):
		}
		t.Reset(poll - minGap)
	}
}

// Check looks at the secret now and returns the AWSCURRENT version id, handing a changed value to
// Changed.
func (w *Watcher) Check(ctx context.Context) (string, error) {
	stages, err := w.Store.Stages(ctx, w.SecretID)
	if err != nil {
		w.fail(err)
		return "", err
	}
	id := stages[currentStage]
	w.mu.Lock()
	same := id != "" && id == w.version
	w.mu.Unlock()
	if id == "" || same {
		w.ok()
		return id, nil
	}
	v, err := w.Store.Read(ctx, w.SecretID, currentStage)
	if err != nil {
		w.fail(err)
		return "", err
	}
	w.mu.Lock()
	w.version = v.ID
	w.mu.Unlock()
	w.ok()
	if w.Changed != nil {
		w.Changed(v)
	}
	return v.ID, nil
}

// Version is the AWSCURRENT version last seen.
func (w *Watcher) Version() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.version
}

// fail logs the first of a run of failures; the error is the store's, which names the secret but
// never a value.
func (w *Watcher) fail(err error) {
	w.mu.Lock()
	first, read := !w.failing, w.version != ""
	w.failing = true
	w.mu.Unlock()
	switch {
	case !first || w.Log == nil || errors.Is(err, context.Canceled):
	case !read && errors.Is(err, store.ErrNotFound):
		// A new deployment's token secret, before its first rotation creates it: expected.
		w.Log.Info("gateway: the "+w.What+" secret does not exist yet; waiting for it", "secret_id", w.SecretID)
	case !read:
		w.Log.Warn("gateway: cannot read the "+w.What+" secret; nothing read yet", "secret_id", w.SecretID, "error", err)
	default:
		w.Log.Warn("gateway: cannot read the "+w.What+" secret; keeping what was read before", "secret_id", w.SecretID, "error", err)
	}
}

func (w *Watcher) ok() {
	w.mu.Lock()
	was := w.failing
	w.failing = false
	w.mu.Unlock()
	if was && w.Log != nil {
		w.Log.Info("gateway: the "+w.What+" secret can be read again", "secret_id", w.SecretID)
	}
}

// TokenFeed connects a watcher of a token secret to a holder: each new AWSCURRENT token document
// is parsed and held; a version that holds no token document is logged and skipped.
func TokenFeed(h *Holder, log *slog.Logger, client string) func(store.Version) {
	return func(v store.Version) {
		doc, err := document.ParseToken([]byte(v.Value))
		if err != nil {
			if log != nil {
				log.Warn("gateway: AWSCURRENT of the token secret holds no token", "client", client, "version", v.ID)
			}
			return
		}
		h.Set(Token{Value: doc.AccessToken, Version: v.ID, ValidTill: doc.ValidTill})
	}
}

// KeyFeed connects a watcher of the key's secret to a key set: each new value becomes the current
// key, and the one it replaces stays accepted for grace. The value is trimmed of surrounding white
// space, as a key pasted with a newline is still the key.
func KeyFeed(k *Keys, grace time.Duration, log *slog.Logger) func(store.Version) {
	return func(v store.Version) {
		key, err := secret.ParseGatewayKey(v.Value)
		if err != nil {
			if log != nil {
				log.Error("gateway: the key's secret holds no usable key; keeping the key held", "version", v.ID, "error", "the key "+err.Error())
			}
			return
		}
		first := !k.Enabled()
		k.Set(NewKey(key.Reveal()), grace)
		switch {
		case log == nil:
		case first:
			log.Info("gateway: the inbound key was read", "version", v.ID)
		default:
			log.Info("gateway: the inbound key changed; the previous one is accepted for its grace", "version", v.ID, "grace", grace.String())
		}
	}
}
