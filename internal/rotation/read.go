package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Cache remembers what was read of one client, so that a caller that looks often (the daemon) reads
// only what changed: one call per look when nothing did. The zero Cache is empty; it is safe for
// concurrent use.
type Cache struct {
	mu        sync.Mutex
	valid     bool
	currentID string
	token     document.Token
	hasToken  bool
	stateID   string
	state     document.State
	secrets   []clear.ClientSecret
	secretsAt time.Time
}

// Invalidate makes the next read fetch everything again.
func (c *Cache) Invalidate() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.valid, c.secrets = false, nil
	c.mu.Unlock()
}

// fill records what the engine itself just wrote, so that the next look need not read it back.
func (c *Cache) fill(s Snapshot, secrets []clear.ClientSecret) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.valid = true
	c.currentID, c.token, c.hasToken = s.CurrentID, s.Token, s.HasToken
	c.stateID, c.state = s.StateID, s.State
	if len(c.secrets) == 0 {
		c.secrets, c.secretsAt = secrets, s.Now
	}
}

// read is what a look at a client found: the snapshot for Decide, and the client secrets themselves.
type read struct {
	snap    Snapshot
	secrets []clear.ClientSecret
	errs    []error
	// started is when the read began by the monotonic clock, with snap.Now: a claim made on this
	// read cannot have more of its lease left than the lease less the real time since.
	started time.Time
}

// Acted reports whether the forced request with id event was acted on: its rotation stored a token,
// or its claim is still live. It reads the token secret and the state, and writes nothing; the
// answer is the one Decide gives a duplicate.
func (e *Engine) Acted(ctx context.Context, c *Client, event string) (bool, error) {
	cur, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("reading the token secret: %w", err)
	}
	st, _, err := e.state(ctx, c)
	if err != nil {
		return false, fmt.Errorf("reading the rotation state: %w", err)
	}
	s := Snapshot{Now: e.now(), CurrentKnown: true, CurrentID: cur.ID, StateKnown: true, State: st}
	s.Token, s.HasToken = parseToken(cur.Value)
	settled, live := settle(st, s, s.Now)
	return slices.Contains(settled.Events, event) || (live != nil && live.Event == event), nil
}

// read looks at c: AWSCURRENT (creating the secret when create is true and it is missing), the
// state, and the client secrets. A failure to read the token secret is an error; a client secret
// that cannot be read leaves its fingerprint empty, so that the other API client can still be
// used.
func (e *Engine) read(ctx context.Context, c *Client, cache *Cache, create bool) (read, error) {
	now := e.now()
	rd := read{snap: Snapshot{Now: now}, started: time.Now()}
	if cache != nil {
		cache.mu.Lock()
		defer cache.mu.Unlock()
	}
	stages, err := e.stages(ctx, c, cache)
	if err != nil {
		return rd, fmt.Errorf("reading the token secret: %w", err)
	}
	if err := e.readCurrent(ctx, c, cache, stages, create, &rd.snap); err != nil {
		return rd, fmt.Errorf("reading the token secret: %w", err)
	}
	if err := e.readState(ctx, c, cache, stages, &rd.snap); err != nil {
		return rd, fmt.Errorf("reading the rotation state: %w", err)
	}
	n := c.Slots()
	rd.secrets, rd.errs = e.readSecrets(ctx, c, cache, now)
	rd.snap.Secrets = make([]string, n)
	for i, s := range rd.secrets {
		if !s.IsZero() {
			rd.snap.Secrets[i] = fingerprint(c.BaseURL, s)
		}
	}
	if rd.snap.StateDamaged {
		rd.snap.State = assumeSpent(rd.snap.State, rd.snap.Secrets, timing.Day(now), damagedCount(c.DailyLimit))
	}
	if n == 2 && rd.snap.Secrets[0] != "" && rd.snap.Secrets[0] == rd.snap.Secrets[1] {
		// Two API clients that are one: each rotation would revoke the other's token.
		return rd, errors.New("both API clients hold the same client secret; configure two different API clients")
	}
	cache.keep(rd, n, now)
	if len(rd.errs) == n {
		return rd, errors.Join(rd.errs...)
	}
	return rd, nil
}

// stages lists the token secret's staging labels when cache holds a valid read, so that a look at
// a client whose versions have not changed costs one cheap call; nil means read everything.
func (e *Engine) stages(ctx context.Context, c *Client, cache *Cache) (map[string]string, error) {
	if cache == nil || !cache.valid {
		return nil, nil
	}
	m, err := e.Store.Stages(ctx, c.TokenSecretID)
	if errors.Is(err, store.ErrNotFound) {
		cache.valid = false
		return nil, nil
	}
	return m, err
}

// readCurrent fills s with AWSCURRENT: from cache when its version has not changed.
func (e *Engine) readCurrent(ctx context.Context, c *Client, cache *Cache, stages map[string]string, create bool, s *Snapshot) error {
	if stages != nil && stages[CurrentStage] == cache.currentID && cache.currentID != "" {
		s.CurrentID, s.Token, s.HasToken = cache.currentID, cache.token, cache.hasToken
	} else {
		v, err := e.current(ctx, c, create)
		if err != nil {
			return err
		}
		s.CurrentID = v.ID
		s.Token, s.HasToken = parseToken(v.Value)
	}
	s.CurrentKnown = true
	return nil
}

