// Package clear is a client for Clear's (ClearTax / Clear Finance Cloud) access token API, and the
// home of the two confidential values the rotator handles: the API client secret and the access
// token. Both are distinct types that redact themselves wherever they could be printed or logged, so
// that revealing one takes an explicit call to Reveal.
package clear

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// redacted is what a confidential value prints as.
const redacted = "[REDACTED]"

// ClientSecret is a Clear API client secret, the credential that mints access tokens. It never
// formats, logs or marshals as its value.
type ClientSecret struct{ v string }

// NewClientSecret wraps a client secret.
func NewClientSecret(s string) ClientSecret { return ClientSecret{v: s} }

// Reveal returns the secret itself, for the one request header that needs it.
func (s ClientSecret) Reveal() string { return s.v }

// IsZero reports whether no secret is held.
func (s ClientSecret) IsZero() bool { return s.v == "" }

// String implements fmt.Stringer with a redacted value.
func (s ClientSecret) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v redacts too.
func (s ClientSecret) GoString() string { return "clear.ClientSecret(" + redacted + ")" }

// Format implements fmt.Formatter so that every verb (%s, %v, %q, %x, ...) redacts.
func (s ClientSecret) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer.
func (s ClientSecret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON redacts, so a secret embedded by mistake in a JSON answer does not leak.
func (s ClientSecret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText redacts, for encoders that prefer text (YAML, slog's text handler).
func (s ClientSecret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// AccessToken is a Clear access token, the value ERP systems send as x-cleartax-auth-token. It
// never formats, logs or marshals as its value.
type AccessToken struct{ v string }

// NewAccessToken wraps an access token.
func NewAccessToken(s string) AccessToken { return AccessToken{v: s} }

// Reveal returns the token itself, for the one document that stores it.
func (t AccessToken) Reveal() string { return t.v }

// IsZero reports whether no token is held.
func (t AccessToken) IsZero() bool { return t.v == "" }

// String implements fmt.Stringer with a redacted value.
func (t AccessToken) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v redacts too.
func (t AccessToken) GoString() string { return "clear.AccessToken(" + redacted + ")" }

// Format implements fmt.Formatter so that every verb redacts.
func (t AccessToken) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer.
func (t AccessToken) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON redacts.
func (t AccessToken) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText redacts.
func (t AccessToken) MarshalText() ([]byte, error) { return []byte(redacted), nil }
