package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxTokenLength is the longest access token Clear documents (MaxLength: 256).
const MaxTokenLength = 256

// ParseClientSecret reads a client secret, given in the configuration or stored in Secrets Manager,
// as a plain string or as {"client_secret": "..."}, with surrounding white space removed. It
// refuses an empty one, one with a control character, which cannot be sent in a header, and one
// wrapped in quotes. Its errors never hold the value.
func ParseClientSecret(value string) (ClientSecret, error) {
	v := strings.TrimSpace(value)
	if strings.HasPrefix(v, "{") {
		var doc struct {
			ClientSecret *string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(v), &doc); err != nil {
			return ClientSecret{}, errors.New("holds a JSON document that cannot be parsed")
		}
		if doc.ClientSecret == nil {
			return ClientSecret{}, errors.New(`holds a JSON document without a "client_secret" field`)
		}
		v = strings.TrimSpace(*doc.ClientSecret)
	}
	if v == "" {
		return ClientSecret{}, errors.New("is empty")
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return ClientSecret{}, fmt.Errorf("contains a control character at position %d; it cannot be sent in an HTTP header (the value is not shown)", i+1)
	}
	// Clear's client secrets are base64 and never quoted; quotes at both ends were kept from a
	// shell or a JSON string, and Clear would answer CLI-SEC-002, which does not say why.
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return ClientSecret{}, errors.New("is wrapped in quotes, which would be sent as part of the secret; store it without them (the value is not shown)")
	}
	return NewClientSecret(v), nil
}

// CheckToken reports why tok cannot be used as an access token, or nil: it is empty, longer than
// maxLen bytes, holds a byte that cannot travel in an HTTP header (only visible ASCII can: no
// space, no control, nothing beyond U+007E), or spells one of the client secrets (see Redact), as
// an answer that echoes the request would: stored, it would hand the client secret to every
// reader of the token. The error's text says what is wrong, never the value, and reads after
// "access_token".
func CheckToken(tok string, maxLen int, clientSecrets ...string) error {
	if tok == "" {
		return errors.New("is empty")
	}
	if len(tok) > maxLen {
		return fmt.Errorf("is %d characters, more than %d", len(tok), maxLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return fmt.Errorf("has a non-printable character at %d", i)
		}
	}
	if Reveals(tok, clientSecrets...) {
		return errors.New("carries the client secret")
	}
	return nil
}

// MinGatewayKeyLength is the shortest inbound key the gateway accepts: a key guards every call to
// Clear made with the token, so it must not be guessable.
const MinGatewayKeyLength = 16

// ParseGatewayKey reads the gateway's inbound key, given in the configuration or stored in Secrets
// Manager, with surrounding white space removed. It refuses a key shorter than
// MinGatewayKeyLength, and one with a control character, which no caller could send in a header.
// Its errors never hold the value.
func ParseGatewayKey(s string) (GatewayKey, error) {
	s = strings.TrimSpace(s)
	if len(s) < MinGatewayKeyLength {
		return GatewayKey{}, fmt.Errorf("is too short (the value is not shown); use at least %d characters", MinGatewayKeyLength)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return GatewayKey{}, fmt.Errorf("contains a control character at position %d; it cannot be sent in an HTTP header (the value is not shown)", i+1)
	}
	return New[gatewayKeyKind](s), nil
}
