package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Fault is a one-shot misbehaviour of the token API. Injected faults form a FIFO queue; each is
// consumed by the next token request whose secret is valid and within its daily limit, so a
// faulty answer still counts against the limit like any real request.
//
// The zero Fault is a normal answer; the fields combine as follows. Delay (or Hang) comes first,
// except that an IssueThenFail fault issues its token before waiting. Then Hang never answers,
// IssueThenFail answers 500, Body is sent as is, a Status other than 200 answers that status with
// an errors document, and anything else is a normal answer.
type Fault struct {
	// Status is the HTTP status to answer, such as 500, 502, 429 or 401; 0 or 200 is success.
	Status int
	// Code is the error_code of a 401 answer (CLI-SEC-001 to -003); empty means CLI-SEC-002.
	Code string
	// Delay holds the answer back, or drops it if the client gives up first (nothing is issued
	// then). Alone, it makes a slow answer that still issues a token.
	Delay time.Duration
	// Body is sent instead of the real answer, with Status (default 200). With status 200, a token
	// is issued (revoking the previous one) and lost, as with a garbled answer from Clear.
	Body string
	// Hang never answers; the request ends when the client gives up or the Server is closed.
	Hang bool
	// IssueThenFail issues a token, revoking the previous one, but answers 500: an answer lost
	// after Clear did the work.
	IssueThenFail bool
	// RetryAfter, if set, is sent verbatim as the answer's Retry-After header (delta-seconds, an
	// HTTP-date or garbage), typically with Status 429.
	RetryAfter string
	// Message replaces the error_message of an error answer (a Status fault or IssueThenFail),
	// for hostile text such as terminal escapes and bidi overrides.
	Message string
	// EchoSecret makes an error answer (Status, 401 if none) quote the request's client secret in
	// its error_message and error_id, as a careless server might.
	EchoSecret bool
	// ValidTill, if set, is the raw JSON sent as valid_till in a normal answer (for example
	// 1700000000, "1700000000" or "2023-04-11"): valid_till format drift. The token issued still
	// expires when the emulator's lifetime says.
	ValidTill json.RawMessage
	// PastValidTill issues a token whose valid_till is a minute before the emulator's clock: it is
	// expired when it arrives, as when Clear's clock is behind the caller's.
	PastValidTill bool
}

// RequestTimeout is a 408: the server gave up waiting for the request.
func RequestTimeout() Fault { return Fault{Status: 408} }

// RateLimited is a 429 with the given Retry-After header value ("" for none). It is a fault, not
// the daily limit, so it says nothing about the counters.
func RateLimited(retryAfter string) Fault { return Fault{Status: 429, RetryAfter: retryAfter} }

// EchoSecret is a 401 whose error_message and error_id quote the request's client secret.
func EchoSecret() Fault { return Fault{Status: 401, EchoSecret: true} }

// HostileText is a 500 whose error_message holds a C1 CSI (U+009B), a bidi override (U+202E),
// an isolate (U+2066), a line separator (U+2028) and a newline.
func HostileText() Fault {
	return Fault{Status: 500, Message: "boom \u009b31m red \u202eevil\u202c \u2066iso\u2069 \u2028line\nnext"}
}

// DriftNumber issues a token whose valid_till is a JSON number of epoch seconds.
func DriftNumber() Fault { return Fault{ValidTill: json.RawMessage(`1700000000`)} }

// DriftEpochString issues a token whose valid_till is a string of epoch seconds.
func DriftEpochString() Fault { return Fault{ValidTill: json.RawMessage(`"1700000000"`)} }

// DriftBareDate issues a token whose valid_till is a date without a time.
func DriftBareDate() Fault { return Fault{ValidTill: json.RawMessage(`"2023-04-11"`)} }

// PastValidTill issues a token whose valid_till has already passed.
func PastValidTill() Fault { return Fault{PastValidTill: true} }

