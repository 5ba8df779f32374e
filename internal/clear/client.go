package clear

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// TokenPath is the token API's path below the base URL.
const TokenPath = "/integration/v1/authz/token"

// HeaderClientSecret is the request header that carries the client secret.
const HeaderClientSecret = "x-clear-client-secret"

// HeaderAuthToken is the header ERP systems send the access token in.
const HeaderAuthToken = "x-cleartax-auth-token"

// MaxTokenLength is the longest access token Clear documents (MaxLength: 256).
const MaxTokenLength = secret.MaxTokenLength

// DailyLimit is Clear's documented limit of token requests per client secret and UTC day; past it,
// Clear answers 429 until midnight UTC.
const DailyLimit = 288

// DefaultTimeout bounds one token request, connection to last byte.
const DefaultTimeout = 30 * time.Second

// maxBody caps how much of an answer is read: a real answer is a few hundred bytes.
const maxBody = 64 << 10

// Grant is a parsed, validated answer from the token API.
type Grant struct {
	AccessToken AccessToken
	// ValidTill is when the token expires, or nil when the API client never expires or when
	// valid_till was not understood (then Drift says so).
	ValidTill *time.Time
	// Drift is empty unless valid_till was present but not understood (a number, an epoch, a bare
	// date, any other text): then it describes what arrived, sanitized, for a loud report. The
	// token is still usable and must be stored, since issuing it has revoked the previous one;
	// its expiry is unknown, so it must be renewed on a conservative schedule.
	Drift string
}

// Client calls Clear's token API. The zero value is not usable; build one with NewClient.
type Client struct {
	base *url.URL
	http *http.Client
	now  func() time.Time // measures an HTTP-date Retry-After when the answer has no Date
	// traced is true when the transport is net/http's, which reports a request's write (Token's
	// httptrace); with another, a failed request is taken to have left.
	traced bool
}

// ParseBaseURL validates a Clear base URL. It must be https, except that plain http is allowed for
// loopback hosts (tests and the local demo), so that a client secret never crosses a network in clear
// text. A refusal is a *BaseURLError, which never quotes s: its user info or query may carry a
// password or a key. This is the one base URL rule; the configuration reports its reasons.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	why := ""
	switch {
	case s == "":
		why = "is empty"
	case err != nil:
		why = "is not a URL"
	case u.User != nil || strings.Contains(s, "@"):
		why = "must not contain a user name or password; Clear authenticates with the client secret"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "": // "https://host/?" would put the token path after a '?'
		why = "must not carry a query or a fragment"
	case u.Scheme == "http" && !IsLoopback(u.Hostname()):
		why = "uses http, but http is allowed only for loopback hosts; use https"
	case u.Scheme != "https" && u.Scheme != "http":
		why = "has the wrong scheme: scheme must be https"
	case u.Host == "":
		why = "has no host"
	default:
		return u, nil
	}
	return nil, &BaseURLError{Reason: why}
}

// BaseURLError is why ParseBaseURL refused a base URL, without the URL.
type BaseURLError struct{ Reason string }