// readState fills s with ROTATOR_STATE: from cache when its version has not changed.
func (e *Engine) readState(ctx context.Context, c *Client, cache *Cache, stages map[string]string, s *Snapshot) error {
	if stages != nil && stages[document.StateStage] == cache.stateID {
		s.State, s.StateID = cache.state, cache.stateID
	} else {
		st, id, err := e.state(ctx, c)
		if errors.Is(err, errDamaged) {
			s.StateDamaged, err = true, nil
		}
		if err != nil {
			return err
		}
		s.State, s.StateID = st, id
	}
	s.StateKnown = true
	return nil
}

// readSecrets returns c's client secrets, in slot order, from cache while they are younger than
// secretTTL; a secret that cannot be read is zero, with its error.
func (e *Engine) readSecrets(ctx context.Context, c *Client, cache *Cache, now time.Time) ([]clear.ClientSecret, []error) {
	n := c.Slots()
	if cache != nil && len(cache.secrets) == n && now.Sub(cache.secretsAt) < secretTTL {
		return cache.secrets, nil
	}
	secrets := make([]clear.ClientSecret, n)
	var errs []error
	for i := range n {
		s, err := e.clientSecret(ctx, c, i+1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		secrets[i] = s
	}
	return secrets, errs
}

// keep records a read in the cache (held locked by the caller); the client secrets only when all
// of them were read and the cached ones are due for a refresh.
func (c *Cache) keep(rd read, n int, now time.Time) {
	if c == nil {
		return
	}
	c.valid = true
	c.currentID, c.token, c.hasToken = rd.snap.CurrentID, rd.snap.Token, rd.snap.HasToken
	c.stateID, c.state = rd.snap.StateID, rd.snap.State
	if len(rd.errs) == 0 && (len(c.secrets) != n || now.Sub(c.secretsAt) >= secretTTL) {
		c.secrets, c.secretsAt = rd.secrets, now
	}
}

// current returns the AWSCURRENT version. A missing secret is created (holding "{}") when create
// is true, and is otherwise an empty version.
func (e *Engine) current(ctx context.Context, c *Client, create bool) (store.Version, error) {
	v, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	if !create {
		return store.Version{}, nil
	}
	// A claim must never be the secret's first version: Secrets Manager would make it AWSCURRENT
	// and hand it to the ERP. So the secret gets an empty document first.
	if err := e.Store.Create(ctx, c.TokenSecretID, emptyDocument, "Clear access token, kept fresh by clear-rotator (client "+c.Name+")"); err != nil {
		return v, err
	}
	v, err = e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	// The secret exists without a current version (created empty by hand).
	if _, err := e.Store.Put(ctx, c.TokenSecretID, requestToken("init", c.TokenSecretID), emptyDocument); err != nil {
		return v, err
	}
	return e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
}

// errDamaged is state's answer for a state version that cannot be read: an empty state, and the
// version's id, so that the chain continues from it.
var errDamaged = errors.New("the rotation state cannot be read")

// damagedCount is the day's count assumed for an API client after a damaged state lost it: the
// count could have been up to limit, so the rotator may make at most limit more requests and at
// most clear.DailyLimit - limit without passing Clear's limit; it takes the lower. Zero for a limit
// up to half of Clear's (the default 48 among them).
func damagedCount(limit int) int {
	return max(0, 2*limit-clear.DailyLimit)
}

// assumeSpent returns st with each configured API client (fingerprints in secrets; an empty one
// could not be read) counted as having made spent requests on day, as after a damaged state, and
// its count for day marked lost: the count is then written with the next claim, so that it holds
// for the rest of the day, and status shows the day's count as unknown until the day is over. It
// is pure.
func assumeSpent(st document.State, secrets []string, day string, spent int) document.State {
	for _, fp := range secrets {
		if fp == "" || slices.ContainsFunc(st.APIClients, func(a document.APIClient) bool { return a.Secret == fp }) {
			continue
		}
		st.APIClients = append(st.APIClients, document.APIClient{Secret: fp, Day: day, Requests: max(spent, 0), CountLost: day})
	}
	return st
}

// state reads the state version; a missing one is an empty state, and a damaged one (errDamaged)
// an empty state with its version's id.
func (e *Engine) state(ctx context.Context, c *Client) (document.State, string, error) {
	v, err := e.Store.Read(ctx, c.TokenSecretID, document.StateStage)
	if errors.Is(err, store.ErrNotFound) {
		return document.State{}, "", nil
	}
	if errors.Is(err, store.ErrBinary) {
		// Another tool wrote it as SecretBinary: as damaged as a string that does not parse.
		e.Log.Warn("ignoring an unreadable state document", "client", c.Name, "error", "it is binary, not a string",
			"requests_today_assumed", damagedCount(c.DailyLimit))
		return document.State{}, v.ID, errDamaged
	}
	if err != nil {
		return document.State{}, "", err
	}
	st, perr := document.ParseState([]byte(v.Value))
	if newer := (*document.NewerStateError)(nil); errors.As(perr, &newer) {
		return document.State{}, "", newer
	}
	if perr != nil {
		// A damaged state must not wedge the client; the chain continues from this version, and
		// the day's count is assumed (assumeSpent).
		e.Log.Warn("ignoring an unreadable state document", "client", c.Name, "error", perr,
			"requests_today_assumed", damagedCount(c.DailyLimit))
		return document.State{}, v.ID, errDamaged
	}
	return st, v.ID, nil
}

func parseToken(value string) (document.Token, bool) {
	t, err := document.ParseToken([]byte(value))
	return t, err == nil
}
