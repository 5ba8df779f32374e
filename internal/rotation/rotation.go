// Package rotation is the rotator's engine: it decides whether a client's token is due, claims the
// rotation in Secrets Manager so that exactly one rotator calls Clear, counts the request against
// the daily limit before sending it, and stores the new token as AWSCURRENT straight after Clear
// answers. The CLI, the daemon and the Lambda are thin shells around Engine.
//
// # Protocol
//
// The token secret holds two kinds of version: the token document under AWSCURRENT (and the one
// before it under AWSPREVIOUS), and the rotator's state under the custom label ROTATOR_STATE. The
// state versions form a chain: each new one is put with a ClientRequestToken derived from the id of
// the version it replaces. Secrets Manager accepts a given token once; a second put with the same
// token and another value fails with ResourceExistsException. So of several rotators that read the
// same state, exactly one can write its successor: that write is the compare-and-set that both
// claims the rotation and counts the request, and it happens before Clear is called.
//
// A claim names the AWSCURRENT version it set out to replace (its base). Once AWSCURRENT is another
// version the claim is complete, so a successful rotation needs no second state write. A claim whose
// owner vanished is taken over when its lease ends; the owner stops trying to store a token well
// before then, so a late write can never overwrite its successor's token.
package rotation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// CurrentStage is the staging label consumers read.
const CurrentStage = "AWSCURRENT"

// Default timings. The lease must exceed a Clear request plus the token write's retries; the
// margin keeps the owner's last write attempt clear of a takeover.
const (
	DefaultLease = 5 * time.Minute
	leaseMargin  = 45 * time.Second
	attemptLimit = 10 * time.Second
	forceDedup   = time.Minute
	// minWriteTime is what a token write needs beyond Clear's timeout: a few attempts.
	minWriteTime = 5 * time.Second
	// blockedRecheck spaces the checks of a client Clear refused with a 401.
	blockedRecheck = 15 * time.Minute
	emptyDocument  = "{}"
)

// Store is what the engine needs from Secrets Manager (see store.SecretsManager).
type Store interface {
	Read(ctx context.Context, secretID, stage string) (store.Version, error)
	Put(ctx context.Context, secretID, requestToken, value string, stages ...string) (string, error)
	Create(ctx context.Context, secretID, value, description string) error
}

// TokenSource asks Clear for a new token (see clear.Client). Its errors are *clear.Error.
type TokenSource interface {
	Token(ctx context.Context, secret clear.ClientSecret) (clear.Grant, error)
}

// Client is one configured Clear API client, resolved for the engine.
type Client struct {
	Name    string
	BaseURL string
	Clear   TokenSource
	// ClientSecret is the literal secret, or zero when ClientSecretID names a secret holding it.
	ClientSecret   clear.ClientSecret
	ClientSecretID string
	TokenSecretID  string
	DailyLimit     int
	RenewBefore    time.Duration
	MaxAge         time.Duration
}

// Outcome is what one rotation attempt came to.
type Outcome string

const (
	Rotated Outcome = "rotated"
	NotDue  Outcome = "not_due"
	Busy    Outcome = "busy"
	Limited Outcome = "limited"
	Blocked Outcome = "blocked"
	Failed  Outcome = "failed"
)

// Outcomes lists every outcome, for metrics.
var Outcomes = []Outcome{Rotated, NotDue, Busy, Limited, Blocked, Failed}

// OK reports whether the outcome leaves the client as it should be: rotated, not due, or being
// rotated by another rotator.
func (o Outcome) OK() bool { return o == Rotated || o == NotDue || o == Busy }

// Result describes one rotation attempt.
type Result struct {
	Client  string  `json:"client"`
	Outcome Outcome `json:"outcome"`
	Message string  `json:"message"`
	// ValidTill and RenewAt describe the token now in AWSCURRENT, when one is known.
	ValidTill *time.Time `json:"valid_till"`
	RenewAt   *time.Time `json:"renew_at"`
	IssuedAt  *time.Time `json:"issued_at,omitempty"`
	// RequestsToday is the day's count as the engine last read it; a not-due check does not read
	// the state, so it is 0 then (Engine.Status has the real count).
	RequestsToday int `json:"requests_today"`
	DailyLimit    int `json:"daily_limit"`
	// Requested reports whether Clear was called.
	Requested bool `json:"requested"`
	// NextCheck is when the client next needs a look; zero means no particular time.
	NextCheck time.Time `json:"-"`
	// Err is the failure behind Failed, Blocked and Limited outcomes.
	Err error `json:"-"`
}

