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
	c, f, status, code := s.admit(r.Header.Get(clear.HeaderClientSecret))
	if status != 0 {
		s.replyError(w, status, code, "")
		return
	}
	// An IssueThenFail fault issues before its delay, so that with a Delay it models an answer lost
	// to a client timeout after Clear revoked the previous token.
	if f.IssueThenFail {
		s.issue(c)
	}
	if err := s.wait(r.Context(), f); errors.Is(err, errClosed) {
		panic(http.ErrAbortHandler) // drop the connection: the answer never comes
	} else if err != nil {
		return // the client gave up: nobody to answer
	}
	switch {
	case f.IssueThenFail:
		s.replyError(w, http.StatusInternalServerError, CodeServerError, newID())
	case f.Body != "":
		// A garbled 200 answer may still mean Clear issued a token and revoked the previous one,
		// which is what clear.KindMalformed assumes; the emulator takes that worst case.
		st := f.Status
		if st == 0 || st == http.StatusOK {
			st = http.StatusOK
			s.issue(c)
		}
		s.reply(w, st, "", []byte(f.Body))
	case f.Status != 0 && f.Status != http.StatusOK:
		s.replyFault(w, f)
	default:
		s.replyJSON(w, http.StatusOK, "", s.issue(c))
	}
}

// admit counts one token request and validates its secret, in the order Clear must: a request
// without a known secret cannot be attributed to a client, every other request counts against its
// client's daily limit whatever its answer. An admitted request takes the next fault, so faults are
// never wasted on requests that fail validation. A non-zero status is the answer to send instead.
func (s *Server) admit(secret string) (c *client, f Fault, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if secret == "" {
		return nil, f, http.StatusUnauthorized, CodeMissingSecret
	}
	c = s.clients[secret]
	if c == nil {
		return nil, f, http.StatusUnauthorized, CodeInvalidSecret
	}
	today := c.count(s.clock())
	switch {
	case !c.active:
		return nil, f, http.StatusUnauthorized, CodeInvalidSecret
	case c.ipBlocked:
		return nil, f, http.StatusUnauthorized, CodeIPBlocked
	case today > s.limit:
		return nil, f, http.StatusTooManyRequests, CodeRateLimited
	}
	if len(s.faults) > 0 {
		f, s.faults = s.faults[0], s.faults[1:]
	}
	return c, f, 0, ""
}

// issue mints a new token for c, revoking the previous one, and returns the answer that carries it.
func (s *Server) issue(c *client) grantBody {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoke(c)
	c.token = newToken(s.tokenLen)
	s.live[c.token] = c
	c.issued++
	s.issued++
	g := grantBody{AccessToken: c.token}
	if s.lifetime > 0 {
		// Clear announces whole seconds; truncating makes the token die exactly when announced.
		c.expires = s.clock().Add(s.lifetime).UTC().Truncate(time.Second)
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

// replyFault answers a Status fault with the body Clear would plausibly send.
func (s *Server) replyFault(w http.ResponseWriter, f Fault) {
	switch {
	case f.Status == http.StatusUnauthorized:
		code := f.Code
		if code == "" {
			code = CodeInvalidSecret
		}
		s.replyError(w, f.Status, code, "")
	case f.Status == http.StatusTooManyRequests:
		s.replyError(w, f.Status, CodeRateLimited, "")
	case f.Status >= 500:
		// Clear gives unhandled errors an error_id to quote to its support.
		s.replyError(w, f.Status, "CLR-"+strconv.Itoa(f.Status), newID())
	default:
		s.replyError(w, f.Status, "CLR-"+strconv.Itoa(f.Status), "")
	}
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
	msg, ok := messages[code]
	if !ok {
		msg = http.StatusText(status)
	}
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
func (s *Server) reply(w http.ResponseWriter, status int, code string, body []byte) {
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
