package cleartoken

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/apicall"
	sec "github.com/clear-rotator/clear-rotator/internal/secret"
)

// SecretsManager is the one Secrets Manager call a Source makes. *secretsmanager.Client implements
// it; tests and caching layers can too.
type SecretsManager interface {
	GetSecretValue(ctx context.Context, params *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Defaults of the options.
const (
	// DefaultTTL is how long a token read from Secrets Manager is used before it is read again. It
	// is well under the rotator's renewal interval for tokens that live an hour or more, which is
	// what the two-API-client mode needs, and costs one GetSecretValue a minute per Source.
	DefaultTTL = time.Minute
	// DefaultMaxWait bounds how long a refused token is waited on for a newer one. The rotator
	// stores a token milliseconds after Clear issues it; 10 s covers a slow Secrets Manager with
	// the SDK's own retries, and no ERP request should hang much longer than that.
	DefaultMaxWait = 10 * time.Second
	// DefaultReadTimeout bounds one GetSecretValue made on behalf of any number of callers.
	DefaultReadTimeout = 10 * time.Second
)

// Backoff between re-reads while waiting for a newer token: the first wait is about firstBackoff,
// each next one doubles, capped at maxBackoff, and each is jittered to between half and all of its
// nominal length so that many ERP processes refused at once do not re-read in lockstep.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// minRead is the least time a read during a wait is given, however little of the wait is left: a
// read cut off sooner would fail where Secrets Manager answers in the usual tens of milliseconds.
// A wait therefore lasts at most its maximum and minRead.
const minRead = time.Second

// Option configures a Source.
type Option func(*Source)

// WithTTL sets how long a token is used before the secret is read again; d <= 0 keeps DefaultTTL.
// With the rotator's two-API-client mode it must be shorter than ROTATOR_RENEW_BEFORE (or
// ROTATOR_MAX_AGE for tokens that never expire).
func WithTTL(d time.Duration) Option {
	return func(s *Source) {
		if d > 0 {
			s.ttl = d
		}
	}
}

// WithMaxWait sets how long a refused token is waited on for a newer one; d <= 0 keeps
// DefaultMaxWait. A read of the secret under way when the wait runs out is given up to a second
// more, so a wait lasts at most d and one second, however slow Secrets Manager is.
func WithMaxWait(d time.Duration) Option {
	return func(s *Source) {
		if d > 0 {
			s.maxWait = d
		}
	}
}

// WithLogger makes the Source and its Transports log refusals, waits and failed reads (with
// version ids, never tokens) at debug and warn level. Without it they log nothing.
func WithLogger(l *slog.Logger) Option {
	return func(s *Source) {
		if l != nil {
			s.log = l
		}
	}
}

// Source reads the token from one Secrets Manager secret and caches it. It is safe for concurrent
// use; create one per secret and share it.
type Source struct {
	sm       SecretsManager
	secretID string
	ttl      time.Duration
	maxWait  time.Duration
	log      *slog.Logger

	// now and sleep are the clock; tests replace them (or run inside a synctest bubble, where the
	// defaults are already fake). jitter returns a value in [0, 1).
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
	jitter func() float64

	// sent numbers the Transport's requests in the order they are sent, so that an answer can be
	// told to come from a request sent after a wait ended (accepted).
	sent atomic.Uint64
	// watching is set while an acceptance means something (updateWatching): only then does a
	// Transport's answer take the lock (accepted).
	watching atomic.Bool

	mu     sync.Mutex
	cur    Token
	readAt time.Time // when cur was read; zero before the first successful read
	flight *flight   // the read in progress, if any
	// outlived is a refused token that AWSCURRENT still held at the end of a whole wait, and
	// outlivedCalls the calls it was refused for, the one used last at the end. One wait alone does
	// not say why Clear refused them: a rotator that stores late, or an incident of Clear's,
	// refuses every call for longer than a wait. Once Clear has accepted the token for a call sent
	// after the wait (outlivedSeq, acceptedAfter), or a call has outlived two waits with no
	// acceptance between them, the calls are taken to be refused for reasons of their own (an API
	// the API client lacks, say): their later refusals hold no other call, and those of the calls
	// proven so are answered at once (known). A refusal of any other call may be the rotation that
	// revokes the token, and holds every call. It is the live token in AWSCURRENT: typed, so that a
	// Source printed never shows it.
	outlived      sec.AccessToken
	outlivedCalls []outlivedCall
	outlivedSeq   uint64
	acceptedAfter bool
	// learnt are the calls proven refused (a wait after a refusal ended by an acceptance) with any
	// token so far, or refused again when retried with a newer token (refusedWithNewer), the one
	// learnt last at the end, at most maxCalls: with a newer token such a call is taken for
	// refused (known), so that its first refusal is judged rather than held against every call, as
	// Clear refuses it whatever the token. An acceptance of it forgets it (the Source watches
	// acceptances while any call is learnt).
	learnt []apicall.Call
}

// flight is one read (or one wait for a newer token) shared by every caller that needs it.
type flight struct {
	done    chan struct{}
	refused string    // the token the flight waits to see replaced; "" for a plain read
	since   time.Time // when the token was refused: the wait's maximum runs from then
	seq     uint64    // the last refuser's seq: an acceptance of a later request ends the wait
	// ctx ends a wait early, with accept, when Clear accepts the refused token for a request sent
	// after the wait began: the token is not revoked, and no newer one is coming.
	ctx    context.Context
	accept context.CancelFunc
	// holds: calls made during the wait join it rather than go out with the refused token. Not
	// while every call refused is one Clear refuses for its own reason (Source.known); the first
	// refusal of another call sets it.
	holds bool
	// judging: a call taken for refused, not proven, was refused with the token (Source.known).
	// That may be the rotation revoking it, so the wait holds the calls that cannot be sent again;
	// the others go out, and Clear's acceptance of one of them ends the wait.
	judging bool
	// unjudged: a call was taken for refused in it other than on an acceptance of the token since
	// a whole wait after its own refusal (learnt with an earlier token): the wait judges no call.
	unjudged bool
	// lastRefusal is when the last refusal joined the wait, and confirms says an acceptance that
	// ended it came from a request sent within judgeHold of it (Source.accepted).
	lastRefusal time.Time
	confirms    bool
	calls       []apicall.Call // the calls refused during the wait, at most maxCalls
	// next, on a plain read, is the wait for the successor of the cached token that a caller
	// said Clear refused while the read was under way. It runs if the read finds that token again
	// or fails: the callers of the read then go round and join it (again), rather than be handed
	// a token the Source knows Clear refused.
	next  *flight
	again bool
	tok   Token
	err   error
}

// NewSource returns a Source of the token document in secretID's AWSCURRENT version. It reads
// nothing until the first call to Token or Get.
func NewSource(sm SecretsManager, secretID string, opts ...Option) *Source {
	s := &Source{
		sm:       sm,
		secretID: secretID,
		ttl:      DefaultTTL,
		maxWait:  DefaultMaxWait,
		log:      slog.New(slog.DiscardHandler),
		now:      time.Now,
		sleep:    sleepCtx,
		jitter:   rand.Float64,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SecretID returns the secret the Source reads.
func (s *Source) SecretID() string { return s.secretID }

// Token returns the token to send as x-cleartax-auth-token: the cached one, or a fresh read when
// the cache is older than the TTL, past the token's valid_till, or empty. When a re-read after the
// TTL fails, the cached token is returned while its valid_till has not passed (see the package
// documentation).
func (s *Source) Token(ctx context.Context) (string, error) {
	t, err := s.Get(ctx)
	return t.Value(), err
}

// Get is Token with the version the token was read from, which Refused needs.
func (s *Source) Get(ctx context.Context) (Token, error) {
	return s.await(ctx, "", refuser{})
}

// getOnce is Get for a request that cannot be sent again (a Transport's whose body cannot be
// replayed): a wait that judges a call taken for refused holds it too (flight.judging).
func (s *Source) getOnce(ctx context.Context) (Token, error) {
	return s.await(ctx, "", refuser{once: true})
}

// Refused tells the Source that Clear refused t (it answered 401), and returns a newer token. If
// the cache already holds another token, that is returned at once. Otherwise the secret is
// re-read, and while AWSCURRENT still holds t it is re-read with backoff for up to the maximum
// wait (WithMaxWait): Clear revokes a token before the rotator has stored its successor. Any
// number of concurrent callers refusing the same token share one such wait. The error is a
// *Error of KindNoNewer when no newer token appeared in time.
//
// Refused cannot tell one call from another, nor see what Clear accepts, so it takes every
// refusal for the same call: once two whole waits have ended with t still in AWSCURRENT (or one,
// when a Transport of the Source saw Clear accept t since), later refusals of t are taken for
// refusals of that call for a reason of its own, and hold only their caller, who still waits (a
// Transport's acceptance of t can end the wait). The Transport tells the Source which call was
// refused and which calls Clear accepted, so that a refusal of another call, such as the
// rotation that revokes t, holds every call again, and a call taken for one Clear refuses gets its
// 401 at once.
func (s *Source) Refused(ctx context.Context, t Token) (Token, error) {
	return s.refusedCall(ctx, t, refuser{seq: s.sent.Load()})
}

// refusedCall is Refused for a refusal r.
func (s *Source) refusedCall(ctx context.Context, t Token, r refuser) (Token, error) {
	if t.Value() == "" {
		return s.Get(ctx)
	}
	return s.await(ctx, t.Value(), r)
}

// await returns a token acceptable to its caller: for refused == "", the cached token while it is
// fresh; otherwise any token other than refused. It joins the flight in progress when there is
// one, or starts one, and leaves it early only if ctx ends, or, for a refused caller, the
// maximum wait after it has. by says who refused the token.
func (s *Source) await(ctx context.Context, refused string, by refuser) (Token, error) {
	var end <-chan time.Time // a refused caller's own bound: the maximum wait from its refusal
	if refused != "" {
		t := time.NewTimer(s.maxWait + minRead)
		defer t.Stop()
		end = t.C
	}
	for {
		s.mu.Lock()
		if s.usable(refused, by.once) {
			t := s.cur
			s.mu.Unlock()
			return t, nil
		}
		f, late, answer := s.flightFor(refused, by)
		release := s.releaseAt(f, by.once)
		s.mu.Unlock()
		if answer != nil {
			return Token{}, answer
		}

		// A caller held only by a judging wait goes round at the end of its hold. (An unstopped
		// timer is collected since Go 1.23.)
		var held <-chan time.Time
		if !release.IsZero() {
			held = time.After(release.Sub(s.now()))
		}
		select {
		case <-f.done:
		case <-held:
			continue
		case <-ctx.Done():
			return Token{}, ctx.Err()
		case <-end:
			// A read under way when the token was refused, slower than the wait allows: the flight
			// goes on for the others, but this caller was promised an answer within the wait.
			return Token{}, &Error{Kind: KindNoNewer, SecretID: s.secretID, detail: "no newer token could be read within the maximum wait"}
		}
		// A flight that failed answers everyone who waited on it, so that a missing secret costs
		// one read however many callers ask. A flight that succeeded may have read a token this
		// caller cannot use (a plain read that found the refused token): go round again.
		//
		// But a caller that asked for no more than the current token and joined a wait for the
		// successor of a refused one goes round too when that wait failed: no newer token came
		// (Clear refused that one call for a reason of its own, an API the API client lacks, say),
		// or the secret could not be read during the wait. The token in AWSCURRENT, or the cached
		// one while its valid_till holds, is still the best there is, and Clear decides; the
		// wait's error was never about this caller's call.
		if f.again || late {
			continue
		}
		if f.err != nil && (refused != "" || f.refused == "") {
			return Token{}, f.err
		}
		if f.err != nil {
			continue
		}
		if refused == "" || f.tok.Value() != refused {
			return f.tok, nil
		}
	}
}

// flightFor returns the flight a caller of await waits on, joined or started, or the answer to a
// refusal Clear gave for a reason of the call's own. late says the caller, refused, is only to wait
// for the flight's end and go round: an acceptance has ended the wait for refused's successor,
// which answers its callers once its read under way returns, and a refusal made since is not its to
// judge (it may be the rotation revoking the token just accepted). s.mu must be held.
func (s *Source) flightFor(refused string, by refuser) (f *flight, late bool, answer error) {
	f = s.flight
	if _, proven := s.known(refused, by.call); proven && by.call != (apicall.Call{}) && !s.holding(refused) {
		// No newer token would cure it, and a wait would hold the caller and re-read the secret
		// for the maximum wait. Not while a wait that holds every call is under way: another
		// call's refusal says the token may be revoked. But a cache older than knownRecheck is
		// read again first: the rotator may have stored a newer token after all.
		switch {
		case f != nil && f.refused == "":
			return f, false, nil
		case f == nil && s.now().Sub(s.readAt) >= knownRecheck:
			return s.start(""), false, nil
		}
		return nil, false, s.callRefusedError(s.cur)
	}
	if w := s.waitingFor(refused); refused != "" && w != nil && w.ctx.Err() != nil {
		return f, true, nil
	}
	if f == nil {
		f = s.start(refused)
	}
	if refused != "" {
		s.refusal(f, refused, by)
	}
	return f, false, nil
}

// start starts a flight: a plain read, or the wait for the successor of refused. The flight is
// detached from the caller's context: other callers wait on it too, and it is bounded by the read
// timeout and the maximum wait. s.mu must be held.
func (s *Source) start(refused string) *flight {
	f := s.newFlight(refused)
	s.flight = f
	s.updateWatching()
	go s.fly(f)
	return f
}

// newFlight returns a flight, not started: a plain read, or the wait for the successor of
// refused, refused now. s.mu must be held.
func (s *Source) newFlight(refused string) *flight {
	f := &flight{done: make(chan struct{}), refused: refused, since: s.now()}
	if refused != "" {
		f.ctx, f.accept = context.WithCancel(context.Background())
	}
	return f
}

// usable reports whether the cache answers a caller, once when its request cannot be sent again;
// s.mu must be held.
func (s *Source) usable(refused string, once bool) bool {
	if s.readAt.IsZero() {
		return false
	}
	// The cached token has been refused and a wait for its successor is under way: join it rather
	// than send a request that Clear will refuse too. This holds for a caller refused an older
	// token as well: the cached one differs from it, but is no better. Not for a token a whole
	// wait has outlived, refused again for one of the calls it outlived: Clear refuses those, and
	// accepts it for the others.
	f := s.flight
	if f != nil && f.next != nil {
		f = f.next // a plain read that may find the refused token: its wait is as good as under way
	}
	if f != nil && f.refused != "" && f.refused == s.cur.Value() && (f.holds || once && !s.releaseAt(f, true).IsZero()) {
		return false
	}
	if refused != "" {
		return s.cur.Value() != refused
	}
	now := s.now()
	if f != nil && f.refused != "" && f.refused == s.cur.Value() && s.unexpired() {
		// A wait that holds no call is re-reading the secret for the cached token's successor:
		// the token is as fresh as a read would make it, and joining the wait would hold the call
		// for it.
		return true
	}
	if now.Sub(s.readAt) >= s.ttl || now.Before(s.readAt) {
		return false
	}
	// A token past its valid_till is re-read, unless it was already expired when read: then the
	// secret holds nothing better and re-reading on every call would only hammer Secrets Manager.
	exp := s.cur.ValidTill
	return exp.IsZero() || now.Before(exp) || !s.readAt.Before(exp)
}

// releaseAt is when a judging wait f (or its next) stops holding a caller whose request cannot be
// sent again (once); zero when it holds it for no such reason, or no longer. s.mu must be held.
func (s *Source) releaseAt(f *flight, once bool) time.Time {
	if f != nil && f.next != nil {
		f = f.next
	}
	if !once || f == nil || !f.judging || f.holds {
		return time.Time{}
	}
	if at := f.since.Add(judgeHold); s.now().Before(at) {
		return at
	}
	return time.Time{}
}

// unexpired reports whether the cache holds a token that has not been refused and whose
// valid_till, if it has one, has not passed; s.mu must be held.
func (s *Source) unexpired() bool {
	return !s.readAt.IsZero() && (s.cur.ValidTill.IsZero() || s.now().Before(s.cur.ValidTill))
}

// fly runs f and publishes its result.
func (s *Source) fly(f *flight) {
	var t Token
	var err error
	if f.refused == "" {
		t, err = s.read(context.Background(), DefaultReadTimeout)
	} else {
		t, err = s.waitNewer(f)
	}
	s.mu.Lock()
	if w := f.next; w != nil && (err != nil || t.Value() == w.refused) {
		// The read found the token a caller said Clear refused while it was under way, or failed:
		// neither it nor the token read before may be handed out. Wait for its successor, and
		// send the read's callers round to join the wait.
		if err == nil {
			s.cur, s.readAt = t, s.now()
		}
		s.flight, f.again = w, true
		s.mu.Unlock()
		close(f.done)
		s.fly(w)
		return
	}
	switch {
	case err == nil:
		s.cur, s.readAt = t, s.now()
	case f.refused == "" && s.unexpired():
		// Secrets Manager could not be read, or AWSCURRENT holds no token document: the token
		// read before is still the best there is, as long as Clear has not refused it (then
		// readAt is zero) and its valid_till has not passed. Try again after another TTL, not
		// on every call.
		s.log.Warn("cleartoken: cannot re-read the token secret; using the token read before until its valid_till",
			"secret_id", s.secretID, "version_id", s.cur.VersionID, "valid_till", s.cur.ValidTill, "error", err)
		s.readAt = s.now()
		t, err = s.cur, nil
	}
	s.flight = nil
	s.updateWatching()
	f.tok, f.err = t, err
	s.mu.Unlock()
	close(f.done)
}

// waitNewer re-reads the secret until it holds a token other than refused, with jittered
// exponential backoff, for at most the maximum wait. A read that fails (Secrets Manager throttles
// or cannot be reached, past the SDK's own retries) is tried again like one that found the refused
// token: the rotator may store the newer token a moment later. Its error is returned when it is
// the last read of the wait.
func (s *Source) waitNewer(f *flight) (Token, error) {
	defer f.accept()
	refused := f.refused
	deadline := f.since.Add(s.maxWait)
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		if f.ctx.Err() != nil {
			return s.acceptedMeanwhile(f)
		}
		// No read outlasts the wait by much: a slow Secrets Manager must not stretch the time an
		// ERP call is held beyond what WithMaxWait promises.
		timeout := min(DefaultReadTimeout, max(deadline.Sub(s.now()), minRead))
		t, err := s.read(f.ctx, timeout)
		if err == nil && t.Value() != refused {
			if attempt > 1 {
				s.log.Debug("cleartoken: a newer token appeared", "secret_id", s.secretID, "version_id", t.VersionID, "reads", attempt)
			}
			return t, nil
		}
		if f.ctx.Err() != nil {
			return s.acceptedMeanwhile(f)
		}
		left := deadline.Sub(s.now())
		if left <= 0 {
			// A last read that failed keeps the refused token out of the cache's way: the next Get
			// re-reads, and an outage does not serve it as the token read before.
			s.mu.Lock()
			if err == nil {
				// The last read showed what AWSCURRENT holds: it is the token to use until the
				// TTL, for the calls Clear accepts it for.
				s.cur, s.readAt = t, s.now()
				s.outlive(f, true)
			} else {
				s.readAt = time.Time{}
			}
			s.mu.Unlock()
			if err != nil {
				return Token{}, err
			}
			s.log.Warn("cleartoken: AWSCURRENT still holds the refused token", "secret_id", s.secretID,
				"version_id", t.VersionID, "waited", s.maxWait, "reads", attempt)
			return Token{}, &Error{Kind: KindNoNewer, SecretID: s.secretID, VersionID: t.VersionID}
		}
		d := time.Duration(float64(backoff) * (0.5 + 0.5*s.jitter()))
		_ = s.sleep(f.ctx, min(d, left))
		backoff = min(2*backoff, maxBackoff)
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