// Engine rotates tokens. Its zero value is not usable: set Store.
type Engine struct {
	Store Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for backoff jitter; nil means math/rand.
	Rand func() float64
	// Log receives one line per decision that matters; nil discards.
	Log *slog.Logger
	// Owner identifies this process in claims; empty means host/pid/random.
	Owner string
	// Lease is how long a claim keeps others away; zero means DefaultLease.
	Lease time.Duration
	// Backoff spaces attempts after failures; zero means timing.DefaultBackoff.
	Backoff timing.Backoff
	// ClearTimeout bounds one request to Clear; zero means clear.DefaultTimeout.
	ClearTimeout time.Duration
	// WriteRetry is the first pause between token write attempts; zero means 250ms.
	WriteRetry time.Duration
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) rand() float64 {
	if e.Rand != nil {
		return e.Rand()
	}
	return mrand.Float64()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Engine) lease() time.Duration {
	if e.Lease > 0 {
		return e.Lease
	}
	return DefaultLease
}

func (e *Engine) backoff() timing.Backoff {
	if e.Backoff.Base > 0 {
		return e.Backoff
	}
	return timing.DefaultBackoff
}

var defaultOwner = func() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}()

func (e *Engine) owner() string {
	if e.Owner != "" {
		return e.Owner
	}
	return defaultOwner
}

// Rotate rotates c's token if it is due, or, with force, whether or not it is due. It calls Clear
// at most once, and only after winning the claim and counting the request.
func (e *Engine) Rotate(ctx context.Context, c *Client, force bool) Result {
	r := e.rotate(ctx, c, force)
	e.report(c, r)
	return r
}