func (e *BaseURLError) Error() string { return "base URL " + e.Reason }

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewClient returns a client for the API at baseURL (see ParseBaseURL). A nil httpClient gets a
// default one with DefaultTimeout. Whatever client is given, redirects are never followed: a
// redirect would carry the client secret header to wherever it points. And every request goes on
// a connection of its own when the transport is net/http's (nil or an *http.Transport): see
// singleUse. Another RoundTripper must not send a request twice either.
func NewClient(baseURL string, httpClient *http.Client) (*Client, error) {
	u, err := ParseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	var hc http.Client
	if httpClient != nil {
		hc = *httpClient
	} else {
		hc.Timeout = DefaultTimeout
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc.Transport = singleUse(hc.Transport)
	_, traced := hc.Transport.(*http.Transport)
	return &Client{base: u, http: &hc, now: time.Now, traced: traced}, nil
}

// singleUse returns rt, or net/http's default transport for nil, with keep-alives off when it is
// an *http.Transport. net/http sends an idempotent request again, and any GET counts as one, when
// a connection it reused closes before the answer. Clear's token GET is not idempotent: the
// resend asks for a second token, a request the engine never counted against the daily budget
// and one it would not have made (a dropped answer is the engine's to judge: see Kind). A
// connection that was never used before is never retried that way, and a request every few
// minutes at most has nothing to gain from a kept one.
func singleUse(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	t = t.Clone()
	t.DisableKeepAlives = true
	return t
}

// BaseURL returns the validated base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Token asks Clear for a new access token. Every successful call revokes the previous token of
// this client secret, so callers must make it only when a rotation is due and claimed. The error
// is always an *Error. Every text it takes from Clear's answer is sanitized, and the client secret
// it sent is redacted from it, so that an answer echoing the secret cannot carry it into a log.
func (c *Client) Token(ctx context.Context, cs ClientSecret) (Grant, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+TokenPath, nil)
	if err != nil {
		return Grant{}, &Error{Kind: KindRejected, Message: "building request: " + err.Error()}
	}
	req.Header.Set(HeaderClientSecret, cs.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clear-rotator")
	// Whether the request left: once it has, Clear may have issued a token whatever becomes of
	// the answer (Error.MayHaveIssued).
	var sent atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { sent.Store(true) }}))
	resp, err := c.http.Do(req)
	if err != nil {
		// Only net/http's transport reports the write; another is taken to have sent it.
		return Grant{}, networkError(err, cs, sent.Load() || !c.traced)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return Grant{}, networkError(err, cs, true)
	}
	if len(body) > maxBody {
		if resp.StatusCode == http.StatusOK {
			return Grant{}, &Error{Kind: KindMalformed, Status: resp.StatusCode,
				Message: fmt.Sprintf("answer is larger than %d bytes", maxBody)}
		}
		// A refusal with a page too large to be Clear's errors document (a proxy's, a CDN's) is
		// still a refusal: its status alone classifies it.
		body = nil
	}
	g, err := parse(resp.StatusCode, body, cs.Reveal())
	var e *Error
	if errors.As(err, &e) && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), resp.Header.Get("Date"), c.now())
	}
	return g, err
}

// MaxRetryAfter caps a Retry-After: Clear's own limit resets daily, so a longer wait is garbage.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter returns how long a Retry-After header value asks to wait: delta-seconds, or an
// HTTP-date measured against date (the answer's Date header) when that parses, else against now,
// so that a clock difference between Clear and the rotator does not stretch or shrink the wait.
// An absent, unparseable, negative or past value gives 0 (no advice); waits above MaxRetryAfter
// are capped.
func ParseRetryAfter(value, date string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if strings.Trim(value, "0123456789") == "" {
		if len(value) > 9 { // more than 31 years of seconds: the cap applies, and no overflow
			return MaxRetryAfter
		}
		n, _ := strconv.Atoi(value)
		return min(time.Duration(n)*time.Second, MaxRetryAfter)
	}
	at, err := http.ParseTime(value)
	if err != nil {
		return 0
	}
	if d, err := http.ParseTime(strings.TrimSpace(date)); err == nil {
		now = d
	}
	wait := at.Sub(now)
	if wait <= 0 {
		return 0
	}
	return min(wait, MaxRetryAfter)
}

// networkError turns a transport failure into a transient *Error whose text names the failure
// but never the request's headers; sent says whether the request had left.
func networkError(err error, cs ClientSecret, sent bool) *Error {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Op + " " + ue.URL + ": " + ue.Err.Error()
		if ue.Timeout() {
			msg = ue.Op + " " + ue.URL + ": timeout"
		}
	}
	msg = secret.RedactProxyText(msg) // a malformed proxy address is quoted whole by Go
	return &Error{Kind: KindTransient, Message: Sanitize(secret.Redact(msg, cs.Reveal())), Err: err, Unsent: !sent}
}

