// Package fake provides in-memory stand-ins for the rotator's two outside services: Store behaves
// like Secrets Manager behind rotation.Store, and Clear behaves like Clear's token API behind
// rotation.TokenSource. They exist for tests that run inside a testing/synctest bubble, where network
// I/O (moto, an httptest server) would keep the fake clock from advancing, and for reliability
// suites that simulate days or months in milliseconds. They keep exactly the semantics the engine
// relies on (version ids, staging labels, ClientRequestToken idempotency, token revocation) and count
// every call, so that a test can assert how much work the rotator did.
package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Secrets Manager operation names, as Store reports them in errors, in Calls and to a FailWith hook.
const (
	OpRead   = "GetSecretValue"
	OpPut    = "PutSecretValue"
	OpCreate = "CreateSecret"
)

// Staging labels that Secrets Manager moves by itself.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
)

// Store is an in-memory Secrets Manager with the semantics of store.SecretsManager: Read returns the
// version carrying a staging label; Put adds a version whose id is its ClientRequestToken, moving
// AWSCURRENT (and AWSPREVIOUS) when no labels are given and only the given labels otherwise; a Put
// repeating a token with the same value is a no-op returning the same version id, and with another
// value fails with an error wrapping store.ErrConflict; a missing secret or label is an error
// wrapping store.ErrNotFound. Create of an existing secret succeeds without changing it. Like moto,
// it never prunes unlabelled versions.
//
// Errors are *store.Error values, as the real store returns. The zero Store is ready to use and safe
// for concurrent use.
type Store struct {
	mu      sync.Mutex
	secrets map[string]*secret
	calls   map[string]int
	seq     int
	fail    func(op, secretID string) error
}

type secret struct {
	versions map[string]*version // by version id
	order    []string            // version ids, oldest first
	stages   map[string]string   // staging label -> version id
}

type version struct {
	id, value string
}

// Version describes one stored version, for assertions.
type Version struct {
	ID     string
	Value  string
	Stages []string // sorted
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{} }

// FailWith installs f, which is called before every operation with the operation's name (OpRead,
// OpPut, OpCreate) and the secret id; a non-nil error fails the call without touching the data, as a
// throttled or unreachable Secrets Manager would. f may block (in a synctest bubble, time.Sleep
// models a slow call). A nil f removes the hook. Calls made while the hook fails are still counted.
func (s *Store) FailWith(f func(op, secretID string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = f
}

// begin counts the call and applies the context and the failure hook. It must be called without
// s.mu held, because the hook may block.
func (s *Store) begin(ctx context.Context, op, secretID string) error {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[op]++
	fail := s.fail
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return &store.Error{Op: op, SecretID: secretID, Message: "cancelled", Err: err}
	}
	if fail != nil {
		if err := fail(op, secretID); err != nil {
			return &store.Error{Op: op, SecretID: secretID, Code: "InternalServiceError", Message: err.Error(), Err: err}
		}
	}
	return nil
}

func notFound(op, secretID, msg string) error {
	return &store.Error{Op: op, SecretID: secretID, Code: "ResourceNotFoundException", Message: msg, Err: store.ErrNotFound}
}

// Read returns the version of secretID that carries stage.
func (s *Store) Read(ctx context.Context, secretID, stage string) (store.Version, error) {
	if err := s.begin(ctx, OpRead, secretID); err != nil {
		return store.Version{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[secretID]
	if sec == nil {
		return store.Version{}, notFound(OpRead, secretID, "Secrets Manager can't find the specified secret.")
	}
	id, ok := sec.stages[stage]
	if !ok {
		return store.Version{}, notFound(OpRead, secretID, "Secrets Manager can't find the specified secret value for staging label: "+stage)
	}
	v := sec.versions[id]
	return store.Version{ID: v.id, Value: v.value}, nil
}

// Put adds value as a new version of secretID; see Store for the semantics.
func (s *Store) Put(ctx context.Context, secretID, requestToken, value string, stages ...string) (string, error) {
	if err := s.begin(ctx, OpPut, secretID); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[secretID]
	if sec == nil {
		return "", notFound(OpPut, secretID, "Secrets Manager can't find the specified secret.")
	}
	if requestToken == "" {
		requestToken = s.newIDLocked()
	}
	if v, ok := sec.versions[requestToken]; ok {
		// Secrets Manager's idempotency: a retried put is harmless, a different value with the same
		// token is refused. This refusal is the compare-and-set the engine builds its claims on.
		if v.value == value {
			return v.id, nil
		}
		return "", &store.Error{Op: OpPut, SecretID: secretID, Code: "ResourceExistsException",
			Message: "A resource with the ID you requested already exists.", Err: store.ErrConflict}
	}
	if len(stages) == 0 {
		stages = []string{StageCurrent}
	}
	sec.add(requestToken, value, stages)
	return requestToken, nil
}

// Create creates secretID holding value as its AWSCURRENT version; an empty value creates the secret
// without a version. A secret that already exists is left alone and is not an error.
func (s *Store) Create(ctx context.Context, secretID, value, description string) error {
	if err := s.begin(ctx, OpCreate, secretID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string]*secret{}
	}
	if s.secrets[secretID] != nil {
		return nil
	}
	sec := &secret{versions: map[string]*version{}, stages: map[string]string{}}
	s.secrets[secretID] = sec
	if value != "" {
		sec.add(s.newIDLocked(), value, []string{StageCurrent})
	}
	return nil
}

// add stores a new version and moves its labels to it. Moving AWSCURRENT also moves AWSPREVIOUS to
// the version that was current, as Secrets Manager does.
func (sec *secret) add(id, value string, stages []string) {
	sec.versions[id] = &version{id: id, value: value}
	sec.order = append(sec.order, id)
	for _, st := range stages {
		if st == StageCurrent {
			if old, ok := sec.stages[StageCurrent]; ok && old != id {
				sec.stages[StagePrevious] = old
			}
		}
		sec.stages[st] = id
	}
}

// newIDLocked returns a UUID-shaped version id. s.mu must be held.
func (s *Store) newIDLocked() string {
	s.seq++
	sum := sha256.Sum256(fmt.Appendf(nil, "fake-version-%d", s.seq))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Calls returns how many times op (OpRead, OpPut or OpCreate) was called, failed calls included.
func (s *Store) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Writes returns the number of Put and Create calls: what an idle rotator must not make.
func (s *Store) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[OpPut] + s.calls[OpCreate]
}

// Value returns the value carrying stage in secretID, without counting a call or consulting the
// failure hook: it is the test's view, not the rotator's.
func (s *Store) Value(secretID, stage string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[secretID]
	if sec == nil {
		return "", false
	}
	id, ok := sec.stages[stage]
	if !ok {
		return "", false
	}
	return sec.versions[id].value, true
}

// Versions returns every version of secretID, oldest first, with its staging labels.
func (s *Store) Versions(secretID string) []Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[secretID]
	if sec == nil {
		return nil
	}
	labels := map[string][]string{}
	for st, id := range sec.stages {
		labels[id] = append(labels[id], st)
	}
	out := make([]Version, 0, len(sec.order))
	for _, id := range sec.order {
		st := labels[id]
		sort.Strings(st)
		out = append(out, Version{ID: id, Value: sec.versions[id].value, Stages: st})
	}
	return out
}