func (e *Engine) rotate(ctx context.Context, c *Client, force bool) Result {
	now := e.now()
	r := Result{Client: c.Name, DailyLimit: c.DailyLimit}

	cur, err := e.current(ctx, c)
	if err != nil {
		return r.fail(Failed, fmt.Errorf("reading the token secret: %w", err))
	}
	tok, haveTok := parseToken(cur.Value)
	renewAt, due := dueAt(tok, haveTok, c, now)
	r.describe(tok, haveTok, renewAt)
	if !force && !due {
		r.Outcome, r.Message = NotDue, notDueMessage(renewAt)
		if !renewAt.IsZero() {
			r.NextCheck = renewAt
		}
		return r
	}
	if force && haveTok && now.Sub(tok.IssuedAt) < forceDedup && now.Sub(tok.IssuedAt) >= 0 {
		// Several forced rotations started together (a retried manual command, a duplicated
		// event) must cost Clear one request, not one each.
		r.Outcome = NotDue
		r.Message = fmt.Sprintf("rotated %s ago; a forced rotation within %s of another is taken as a duplicate",
			now.Sub(tok.IssuedAt).Round(time.Second), forceDedup)
		r.NextCheck = renewAt
		return r
	}

	st, stVer, err := e.state(ctx, c)
	if err != nil {
		return r.fail(Failed, fmt.Errorf("reading the rotation state: %w", err))
	}
	st, inFlight := settle(st, cur.ID, now)
	if inFlight != nil {
		r.RequestsToday = st.RequestsOn(timing.Day(now), st.Secret)
		r.Outcome, r.NextCheck = Busy, inFlight.LeaseUntil
		r.Message = fmt.Sprintf("a rotation is in progress (claimed by %s at %s)", inFlight.Owner, inFlight.At.Format(time.RFC3339))
		return r
	}

	secret, err := e.ClientSecret(ctx, c)
	if err != nil {
		return r.fail(Failed, err)
	}
	fp := fingerprint(c.BaseURL, secret)
	st = forConfig(st, fp)
	today := timing.Day(now)
	requests := st.RequestsOn(today, fp)
	r.RequestsToday = requests

	if b := st.Blocked; b != nil {
		switch {
		case b.Until != nil && now.Before(*b.Until):
			r.NextCheck = *b.Until
			return r.fail(Blocked, fmt.Errorf("blocked until %s: %s", b.Until.Format(time.RFC3339), b.Reason))
		case b.Until == nil && !force:
			// Look again now and then: the fix (a new client secret) may land in Secrets Manager
			// without any change a daemon could notice.
			r.NextCheck = now.Add(blockedRecheck)
			return r.fail(Blocked, fmt.Errorf("blocked until the configuration changes (or a forced rotation): %s", b.Reason))
		}
	}
	if !force && st.RetryAt != nil && now.Before(*st.RetryAt) {
		r.NextCheck = *st.RetryAt
		return r.fail(Blocked, fmt.Errorf("backing off until %s after %d failed attempt(s): %s",
			st.RetryAt.Format(time.RFC3339), st.Failures, st.LastError))
	}
	if requests >= c.DailyLimit {
		r.NextCheck = timing.NextMidnightUTC(now)
		return r.fail(Limited, &LimitError{Limit: c.DailyLimit, Requests: requests, Until: r.NextCheck})
	}

	if d, ok := ctx.Deadline(); ok && time.Until(d) < e.clearTimeout()+minWriteTime {
		// A Lambda near its deadline would be cut off between Clear's answer and the write: the
		// token would be issued, the old one revoked, and the new one lost.
		return r.fail(Failed, fmt.Errorf("only %s left before the deadline, too little to call Clear and store its answer; not claiming",
			time.Until(d).Round(time.Second)))
	}

	// Claim: count the request and take the rotation, in one compare-and-set.
	next := st
	next.Day, next.Requests, next.Secret = today, requests+1, fp
	next.Claim = &document.Claim{Owner: e.owner(), At: now, LeaseUntil: now.Add(e.lease()), Base: cur.ID, Force: force}
	body, err := document.MarshalState(next)
	if err != nil {
		return r.fail(Failed, err)
	}
	slot := stVer
	if slot == "" {
		slot = "genesis/" + cur.ID
	}
	claimID, err := e.Store.Put(ctx, c.TokenSecretID, requestToken("claim", slot), string(body), document.StateStage)
	if errors.Is(err, store.ErrConflict) {
		r.Outcome, r.Message = Busy, "another rotator claimed this rotation first"
		r.NextCheck = now.Add(e.lease())
		return r
	}
	if err != nil {
		return r.fail(Failed, fmt.Errorf("claiming the rotation: %w", err))
	}
	r.RequestsToday = requests + 1

	// Re-check after winning: a rotation that finished between our first read and our claim must
	// not be repeated.
	again, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if err != nil {
		return r.fail(Failed, fmt.Errorf("re-reading the token secret after claiming: %w", err))
	}
	if again.ID != cur.ID {
		r.Outcome, r.Message = Busy, "another rotator stored a new token meanwhile"
		if t, ok := parseToken(again.Value); ok {
			ra, _ := dueAt(t, true, c, now)
			r.describe(t, true, ra)
			r.NextCheck = ra
		}
		return r
	}

	// The claim's lease was set before the calls above, which a slow or throttled Secrets Manager
	// can stretch. Calling Clear late in the lease would let another rotator take the claim over
	// and race this one's token write; so the work must fit in what is left of the lease.
	left := next.Claim.LeaseUntil.Sub(e.now()) - leaseMargin
	if left < e.clearTimeout()+minWriteTime {
		return r.fail(Failed, fmt.Errorf("the claim's lease ran short (%s left) before Clear was called; not calling it", max(left, 0).Round(time.Second)))
	}

	// From here on Clear may revoke the token the ERP holds, so the work must finish even if the
	// caller is cancelled (SIGTERM): only a deadline (a Lambda's, or the lease) stops it.
	work, cancel := detach(ctx, left)
	defer cancel()
	return e.request(work, c, r, next, claimID, secret, fp)
}

func (e *Engine) clearTimeout() time.Duration {
	if e.ClearTimeout > 0 {
		return e.ClearTimeout
	}
	return clear.DefaultTimeout
}

