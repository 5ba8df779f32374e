package notify

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

type secretKind struct{}

func (secretKind) Name() string { return "notify.Secret" }

// Secret is the webhook signing secret as configured: one `whsec_` value, or two separated by white
// space while the secret is being changed (the receiver then accepts either signature). It is a
// secret.Value: it never formats, logs or marshals as its value, and two Secrets are == exactly
// when their values are equal.
type Secret = secret.Value[secretKind]

// NewSecret wraps a signing secret. The empty string gives the zero value.
func NewSecret(s string) Secret { return secret.New[secretKind](s) }

// SecretPrefix starts every Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// MaxKeys is how many keys a secret may hold: the current one, and the next one while receivers
// switch.
const MaxKeys = 2

// ErrBadSecret is the cause of every ParseKeys failure; the messages never quote the secret.
var ErrBadSecret = errors.New("invalid webhook signing secret")

// keys are decoded signing keys. They are unexported bytes, so that fmt and slog cannot reach them
// through an exported field.
type keys struct{ k [][]byte }

// ParseKeys decodes a Secret: one or two `whsec_<base64>` values separated by white space. The
// base64 is standard and padded, the only kind receivers' libraries decode (Python's b64decode,
// Go's StdEncoding): a URL-safe or unpadded key would sign messages that no receiver verifies. Each
// key must be 24 to 64 bytes (Standard Webhooks asks for at least 24).
func ParseKeys(s Secret) (keys, error) {
	fields := strings.Fields(s.Reveal())
	switch {
	case len(fields) == 0:
		return keys{}, fmt.Errorf("%w: it is empty", ErrBadSecret)
	case len(fields) > MaxKeys:
		return keys{}, fmt.Errorf("%w: it holds %d values; at most %d (the current key, and the next while receivers switch)", ErrBadSecret, len(fields), MaxKeys)
	}
	var out keys
	for i, f := range fields {
		b64, ok := strings.CutPrefix(f, SecretPrefix)
		if !ok {
			return keys{}, fmt.Errorf("%w: value %d does not start with %q (the value is not shown)", ErrBadSecret, i+1, SecretPrefix)
		}
		k, err := decodeKey(b64)
		if err != nil {
			return keys{}, fmt.Errorf("%w: value %d is not %s followed by standard, padded base64 (the value is not shown)", ErrBadSecret, i+1, SecretPrefix)
		}
		if len(k) < 24 || len(k) > 64 {
			return keys{}, fmt.Errorf("%w: value %d decodes to %d bytes; want 24 to 64", ErrBadSecret, i+1, len(k))
		}
		out.k = append(out.k, k)
	}
	return out, nil
}

func decodeKey(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
