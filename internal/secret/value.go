package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"unique"
)

// Marker is what a confidential value prints as, and what Redact puts where a secret was. It is
// spelled here only: every other package refers to it.
const Marker = "[REDACTED]"

// Kind names a kind of confidential value, so that each kind is its own type: a function that
// takes a client secret cannot be given an access token. Name is what %#v prints, such as
// "clear.ClientSecret". A kind is an empty struct type:
//
//	type signingSecretKind struct{}
//
//	func (signingSecretKind) Name() string { return "push.SigningSecret" }
//
//	// SigningSecret is a webhook signing secret; it never prints, logs or marshals its value.
//	type SigningSecret = secret.Value[signingSecretKind]
//
//	func NewSigningSecret(s string) SigningSecret { return secret.New[signingSecretKind](s) }
type Kind interface{ Name() string }

// Value is a confidential string of kind K. It never formats, logs or marshals as its value:
// every fmt verb, slog, encoding/json and encoding.TextMarshaler see Marker; Reveal is the one way
// to the value. Two Values are == exactly when their strings are equal, and the zero Value holds
// the empty string.
//
// How the value is held: Format and friends only help when fmt calls them, and fmt does not
// always: it cannot call methods on a value in an unexported field, and its bad-verb path (%p on
// a value, or %s on a struct reached through a nested pointer) prints by reflection with every
// method disabled. So the string itself must be out of reflection's reach. A
// unique.Handle[string] holds it behind a *string, which fmt prints as an address at any depth,
// including the bad-verb path, because it only dereferences pointers to structs, arrays, slices
// and maps. Handles are also comparable by value, so a struct holding a secret still compares
// with ==, and the interned string is reclaimed once no handle refers to it.
type Value[K Kind] struct{ h unique.Handle[string] }

// New wraps s as a Value of kind K. The empty string gives the zero Value.
func New[K Kind](s string) Value[K] {
	if s == "" {
		return Value[K]{}
	}
	return Value[K]{h: unique.Make(s)}
}

// Reveal returns the value itself, for the one place that must send or store it.
func (v Value[K]) Reveal() string {
	if v.IsZero() {
		return "" // the zero handle's Value would panic
	}
	return v.h.Value()
}

// IsZero reports whether no value is held.
func (v Value[K]) IsZero() bool { return v.h == unique.Handle[string]{} }

// Equal reports whether v and o hold the same value; it is the same as ==, and lets go-cmp compare
// structs holding a Value.
func (v Value[K]) Equal(o Value[K]) bool { return v == o }

// String implements fmt.Stringer with Marker.
func (v Value[K]) String() string { return Marker }

// GoString implements fmt.GoStringer, so %#v redacts too and names the kind.
func (v Value[K]) GoString() string {
	var k K
	return k.Name() + "(" + Marker + ")"
}

// Format implements fmt.Formatter so that every verb (%s, %v, %q, %x, ...) redacts.
func (v Value[K]) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, v.GoString())
		return
	}
	fmt.Fprint(f, Marker)
}

// LogValue implements slog.LogValuer.
func (v Value[K]) LogValue() slog.Value { return slog.StringValue(Marker) }

// MarshalJSON redacts, so a secret embedded by mistake in a JSON answer does not leak.
func (v Value[K]) MarshalJSON() ([]byte, error) { return json.Marshal(Marker) }

// MarshalText redacts, for encoders that prefer text (YAML, slog's text handler).
func (v Value[K]) MarshalText() ([]byte, error) { return []byte(Marker), nil }

type clientSecretKind struct{}

func (clientSecretKind) Name() string { return "clear.ClientSecret" }

type accessTokenKind struct{}

func (accessTokenKind) Name() string { return "clear.AccessToken" }

// ClientSecret is a Clear API client secret, the credential that mints access tokens.
type ClientSecret = Value[clientSecretKind]

// NewClientSecret wraps a client secret. The empty string gives the zero value.
func NewClientSecret(s string) ClientSecret { return New[clientSecretKind](s) }

// AccessToken is a Clear access token, the value ERP systems send as x-cleartax-auth-token.
type AccessToken = Value[accessTokenKind]

// NewAccessToken wraps an access token. The empty string gives the zero value.
func NewAccessToken(s string) AccessToken { return New[accessTokenKind](s) }

type gatewayKeyKind struct{}

func (gatewayKeyKind) Name() string { return "secret.GatewayKey" }

// GatewayKey is the gateway's inbound key as configured or stored, before the gateway hashes it.
type GatewayKey = Value[gatewayKeyKind]
