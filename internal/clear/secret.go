package clear

import "github.com/clear-rotator/clear-rotator/internal/secret"

// The two confidential values of Clear's token API. They are defined, with every other secret
// primitive, in package secret; these names say what they are to a caller of this package.

// ClientSecret is a Clear API client secret, the credential that mints access tokens. It never
// formats, logs or marshals as its value (see secret.Value); two ClientSecrets are == exactly when
// their values are equal.
type ClientSecret = secret.ClientSecret

// NewClientSecret wraps a client secret. The empty string gives the zero value.
func NewClientSecret(s string) ClientSecret { return secret.NewClientSecret(s) }

// AccessToken is a Clear access token, the value ERP systems send as x-cleartax-auth-token. It is
// held like ClientSecret, and compares with == by value too.
type AccessToken = secret.AccessToken

// NewAccessToken wraps an access token. The empty string gives the zero value.
func NewAccessToken(s string) AccessToken { return secret.NewAccessToken(s) }
