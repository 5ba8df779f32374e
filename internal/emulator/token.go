package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// Error codes the emulator answers with. The CLI-SEC codes are Clear's documented ones; Clear does
// not document the bodies of its 429 and 5xx answers or of its product APIs, so the others are
// plausible inventions.
const (
	CodeMissingSecret = "CLI-SEC-001"
	CodeInvalidSecret = "CLI-SEC-002"
	CodeIPBlocked     = "CLI-SEC-003"
	CodeRateLimited   = "CLI-RATE-001"
	CodeServerError   = "CLR-500"
	CodeMissingToken  = "CLI-TOK-001"
	CodeInvalidToken  = "CLI-TOK-002"
)

var messages = map[string]string{
	CodeMissingSecret: "Client secret header is missing or value is empty.",
	CodeInvalidSecret: "Invalid or inactive client secret.",
	CodeIPBlocked:     "API Client IP is not within the allowed IP range.",
	CodeRateLimited:   "Too many requests: the daily limit of this client secret is reached until 00:00 UTC.",
	CodeServerError:   "Internal server error",
	CodeMissingToken:  "Auth token header is missing or value is empty.",
	CodeInvalidToken:  "Invalid, revoked or expired auth token.",
}

// validTillLayout is how Clear writes valid_till: UTC, whole seconds, "+00:00".
const validTillLayout = "2006-01-02T15:04:05-07:00"

// errClosed is why a held request ends when the emulator is closed.
var errClosed = errors.New("emulator closed")

type grantBody struct {
	AccessToken string  `json:"access_token"`
	ValidTill   *string `json:"valid_till"`
}

type errorDetail struct {
	Code    string  `json:"error_code"`
	Message string  `json:"error_message"`
	Source  string  `json:"error_source"`
	ID      *string `json:"error_id"`
}

type errorsBody struct {
	Errors []errorDetail `json:"errors"`
}

// handleToken serves GET /integration/v1/authz/token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	sent := r.Header.Get(clear.HeaderClientSecret)
	c, f, status, code, retryAfter := s.admit(sent)
	if status != 0 {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		s.replyError(w, status, code, "")
		return
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	// An IssueThenFail fault issues before its delay, so that with a Delay it models an answer lost
	// to a client timeout after Clear revoked the previous token.
	if f.IssueThenFail {
		s.issue(c, f)
	}
	if err := s.wait(r.Context(), f); errors.Is(err, errClosed) {
		panic(http.ErrAbortHandler) // drop the connection: the answer never comes
	} else if err != nil {
		return // the client gave up: nobody to answer
	}
	switch {
	case f.IssueThenFail:
		s.replyFault(w, Fault{Status: http.StatusInternalServerError, Message: f.Message, EchoSecret: f.EchoSecret}, sent)
	case f.Body != "":
		// A garbled 200 answer may still mean Clear issued a token and revoked the previous one,
		// which is what clear.KindMalformed assumes; the emulator takes that worst case.
		st := f.Status
		if st == 0 || st == http.StatusOK {
			st = http.StatusOK
			s.issue(c, f)
		}
		s.reply(w, st, "", []byte(f.Body))
	case f.Status != 0 && f.Status != http.StatusOK, f.EchoSecret:
		if f.Status == 0 || f.Status == http.StatusOK {
			f.Status = http.StatusUnauthorized
		}
		s.replyFault(w, f, sent)
	default:
		g := s.issue(c, f)
		if f.ValidTill != nil {
			s.replyJSON(w, http.StatusOK, "", struct {
				AccessToken string          `json:"access_token"`
				ValidTill   json.RawMessage `json:"valid_till"`
			}{g.AccessToken, f.ValidTill})
			return
		}
		s.replyJSON(w, http.StatusOK, "", g)
	}
}

// admit counts one token request and validates its secret, in the order Clear must: a request
// without a known secret cannot be attributed to a client, every other request counts against its
// client's daily limit whatever its answer. An admitted request takes the next fault, so faults are
// never wasted on requests that fail validation. A non-zero status is the answer to send instead,
// with retryAfter as its Retry-After header when not empty.
func (s *Server) admit(secret string) (c *client, f Fault, status int, code, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if secret == "" {
		return nil, f, http.StatusUnauthorized, CodeMissingSecret, ""
	}
	c = s.clients[secret]
	if c == nil {
		return nil, f, http.StatusUnauthorized, CodeInvalidSecret, ""
	}
	now := s.clock()
	today := c.count(now)
	switch {
	case !c.active:
		return nil, f, http.StatusUnauthorized, CodeInvalidSecret, ""
	case c.ipBlocked:
		return nil, f, http.StatusUnauthorized, CodeIPBlocked, ""
	case today > s.limit:
		if s.retryAfter {
			// Whole seconds, rounded up, so that a client that waits exactly this long finds the
			// limit reset.
			wait := utcDay(now).Add(24 * time.Hour).Sub(now)
			retryAfter = strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)
		}
		return nil, f, http.StatusTooManyRequests, CodeRateLimited, retryAfter
	}
	if len(s.faults) > 0 {
		f, s.faults = s.faults[0], s.faults[1:]
	}
	return c, f, 0, "", ""
}

