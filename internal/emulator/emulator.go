// Package emulator is an in-memory stand-in for Clear's access token API, for tests and the local
// demo.
//
// The real API cannot be used for testing: it allows only 288 requests per client secret and UTC
// day, and every successful request revokes the token the ERP systems are using. The emulator keeps
// the behaviour the rotator depends on — the documented answers and error codes, revocation of the
// previous token on every issue, the daily limit that resets at midnight UTC, tokens that expire or
// never expire, each client secret with its own tokens and limit — and adds what the real API cannot
// offer: an injectable clock, one-shot faults (5xx, 408 and 429 answers with or without
// Retry-After, garbage, slow or missing answers, tokens issued but never delivered, valid_till
// drift or already past, error text that echoes the client secret or carries terminal escapes),
// an expiry that never moves, and counters that show exactly how many requests a client made.
//
// A Server is an http.Handler. Tests use it in-process through httptest, or with no socket at all
// through Transport, which also works inside a testing/synctest bubble; cmd/clear-emulator serves
// it on loopback and exposes the same controls over HTTP below /_emulator/.
package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// DefaultDailyLimit is Clear's documented limit of token requests per client secret and UTC day.
const DefaultDailyLimit = clear.DailyLimit

// defaultTokenLength is the length of the token in Clear's sample answer: "1.", a UUID, "_" and 64
// hex digits.
const defaultTokenLength = 103

// tokenPrefixLength is the length of a token's fixed part, "1.<uuid>_".
const tokenPrefixLength = 2 + 36 + 1

// Options configures a Server.
type Options struct {
	// Now is the clock behind the daily limit and token expiry; nil means time.Now, which the
	// /_emulator/clock control can then shift.
	Now func() time.Time
	// Lifetime is how long a new token stays valid. Zero (or negative) models an API client set to
	// "Never expires": valid_till is null and tokens live until revoked.
	Lifetime time.Duration
	// DailyLimit is the number of token requests allowed per client secret and UTC day; zero (or
	// negative) means DefaultDailyLimit.
	DailyLimit int
	// Secrets are the known, active client secrets.
	Secrets []string
	// TokenLength is the length of issued tokens, from 40 to clear.MaxTokenLength; zero means the
	// length of Clear's sample token (103).
	TokenLength int
	// RetryAfter makes the daily limit's 429 carry a Retry-After header: the whole seconds until
	// the next midnight UTC, when the limit resets.
	RetryAfter bool
	// FixedValidTill, if not zero, is the valid_till of every token issued, whatever the lifetime:
	// an expiry that does not move. Tokens die at that time.
	FixedValidTill time.Time
	// Logger, if set, receives one record per request with its status and error code only, never a
	// secret or a token. Nil logs nothing.
	Logger *slog.Logger
}

// Server emulates Clear's token API. It is safe for concurrent use.
type Server struct {
	now       func() time.Time
	realClock bool // whether now is time.Now, which /_emulator/clock may shift
	limit     int
	tokenLen  int
	log       *slog.Logger
	mux       *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{} // closed by Close to release delayed and hung requests

	mu         sync.Mutex
	offset     time.Duration // added to the real clock; see /_emulator/clock
	lifetime   time.Duration
	retryAfter bool               // see Options.RetryAfter
	fixedTill  time.Time          // see Options.FixedValidTill
	clients    map[string]*client // by client secret
	live       map[string]*client // latest token of each client -> its client
	faults     []Fault
	requests   int // token requests of any kind
	issued     int
}

// client is the state Clear keeps for one API client (one client secret).
type client struct {
	active    bool
	ipBlocked bool
	requests  int       // all requests ever
	day       time.Time // the UTC day that today counts
	today     int       // requests on day
	issued    int
	token     string    // latest token; "" once revoked without replacement
	expires   time.Time // zero: never expires
}