// answer is the token API's JSON document, success or failure. Its errors are decoded apart
// (details), so that an errors field of an odd shape in a success cannot cost the token beside it.
type answer struct {
	AccessToken *string          `json:"access_token"`
	ValidTill   *json.RawMessage `json:"valid_till"`
	Errors      json.RawMessage  `json:"errors"`
}

// errorDetail is one of Clear's error details objects.
type errorDetail struct {
	Code, Message string
	ID            *string
}

// details returns the answer's error details, or none when errors is not a list. Each field is
// read on its own: one of another type than Clear documents (an error_id that is a number) is left
// empty, and does not cost the error_code beside it, on which the runbook's remedy depends. An
// entry that is not an object is an empty detail.
func (a answer) details() []errorDetail {
	var list []map[string]json.RawMessage
	if json.Unmarshal(a.Errors, &list) != nil {
		var raw []json.RawMessage
		if json.Unmarshal(a.Errors, &raw) != nil {
			return nil
		}
		list = make([]map[string]json.RawMessage, len(raw))
		for i, r := range raw {
			_ = json.Unmarshal(r, &list[i]) // not an object: an empty detail
		}
	}
	text := func(m map[string]json.RawMessage, key string) *string {
		var s string
		if json.Unmarshal(m[key], &s) != nil {
			return nil
		}
		return &s
	}
	d := make([]errorDetail, len(list))
	for i, m := range list {
		if c := text(m, "error_code"); c != nil {
			d[i].Code = *c
		}
		if msg := text(m, "error_message"); msg != nil {
			d[i].Message = *msg
		}
		d[i].ID = text(m, "error_id")
	}
	return d
}

// carriesErrors reports whether the answer's errors field holds anything: Clear leaves it out of a
// success, and null, "", [] and {} hold nothing.
func (a answer) carriesErrors() bool {
	var v any
	if len(a.Errors) == 0 || json.Unmarshal(a.Errors, &v) != nil {
		return false
	}
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// ParseResponse classifies and validates one answer of the token API. A 200 answer must hold a
// printable token of at most MaxTokenLength characters (see secret.CheckToken); anything else is a
// KindMalformed error, so that garbage is never stored. A valid_till that is null (or absent)
// means the token never expires; one that is present but not an ISO 8601 time leaves ValidTill
// nil and is described in Grant.Drift, with no error, because the token itself is usable and
// Clear has already revoked the previous one.
func ParseResponse(status int, body []byte) (Grant, error) { return parse(status, body) }

// parse is ParseResponse that also redacts secrets from every text it takes from the answer, and
// refuses a token that spells one of them: stored, it would hand the client secret to every reader
// of the token secret.
func parse(status int, body []byte, secrets ...string) (Grant, error) {
	redact := secret.NewMatcher(secrets...)
	clean := func(s string) string { return Sanitize(redact.Redact(s)) }
	var a answer
	jsonErr := json.Unmarshal(body, &a)
	if status != http.StatusOK {
		e := &Error{Status: status, Kind: kindOf(status)}
		if d := a.details(); jsonErr == nil && len(d) > 0 {
			first := d[0]
			e.Code = clean(first.Code)
			e.Message = clean(first.Message)
			if first.ID != nil {
				e.ErrorID = clean(*first.ID)
			}
		} else {
			e.Message = http.StatusText(status)
		}
		return Grant{}, e
	}
	malformed := func(format string, args ...any) (Grant, error) {
		return Grant{}, &Error{Kind: KindMalformed, Status: status, Message: fmt.Sprintf(format, args...)}
	}
	if jsonErr != nil {
		return malformed("answer is not a JSON object: %s", clean(jsonErr.Error()))
	}
	if a.carriesErrors() {
		code := ""
		if d := a.details(); len(d) > 0 {
			code = d[0].Code
		}
		return malformed("answer has status 200 but carries errors (%s)", clean(code))
	}
	if a.AccessToken == nil {
		return malformed("answer has no access_token")
	}
	tok := *a.AccessToken
	if err := secret.CheckToken(tok, MaxTokenLength, secrets...); err != nil {
		return malformed("access_token %s", err)
	}
	g := Grant{AccessToken: NewAccessToken(tok)}
	if a.ValidTill == nil {
		// Clear documents null for "never expires"; a missing field is taken the same way.
		return g, nil
	}
	raw := []byte(*a.ValidTill)
	var s string
	switch raw[0] {
	case 'n': // null
		return g, nil
	case '"':
		_ = json.Unmarshal(raw, &s) // it is a valid JSON string: the whole answer decoded
	case 't', 'f':
		g.Drift = "valid_till is a boolean, not an ISO 8601 time"
		return g, nil
	case '{':
		g.Drift = "valid_till is an object, not an ISO 8601 time"
		return g, nil
	case '[':
		g.Drift = "valid_till is an array, not an ISO 8601 time"
		return g, nil
	default:
		g.Drift = fmt.Sprintf("valid_till %s is a number, not an ISO 8601 time", clean(string(raw)))
		return g, nil
	}
	t, err := ParseTime(s)
	if err != nil {
		g.Drift = fmt.Sprintf("valid_till %q is not an ISO 8601 time", clean(s))
		return g, nil
	}
	g.ValidTill = &t
	return g, nil
}

// timeLayouts are the ISO 8601 forms ParseTime accepts: the extended form Clear documents, its
// offset written as Z, +hh:mm, +hhmm or +hh, with or without fractional seconds; RFC 3339's
// space instead of the T; the basic form. Each names one instant. The form without an offset is
// taken as UTC, as Clear writes its times in UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"20060102T150405.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
}