// ServerError is Clear failing with a 500 and an error_id, without issuing a token.
func ServerError() Fault { return Fault{Status: 500} }

// Malformed is a 200 answer that is not JSON (it is cut short).
func Malformed() Fault { return Fault{Body: `{"access_token":"1.2f205010-b96c-44a`} }

// Oversized is a valid-looking answer whose token is 300 characters, more than Clear's maximum.
func Oversized() Fault {
	return Fault{Body: `{"access_token":"1.` + strings.Repeat("a", 298) + `","valid_till":null}`}
}

// NonPrintable is a valid-looking answer whose token holds a control character, which cannot
// travel in an HTTP header.
func NonPrintable() Fault {
	return Fault{Body: `{"access_token":"1.2f205010\u0007b96c","valid_till":null}`}
}

// Inject appends faults to the queue. It panics if a fault's Status is neither 0 nor between 200
// and 599, a programming error in a test.
func (s *Server) Inject(faults ...Fault) {
	for _, f := range faults {
		if err := f.validate(); err != nil {
			panic("emulator: " + err.Error())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// faultJSON is Fault's form in the control API: snake_case names, Delay as a Go duration string.
type faultJSON struct {
	Status        int    `json:"status,omitempty"`
	Code          string `json:"code,omitempty"`
	Delay         string `json:"delay,omitempty"`
	Body          string `json:"body,omitempty"`
	Hang          bool   `json:"hang,omitempty"`
	IssueThenFail bool   `json:"issue_then_fail,omitempty"`
	RetryAfter    string `json:"retry_after,omitempty"`
	Message       string `json:"message,omitempty"`
	EchoSecret    bool   `json:"echo_secret,omitempty"`
	// ValidTill is the raw JSON of valid_till, e.g. {"valid_till":1700000000}.
	ValidTill     json.RawMessage `json:"valid_till,omitempty"`
	PastValidTill bool            `json:"past_valid_till,omitempty"`
}

// MarshalJSON encodes f as the control API expects it, e.g. {"status":500} or {"delay":"2s"}.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Status: f.Status, Code: f.Code, Body: f.Body, Hang: f.Hang, IssueThenFail: f.IssueThenFail,
		RetryAfter: f.RetryAfter, Message: f.Message, EchoSecret: f.EchoSecret, ValidTill: f.ValidTill,
		PastValidTill: f.PastValidTill}
	if f.Delay != 0 {
		j.Delay = f.Delay.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the control API's form of a fault, rejecting unknown fields (a misspelt
// field would otherwise turn a fault into a normal answer) and statuses net/http cannot send.
func (f *Fault) UnmarshalJSON(data []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	var d time.Duration
	if j.Delay != "" {
		var err error
		if d, err = time.ParseDuration(j.Delay); err != nil || d < 0 {
			return fmt.Errorf("fault: delay %q is not a non-negative Go duration", j.Delay)
		}
	}
	*f = Fault{Status: j.Status, Code: j.Code, Delay: d, Body: j.Body, Hang: j.Hang, IssueThenFail: j.IssueThenFail,
		RetryAfter: j.RetryAfter, Message: j.Message, EchoSecret: j.EchoSecret, ValidTill: j.ValidTill,
		PastValidTill: j.PastValidTill}
	return f.validate()
}

// validate rejects statuses that net/http cannot send or that make no sense as an answer, a
// valid_till that is not JSON, and a Retry-After that cannot travel in a header.
func (f Fault) validate() error {
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return fmt.Errorf("fault: status %d is not between 200 and 599", f.Status)
	}
	if f.ValidTill != nil && !json.Valid(f.ValidTill) {
		return fmt.Errorf("fault: valid_till %q is not JSON", f.ValidTill)
	}
	if strings.ContainsAny(f.RetryAfter, "\r\n\x00") {
		return fmt.Errorf("fault: retry_after holds a line break")
	}
	return nil
}