// New returns an emulator configured by opts. It panics if opts.TokenLength is out of range, a
// programming error in a test.
func New(opts Options) *Server {
	s := &Server{
		now:        opts.Now,
		realClock:  opts.Now == nil,
		limit:      opts.DailyLimit,
		tokenLen:   opts.TokenLength,
		log:        opts.Logger,
		closed:     make(chan struct{}),
		lifetime:   max(opts.Lifetime, 0),
		retryAfter: opts.RetryAfter,
		fixedTill:  opts.FixedValidTill,
		clients:    make(map[string]*client),
		live:       make(map[string]*client),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.limit <= 0 {
		s.limit = DefaultDailyLimit
	}
	if s.tokenLen == 0 {
		s.tokenLen = defaultTokenLength
	}
	if s.tokenLen <= tokenPrefixLength || s.tokenLen > clear.MaxTokenLength {
		panic(fmt.Sprintf("emulator: TokenLength %d is outside [%d, %d]", s.tokenLen, tokenPrefixLength+1, clear.MaxTokenLength))
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, secret := range opts.Secrets {
		s.AddSecret(secret)
	}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases every request held by a Delay or Hang fault by dropping its connection, so that
// an http.Server or httptest.Server serving the emulator can shut down. Afterwards such faults drop
// their connection at once; other requests are answered as usual.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

// clock returns the emulator's time. s.mu must be held.
func (s *Server) clock() time.Time { return s.now().Add(s.offset) }

// utcDay returns the start of t's day in UTC, when Clear resets its daily limit.
func utcDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// count records one request made with c's secret at now and returns c's count for that UTC day.
func (c *client) count(now time.Time) int {
	c.requests++
	if day := utcDay(now); !day.Equal(c.day) {
		c.day, c.today = day, 0
	}
	c.today++
	return c.today
}

// requestsOn returns c's request count for now's UTC day.
func (c *client) requestsOn(now time.Time) int {
	if utcDay(now).Equal(c.day) {
		return c.today
	}
	return 0
}

// liveAt reports whether c's latest token is valid at now.
func (c *client) liveAt(now time.Time) bool {
	return c.token != "" && (c.expires.IsZero() || now.Before(c.expires))
}

// revoke forgets c's token. s.mu must be held. Only c's token goes: Clear revokes per client
// secret, so the tokens of the other API clients stay live.
func (s *Server) revoke(c *client) {
	delete(s.live, c.token)
	c.token, c.expires = "", time.Time{}
}

// AddSecret makes secret a known, active client secret. It does nothing if secret is empty or
// already known, whatever its state.
func (s *Server) AddSecret(secret string) {
	if secret == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientLocked(secret)
}

// clientLocked returns secret's client, adding it as active if it is unknown. s.mu must be held.
func (s *Server) clientLocked(secret string) *client {
	c := s.clients[secret]
	if c == nil {
		c = &client{active: true}
		s.clients[secret] = c
	}
	return c
}

// SetSecretActive activates or deactivates secret, adding it if it is unknown. A deactivated
// secret gets CLI-SEC-002, and its token is revoked, as when an API client is deleted in Clear;
// reactivating it does not bring that token back.
func (s *Server) SetSecretActive(secret string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clientLocked(secret)
	c.active = active
	if !active {
		s.revoke(c)
	}
}

// SetIPBlocked makes requests with secret come from outside its allowed IP range (CLI-SEC-003),
// or not, adding secret if it is unknown. The token already issued stays live.
func (s *Server) SetIPBlocked(secret string, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientLocked(secret).ipBlocked = blocked
}

// SetLifetime sets the lifetime of the tokens issued from now on; zero (or negative) means they
// never expire. Tokens already issued keep their valid_till.
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = max(d, 0)
}

// SetFixedValidTill makes every token issued from now on carry valid_till t (and die then); the
// zero time goes back to the lifetime.
func (s *Server) SetFixedValidTill(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fixedTill = t
}

// SetRetryAfter turns the daily limit's Retry-After header on or off (see Options.RetryAfter).
func (s *Server) SetRetryAfter(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = on
}

// setClockOffset shifts the real clock by d; it fails when Options.Now drives the clock, since
// the test owning that clock moves it.
func (s *Server) setClockOffset(d time.Duration) error {
	if !s.realClock {
		return fmt.Errorf("the clock is Options.Now; move that clock instead")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset = d
	return nil
}

// Live reports whether token is the latest token of its secret and has not expired.
func (s *Server) Live(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.live[token]
	return c != nil && c.liveAt(s.clock())
}

// Requests returns the number of token requests ever made with secret, whatever their answer.
func (s *Server) Requests(secret string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[secret]; c != nil {
		return c.requests
	}
	return 0
}

// RequestsToday returns the number of token requests made with secret during the current UTC day
// of the emulator's clock: the count the daily limit applies to.
func (s *Server) RequestsToday(secret string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[secret]; c != nil {
		return c.requestsOn(s.clock())
	}
	return 0
}

// Issued returns the number of tokens issued for secret, including those whose answer was lost.
func (s *Server) Issued(secret string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[secret]; c != nil {
		return c.issued
	}
	return 0
}

// Stats is a snapshot of the emulator's counters. Secrets are keyed by SecretID, never by their
// value, so that Stats can be served and logged.
type Stats struct {
	// Requests counts token requests of any kind, including those without a known secret.
	Requests int `json:"requests"`
	// Issued counts tokens issued, including those whose answer was lost.
	Issued int `json:"issued"`
	// PendingFaults is the number of injected faults not yet consumed.
	PendingFaults int                    `json:"pending_faults"`
	Secrets       map[string]SecretStats `json:"secrets"`
}

// SecretStats are the counters of one client secret.
type SecretStats struct {
	Active        bool `json:"active"`
	IPBlocked     bool `json:"ip_blocked"`
	Requests      int  `json:"requests"`
	RequestsToday int  `json:"requests_today"`
	Issued        int  `json:"issued"`
	// Live reports whether the secret's latest token is live.
	Live bool `json:"live"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	st := Stats{Requests: s.requests, Issued: s.issued, PendingFaults: len(s.faults),
		Secrets: make(map[string]SecretStats, len(s.clients))}
	for secret, c := range s.clients {
		st.Secrets[SecretID(secret)] = SecretStats{Active: c.active, IPBlocked: c.ipBlocked,
			Requests: c.requests, RequestsToday: c.requestsOn(now), Issued: c.issued, Live: c.liveAt(now)}
	}
	return st
}

// SecretID returns the key of secret in Stats: the first 12 hex digits of its SHA-256, enough to
// tell a test's secrets apart without revealing any of them.
func SecretID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}