// ParseTime parses the ISO 8601 forms Clear uses or might drift to ("2023-04-11T20:21:24+00:00",
// with or without fractional seconds, with Z, +0000 or +00; see timeLayouts) and returns the time
// in UTC. A bare date or an epoch number is not a time: it fails, and so does a time whose UTC
// instant falls outside the years 0-9999 ("9999-12-31T23:59:59-05:00"): no RFC 3339 document can
// hold it, so taking it as a time would make the token that carries it impossible to store.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			if y := t.UTC().Year(); y < 0 || y > 9999 {
				return time.Time{}, fmt.Errorf("not a time a document can hold (year %d in UTC): %q", y, s)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time: %q", s)
}

func kindOf(status int) Kind {
	switch {
	case status == http.StatusUnauthorized:
		return KindAuth
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == http.StatusRequestTimeout, status >= 500:
		// A 408 means the server gave up waiting for the request: the same request may succeed.
		return KindTransient
	default:
		// Redirects (never followed) and other 4xx answers mean the base URL or the request is
		// wrong: retrying the same request cannot help.
		return KindRejected
	}
}

// Sanitize makes text from a remote party safe to log and show: printable, one line, at most 300
// bytes. Every character that is not what it looks like becomes a space: C0 and C1 controls (U+009B
// is a terminal's CSI) and DEL, line and paragraph separators, and the whole of Unicode's format
// category, which holds the bidirectional controls that make a log line read differently than it
// is stored (U+202E reverses the text after it) and the invisible ones that hide or split a word
// (U+200B, U+2060, U+FEFF, U+00AD, tag characters), plus the other characters Unicode defines as
// invisible (variation selectors, Hangul fillers, unassigned tag characters).
func Sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 300 {
			b.WriteString("…")
			break
		}
		if unsafeRune(r) {
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unsafeRune reports whether Sanitize replaces r. Whole Unicode categories and properties rather
// than a list of code points: issue 19 found a list that named the bidi controls and missed the
// zero-width ones.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || // C0, DEL, C1
		unicode.In(r, unicode.Zl, unicode.Zp) || // line and paragraph separators
		secret.Invisible(r) // format controls, and what Unicode defines as invisible
}
