package clear

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TokenPath is the token API's path below the base URL.
const TokenPath = "/integration/v1/authz/token"

// HeaderClientSecret is the request header that carries the client secret.
const HeaderClientSecret = "x-clear-client-secret"

// HeaderAuthToken is the header ERP systems send the access token in.
const HeaderAuthToken = "x-cleartax-auth-token"

// MaxTokenLength is the longest access token Clear documents (MaxLength: 256).
const MaxTokenLength = 256

// DefaultTimeout bounds one token request, connection to last byte.
const DefaultTimeout = 30 * time.Second

// maxBody caps how much of an answer is read: a real answer is a few hundred bytes.
const maxBody = 64 << 10

// Grant is a parsed, validated answer from the token API.
type Grant struct {
	AccessToken AccessToken
	// ValidTill is when the token expires, or nil when the API client never expires.
	ValidTill *time.Time
	// Drift is empty unless valid_till was present but not understood.
	Drift string
}

// Client calls Clear's token API. The zero value is not usable; build one with NewClient.
type Client struct {
	base *url.URL
	http *http.Client
}

// ParseBaseURL validates a Clear base URL. It must be https, except that plain http is allowed for
// loopback hosts (tests and the local demo), so that a client secret never crosses a network in clear
// text.
func ParseBaseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("base URL is empty")
	}
	if strings.Contains(s, "@") {
		// Never echo a URL that may carry a password.
		return nil, errors.New("base URL must not carry user info")
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("base URL %q cannot be parsed", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("base URL %q has no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %q must not carry user info, a query or a fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("base URL %q: http is allowed only for loopback hosts; use https", s)
		}
	default:
		return nil, fmt.Errorf("base URL %q: scheme must be https", s)
	}
	return u, nil
}

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
// redirect would carry the client secret header to wherever it points.
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
	return &Client{base: u, http: &hc}, nil
}

// BaseURL returns the validated base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Token asks Clear for a new access token. Every successful call revokes the previous token of
// this client secret, so callers must make it only when a rotation is due and claimed. The error
// is always an *Error.
func (c *Client) Token(ctx context.Context, secret ClientSecret) (Grant, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+TokenPath, nil)
	if err != nil {
		return Grant{}, &Error{Kind: KindRejected, Message: "building request: " + err.Error()}
	}
	req.Header.Set(HeaderClientSecret, secret.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clear-rotator")
	resp, err := c.http.Do(req)
	if err != nil {
		return Grant{}, networkError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return Grant{}, networkError(err)
	}
	if len(body) > maxBody {
		return Grant{}, &Error{Kind: KindMalformed, Status: resp.StatusCode,
			Message: fmt.Sprintf("answer is larger than %d bytes", maxBody)}
	}
	return ParseResponse(resp.StatusCode, body)
}

// networkError turns a transport failure into a transient *Error whose text names the failure
// but never the request's headers.
func networkError(err error) *Error {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Op + " " + ue.URL + ": " + ue.Err.Error()
		if ue.Timeout() {
			msg = ue.Op + " " + ue.URL + ": timeout"
		}
	}
	return &Error{Kind: KindTransient, Message: Sanitize(msg), Err: err}
}

// answer is the token API's JSON document, success or failure.
type answer struct {
	AccessToken *string          `json:"access_token"`
	ValidTill   *json.RawMessage `json:"valid_till"`
	Errors      []struct {
		Code    string  `json:"error_code"`
		Message string  `json:"error_message"`
		Source  string  `json:"error_source"`
		ID      *string `json:"error_id"`
	} `json:"errors"`
}

// ParseResponse classifies and validates one answer of the token API. A 200 answer must hold a
// printable token of at most MaxTokenLength characters and a valid_till that is null or an ISO 8601
// time; anything else is a KindMalformed error, so that garbage is never stored.
func ParseResponse(status int, body []byte) (Grant, error) {
	var a answer
	jsonErr := json.Unmarshal(body, &a)
	if status != http.StatusOK {
		e := &Error{Status: status, Kind: kindOf(status)}
		if jsonErr == nil && len(a.Errors) > 0 {
			first := a.Errors[0]
			e.Code = Sanitize(first.Code)
			e.Message = Sanitize(first.Message)
			if first.ID != nil {
				e.ErrorID = Sanitize(*first.ID)
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
		return malformed("answer is not a JSON object: %s", Sanitize(jsonErr.Error()))
	}
	if len(a.Errors) > 0 {
		return malformed("answer has status 200 but carries errors (%s)", Sanitize(a.Errors[0].Code))
	}
	if a.AccessToken == nil {
		return malformed("answer has no access_token")
	}
	tok := *a.AccessToken
	if tok == "" {
		return malformed("access_token is empty")
	}
	if len(tok) > MaxTokenLength {
		return malformed("access_token is %d characters, more than %d", len(tok), MaxTokenLength)
	}
	for i := 0; i < len(tok); i++ {
		// A token travels in an HTTP header: visible ASCII only, no spaces.
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return malformed("access_token has a non-printable character at %d", i)
		}
	}
	g := Grant{AccessToken: NewAccessToken(tok)}
	if a.ValidTill == nil {
		// Clear documents null for "never expires"; a missing field is taken the same way.
		return g, nil
	}
	raw := []byte(*a.ValidTill)
	if string(raw) == "null" {
		return g, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return malformed("valid_till is neither a string nor null")
	}
	t, err := ParseTime(s)
	if err != nil {
		return malformed("valid_till %q is not an ISO 8601 time", Sanitize(s))
	}
	g.ValidTill = &t
	return g, nil
}

// ParseTime parses the ISO 8601 forms Clear uses ("2023-04-11T20:21:24+00:00", with or without
// fractional seconds, or with Z) and returns the time in UTC.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
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
	case status >= 500:
		return KindTransient
	default:
		// Redirects (never followed) and other 4xx answers mean the base URL or the request is
		// wrong: retrying the same request cannot help.
		return KindRejected
	}
}

// Sanitize makes text from a remote party safe to log: printable, one line, at most 300 bytes.
func Sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 300 {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
