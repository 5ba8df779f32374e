package clear

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"unique"
)

// redacted is what a confidential value prints as.
const redacted = "[REDACTED]"

// How the values are held. Format and friends only help when fmt calls them, and fmt does not
// always: it cannot call methods on a value in an unexported field, and its bad-verb path
// (%p on a value, or %s on a struct reached through a nested pointer) prints by reflection with
// every method disabled. So the string itself must be out of reflection's reach. A
// unique.Handle[string] holds it behind a *string, which fmt prints as an address at any depth,
// including the bad-verb path, because it only dereferences pointers to structs, arrays, slices
// and maps. Handles are also comparable by value (two handles are equal exactly when their
// strings are), so a struct holding a secret still compares with ==, and the interned string is
// reclaimed once no handle refers to it. The zero handle stands for the empty value.

// handle interns s; the empty string gets the zero handle, so that the zero value means "none".
func handle(s string) unique.Handle[string] {
	if s == "" {
		return unique.Handle[string]{}
	}
	return unique.Make(s)
}

// value returns h's string, or "" for the zero handle (whose Value would panic).
func value(h unique.Handle[string]) string {
	if h == (unique.Handle[string]{}) {
		return ""
	}
	return h.Value()
}

// ClientSecret is a Clear API client secret, the credential that mints access tokens. It never
// formats, logs or marshals as its value.
// Two ClientSecrets are == exactly when their values are equal.
type ClientSecret struct{ h unique.Handle[string] }

// NewClientSecret wraps a client secret. The empty string gives the zero value.
func NewClientSecret(s string) ClientSecret { return ClientSecret{h: handle(s)} }

// Reveal returns the secret itself, for the one request header that needs it.
func (s ClientSecret) Reveal() string { return value(s.h) }

// IsZero reports whether no secret is held.
func (s ClientSecret) IsZero() bool { return s.h == unique.Handle[string]{} }

// Equal reports whether s and o hold the same value; it is the same as ==, and lets go-cmp
// compare structs holding a secret.
func (s ClientSecret) Equal(o ClientSecret) bool { return s == o }

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
// It is held like ClientSecret, and compares with == by value too.
type AccessToken struct{ h unique.Handle[string] }

// NewAccessToken wraps an access token. The empty string gives the zero value.
func NewAccessToken(s string) AccessToken { return AccessToken{h: handle(s)} }

// Reveal returns the token itself, for the one document that stores it.
func (t AccessToken) Reveal() string { return value(t.h) }

// IsZero reports whether no token is held.
func (t AccessToken) IsZero() bool { return t.h == unique.Handle[string]{} }

// Equal reports whether t and o hold the same token; it is the same as ==.
func (t AccessToken) Equal(o AccessToken) bool { return t == o }

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
