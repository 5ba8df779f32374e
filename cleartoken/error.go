package cleartoken

import "strconv"

// Kind says what went wrong with the token secret.
type Kind int

const (
	// KindRead is a failed GetSecretValue other than a missing secret: access denied, throttling,
	// the network. Err holds the SDK's error.
	KindRead Kind = iota + 1
	// KindNotFound is a secret that does not exist, or has no AWSCURRENT version yet.
	KindNotFound
	// KindBinary is a secret whose AWSCURRENT version holds binary data instead of a string.
	KindBinary
	// KindMalformed is a secret string that is not a JSON object, or whose access_token is not a
	// string that can be sent in an HTTP header.
	KindMalformed
	// KindNoToken is a token document without a token: an empty string, "{}", or an empty
	// access_token. The rotator has not stored a token yet.
	KindNoToken
	// KindNoNewer is a refused token still in AWSCURRENT after the maximum wait: the rotator did
	// not store a newer one in time (it may be failing; see its status and metrics).
	KindNoNewer
)

func (k Kind) String() string {
	switch k {
	case KindRead:
		return "read failed"
	case KindNotFound:
		return "not found"
	case KindBinary:
		return "binary secret"
	case KindMalformed:
		return "malformed token document"
	case KindNoToken:
		return "no token yet"
	case KindNoNewer:
		return "no newer token"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is every error a Source returns about its secret, apart from a caller's cancelled context.
// Its message names the secret and version, never the secret's value or any part of it.
type Error struct {
	Kind Kind
	// SecretID is the secret the Source reads.
	SecretID string
	// VersionID is the version read, when one was.
	VersionID string
	// Err is the SDK's error for KindRead and KindNotFound.
	Err error

	detail string // what exactly is malformed, in words that quote nothing from the value
	// callRefused: a KindNoNewer for a call Clear refuses with the token AWSCURRENT holds for a
	// reason of its own (Source.known), returned without waiting again; unconfirmed when Clear
	// has accepted that token for no call since (two waits said so): it may be revoked outside
	// the rotator.
	callRefused, unconfirmed bool
}

func (e *Error) Error() string {
	msg := "cleartoken: secret " + strconv.Quote(e.SecretID)
	if e.VersionID != "" {
		msg += " version " + e.VersionID
	}
	msg += ": " + e.Kind.String()
	switch {
	case e.detail != "":
		msg += ": " + e.detail
	case e.Kind == KindNoToken:
		msg += ": the secret holds no access_token (has the rotator run?)"
	case e.Kind == KindNoNewer:
		msg += ": AWSCURRENT still holds the token Clear refused"
	case e.Kind == KindBinary:
		msg += ": the token document must be a SecretString"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the SDK's error, if any.
func (e *Error) Unwrap() error { return e.Err }