// issue mints a new token for c, revoking c's previous one (and no other client's), and returns
// the answer that carries it. The fault f may fix its valid_till in the past.
func (s *Server) issue(c *client, f Fault) grantBody {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoke(c)
	c.token = newToken(s.tokenLen)
	s.live[c.token] = c
	c.issued++
	s.issued++
	g := grantBody{AccessToken: c.token}
	now := s.clock()
	switch {
	case f.PastValidTill:
		c.expires = now.Add(-time.Minute).UTC().Truncate(time.Second)
	case !s.fixedTill.IsZero():
		c.expires = s.fixedTill.UTC().Truncate(time.Second)
	case s.lifetime > 0:
		// Clear announces whole seconds; truncating makes the token die exactly when announced.
		c.expires = now.Add(s.lifetime).UTC().Truncate(time.Second)
	}
	if !c.expires.IsZero() {
		v := c.expires.Format(validTillLayout)
		g.ValidTill = &v
	}
	return g
}

// wait holds a request for f's Delay, or until the client gives up if f hangs. It returns nil
// when the answer is due, the context's error if the client gave up, or errClosed.
func (s *Server) wait(ctx context.Context, f Fault) error {
	var due <-chan time.Time
	if !f.Hang {
		if f.Delay <= 0 {
			return nil
		}
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		due = t.C
	}
	select {
	case <-due:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return errClosed
	}
}

// replyFault answers a Status fault with the body Clear would plausibly send; sent is the
// request's client secret, quoted only by an EchoSecret fault.
func (s *Server) replyFault(w http.ResponseWriter, f Fault, sent string) {
	var code, id string
	switch {
	case f.Status == http.StatusUnauthorized:
		code = f.Code
		if code == "" {
			code = CodeInvalidSecret
		}
	case f.Status == http.StatusTooManyRequests:
		code = CodeRateLimited
	case f.Status >= 500:
		// Clear gives unhandled errors an error_id to quote to its support.
		code, id = "CLR-"+strconv.Itoa(f.Status), newID()
	default:
		code = "CLR-" + strconv.Itoa(f.Status)
	}
	msg := f.Message
	if msg == "" {
		msg = messageOf(code, f.Status)
	}
	if f.EchoSecret {
		msg += " Secret received: " + sent
		id = "req-" + sent
	}
	s.replyErrorMessage(w, f.Status, code, msg, id)
}

// messageOf is the error_message that goes with code.
func messageOf(code string, status int) string {
	if msg, ok := messages[code]; ok {
		return msg
	}
	return http.StatusText(status)
}

// handlePing serves GET /_emulator/api/ping, a stand-in for Clear's product APIs: it lets a demo
// ERP check that the token it was handed still works.
func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	token := r.Header.Get(clear.HeaderAuthToken)
	if token == "" {
		s.replyError(w, http.StatusUnauthorized, CodeMissingToken, "")
		return
	}
	if !s.Live(token) {
		s.replyError(w, http.StatusUnauthorized, CodeInvalidToken, "")
		return
	}
	s.replyJSON(w, http.StatusOK, "", map[string]bool{"ok": true})
}

// replyError answers with Clear's errors document; id is the error_id, null when empty.
func (s *Server) replyError(w http.ResponseWriter, status int, code, id string) {
	s.replyErrorMessage(w, status, code, messageOf(code, status), id)
}

// replyErrorMessage answers with Clear's errors document holding msg.
func (s *Server) replyErrorMessage(w http.ResponseWriter, status int, code, msg, id string) {
	d := errorDetail{Code: code, Message: msg, Source: "CLEAR"}
	if id != "" {
		d.ID = &id
	}
	s.replyJSON(w, status, code, errorsBody{Errors: []errorDetail{d}})
}

func (s *Server) replyJSON(w http.ResponseWriter, status int, code string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // the emulator's own documents always marshal
	}
	s.reply(w, status, code, body)
}

// reply writes an answer and logs its status and code, never its body: the body may hold a token.
// Its Date header comes from the emulator's clock, so that an HTTP-date Retry-After can be
// measured against it as against Clear's.
func (s *Server) reply(w http.ResponseWriter, status int, code string, body []byte) {
	s.mu.Lock()
	date := s.clock().UTC().Format(http.TimeFormat)
	s.mu.Unlock()
	w.Header().Set("Date", date)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	s.log.Info("emulator answer", "status", status, "code", code)
}

// newToken returns a random token shaped like Clear's sample, "1.<uuid>_<hex>", n characters long.
func newToken(n int) string {
	tail := make([]byte, (n-tokenPrefixLength+1)/2)
	_, _ = rand.Read(tail) // never fails (see crypto/rand.Read)
	return "1." + newID() + "_" + hex.EncodeToString(tail)[:n-tokenPrefixLength]
}

// newID returns a random version 4 UUID.
func newID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