// request calls Clear and stores the answer: the token on success, the failure otherwise.
func (e *Engine) request(ctx context.Context, c *Client, r Result, st document.State, claimID string, secret clear.ClientSecret, fp string) Result {
	cctx, cancel := context.WithTimeout(ctx, e.clearTimeout())
	grant, err := c.Clear.Token(cctx, secret)
	cancel()
	answered := e.now()
	r.Requested = true
	if err != nil {
		return e.recordFailure(ctx, c, r, st, claimID, fp, answered, err)
	}
	doc := document.Token{AccessToken: grant.AccessToken, ValidTill: grant.ValidTill, IssuedAt: answered, Client: c.Name}
	body, err := document.MarshalToken(doc)
	tokenVersion := requestToken("token", claimID)
	if err == nil {
		// The write comes straight after Clear's answer: no other call in between.
		_, err = e.retry(ctx, func(ctx context.Context) (string, error) {
			return e.Store.Put(ctx, c.TokenSecretID, tokenVersion, string(body))
		})
	}
	if err != nil && e.landed(ctx, c, tokenVersion) {
		// Every answer was lost, but a write landed: a version's id is its request token.
		err = nil
	}
	if err != nil {
		return r.fail(Failed, fmt.Errorf("clear issued a new token but storing it failed; it is lost and the previous token is revoked: %w", err))
	}
	tok, _ := parseToken(string(body))
	renewAt, _ := dueAt(tok, true, c, answered)
	r.describe(tok, true, renewAt)
	r.Outcome, r.NextCheck = Rotated, renewAt
	r.Message = "rotated; " + notDueMessage(renewAt)
	return r
}

// recordFailure writes the state after a failed request: backoff for transient failures, a block
// for refusals. The claim is cleared so that the next attempt need not wait for its lease.
func (e *Engine) recordFailure(ctx context.Context, c *Client, r Result, st document.State, claimID, fp string, now time.Time, err error) Result {
	var ce *clear.Error
	if !errors.As(err, &ce) {
		ce = &clear.Error{Kind: clear.KindTransient, Message: clear.Sanitize(err.Error()), Err: err}
	}
	st.Claim = nil
	st.Failures++
	st.LastError = ce.Error()
	st.RetryAt = nil
	switch ce.Kind {
	case clear.KindAuth, clear.KindRejected:
		st.Blocked = &document.Block{Kind: ce.Kind.String(), Reason: ce.Error(), Secret: fp}
	case clear.KindRateLimited:
		until := timing.NextMidnightUTC(now)
		st.Blocked = &document.Block{Kind: ce.Kind.String(), Reason: ce.Error(), Until: &until, Secret: fp}
		r.NextCheck = until
	default:
		at := now.Add(e.backoff().Delay(st.Failures, e.rand()))
		st.RetryAt = &at
		r.NextCheck = at
	}
	body, merr := document.MarshalState(st)
	if merr == nil {
		_, merr = e.retry(ctx, func(ctx context.Context) (string, error) {
			return e.Store.Put(ctx, c.TokenSecretID, requestToken("result", claimID), string(body), document.StateStage)
		})
	}
	if merr != nil && !errors.Is(merr, store.ErrConflict) {
		// The claim stays; its lease expiring counts as this failure, so nothing is lost but time.
		e.log().Warn("could not record the failure", "client", c.Name, "error", merr)
	}
	return r.fail(Failed, ce)
}

// landed reports whether the token version was stored after all, when every answer to its write
// was lost. It asks once, with a short time limit of its own, since ctx may be spent.
func (e *Engine) landed(ctx context.Context, c *Client, version string) bool {
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptLimit)
	defer cancel()
	v, err := e.Store.Read(vctx, c.TokenSecretID, CurrentStage)
	return err == nil && v.ID == version
}

// detach returns a context that ignores ctx's cancellation but keeps its deadline, bounded by
// limit (what is left of the lease less a margin), so that the owner never writes after another
// rotator may take over.
func detach(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d) - time.Second; left < limit {
			limit = max(left, time.Second)
		}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), limit)
}

// retry runs op until it succeeds, fails with a conflict, or ctx ends, pausing with capped
// exponential backoff between attempts; each attempt has its own time limit.
func (e *Engine) retry(ctx context.Context, op func(context.Context) (string, error)) (string, error) {
	pause := e.WriteRetry
	if pause <= 0 {
		pause = 250 * time.Millisecond
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptLimit)
		id, err := op(actx)
		cancel()
		if err == nil || errors.Is(err, store.ErrConflict) || permanent(err) {
			return id, err
		}
		e.log().Warn("secrets manager write failed; retrying", "attempt", attempt, "error", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		case <-t.C:
		}
		pause = min(pause*2, 5*time.Second)
	}
}

// permanent reports whether a Secrets Manager error cannot go away by retrying the same call in the
// next few minutes: a missing permission or secret, a request the service rejects, a full quota.
func permanent(err error) bool {
	var se *store.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case "AccessDeniedException", "ResourceNotFoundException", "ValidationException",
		"InvalidParameterException", "InvalidRequestException", "LimitExceededException":
		return true
	}
	return false
}

// current returns the AWSCURRENT version, creating the secret (holding "{}") when it is missing.
func (e *Engine) current(ctx context.Context, c *Client) (store.Version, error) {
	v, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if !errors.Is(err, store.ErrNotFound) {
		return v, err
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

// state reads the state version; a missing or unreadable one is an empty state.
func (e *Engine) state(ctx context.Context, c *Client) (document.State, string, error) {
	v, err := e.Store.Read(ctx, c.TokenSecretID, document.StateStage)
	if errors.Is(err, store.ErrNotFound) {
		return document.State{}, "", nil
	}
	if err != nil {
		return document.State{}, "", err
	}
	st, perr := document.ParseState([]byte(v.Value))
	if perr != nil {
		// A damaged state must not wedge the client; the chain continues from this version. The
		// count restarts, which Clear's own limit (288, far above ours) absorbs.
		e.log().Warn("ignoring an unreadable state document", "client", c.Name, "error", perr)
		return document.State{}, v.ID, nil
	}
	return st, v.ID, nil
}

// settle interprets the recorded claim against the current token version: a complete claim means
// the last rotation succeeded; an expired one counts as a failure; a live one is returned.
func settle(st document.State, currentID string, now time.Time) (document.State, *document.Claim) {
	cl := st.Claim
	if cl == nil {
		return st, nil
	}
	st.Claim = nil
	switch {
	case cl.Base != currentID:
		st.Failures, st.RetryAt, st.LastError, st.Blocked = 0, nil, "", nil
	case now.Before(cl.LeaseUntil):
		st.Claim = cl
		return st, cl
	default:
		st.Failures++
		st.LastError = fmt.Sprintf("the rotation claimed by %s at %s did not finish", cl.Owner, cl.At.Format(time.RFC3339))
	}
	return st, nil
}

// forConfig drops blocks and backoff recorded for another client secret: a changed secret (or base
// URL) is a changed configuration, and deserves a fresh attempt.
func forConfig(st document.State, fp string) document.State {
	if st.Secret != fp && st.Secret != "" {
		st.Failures, st.RetryAt, st.LastError = 0, nil, ""
	}
	if st.Blocked != nil && st.Blocked.Secret != fp {
		st.Blocked = nil
	}
	return st
}

func parseToken(value string) (document.Token, bool) {
	t, err := document.ParseToken([]byte(value))
	return t, err == nil
}

// dueAt returns when the token should be renewed (zero: never) and whether that is now.
func dueAt(t document.Token, ok bool, c *Client, now time.Time) (time.Time, bool) {
	if !ok {
		return now, true
	}
	at, renew := timing.RenewAt(t.IssuedAt, t.ValidTill, c.RenewBefore, c.MaxAge)
	if !renew {
		return time.Time{}, false
	}
	return at, !now.Before(at)
}

func (r *Result) describe(t document.Token, ok bool, renewAt time.Time) {
	r.ValidTill, r.RenewAt, r.IssuedAt = nil, nil, nil
	if !ok {
		return
	}
	r.ValidTill = t.ValidTill
	at := t.IssuedAt
	r.IssuedAt = &at
	if !renewAt.IsZero() {
		r.RenewAt = &renewAt
	}
}

func (r Result) fail(o Outcome, err error) Result {
	r.Outcome, r.Err, r.Message = o, err, err.Error()
	return r
}

func notDueMessage(renewAt time.Time) string {
	if renewAt.IsZero() {
		return "the token never expires and no max age is set; it is not rotated automatically"
	}
	return "next renewal at " + renewAt.Format(time.RFC3339)
}

// report logs the outcome: decisions that matter at info or above, the rest at debug.
func (e *Engine) report(c *Client, r Result) {
	attrs := []any{"client", c.Name, "outcome", string(r.Outcome), "requests_today", r.RequestsToday, "daily_limit", r.DailyLimit}
	if r.ValidTill != nil {
		attrs = append(attrs, "valid_till", r.ValidTill.Format(time.RFC3339))
	}
	if r.RenewAt != nil {
		attrs = append(attrs, "renew_at", r.RenewAt.Format(time.RFC3339))
	}
	l := e.log()
	switch r.Outcome {
	case Rotated:
		l.Info("rotated the token", attrs...)
	case NotDue:
		l.Debug(r.Message, attrs...)
	case Busy:
		l.Info(r.Message, attrs...)
	case Limited, Blocked:
		l.Warn(r.Message, attrs...)
	default:
		if !r.Requested && errors.Is(r.Err, context.Canceled) {
			// Shutdown cut a check short before it claimed anything: nothing happened.
			l.Debug("check cancelled before it began", attrs...)
			return
		}
		l.Error("rotation failed", append(attrs, "error", r.Message)...)
	}
}

// LimitError is the refusal of a request by the rotator's own daily limit.
type LimitError struct {
	Limit, Requests int
	Until           time.Time
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("refused by the daily limit: %d of %d requests to Clear used today (UTC); the count resets at %s",
		e.Requests, e.Limit, e.Until.Format(time.RFC3339))
}

// requestToken derives a ClientRequestToken (a UUID-shaped string, as Secrets Manager expects)
// from what it stands for, so that every rotator computes the same token for the same step.
func requestToken(kind, of string) string {
	sum := sha256.Sum256([]byte("clear-rotator/" + kind + "\x00" + of))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// fingerprint identifies a client secret (with its base URL) without revealing it: Clear's limit
// and its refusals belong to a secret, and a change of secret is a change of configuration.
func fingerprint(baseURL string, secret clear.ClientSecret) string {
	sum := sha256.Sum256([]byte("clear-rotator/v1\x00" + strings.TrimRight(baseURL, "/") + "\x00" + secret.Reveal()))
	return hex.EncodeToString(sum[:8])
}

// ClientSecret returns c's client secret: the literal one, or the value of the secret
// c.ClientSecretID, which holds either the plain secret or {"client_secret": "..."}.
func (e *Engine) ClientSecret(ctx context.Context, c *Client) (clear.ClientSecret, error) {
	if !c.ClientSecret.IsZero() {
		return c.ClientSecret, nil
	}
	v, err := e.Store.Read(ctx, c.ClientSecretID, CurrentStage)
	if err != nil {
		return clear.ClientSecret{}, fmt.Errorf("reading the client secret: %w", err)
	}
	s, err := ParseClientSecret(v.Value)
	if err != nil {
		return clear.ClientSecret{}, fmt.Errorf("client secret %q: %w", c.ClientSecretID, err)
	}
	return s, nil
}

// ParseClientSecret reads a client secret stored as a plain string or as {"client_secret": "..."}.
// Its errors never hold the value.
func ParseClientSecret(value string) (clear.ClientSecret, error) {
	v := strings.TrimSpace(value)
	if strings.HasPrefix(v, "{") {
		var doc struct {
			ClientSecret *string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(v), &doc); err != nil {
			return clear.ClientSecret{}, errors.New("holds a JSON document that cannot be parsed")
		}
		if doc.ClientSecret == nil {
			return clear.ClientSecret{}, errors.New(`holds a JSON document without a "client_secret" field`)
		}
		v = strings.TrimSpace(*doc.ClientSecret)
	}
	if v == "" {
		return clear.ClientSecret{}, errors.New("is empty")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return clear.ClientSecret{}, errors.New("holds a control character, which cannot be sent in a header")
		}
	}
	return clear.NewClientSecret(v), nil
}
