package rotation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Store is what the engine needs from Secrets Manager (see store.SecretsManager): versions by
// label and by id, the compare-and-set put, the secret's creation, its labels in one call (a look
// at a client whose versions have not changed costs that one call), the list of its versions (for
// the version quota, before a rotation asks Clear), and, for Secrets Manager's own rotation,
// moving a label and naming a secret.
type Store interface {
	Read(ctx context.Context, secretID, stage string) (store.Version, error)
	ReadVersion(ctx context.Context, secretID, versionID string) (store.Version, error)
	Put(ctx context.Context, secretID, requestToken, value string, stages ...string) (string, error)
	Create(ctx context.Context, secretID, value, description string) error
	Stages(ctx context.Context, secretID string) (map[string]string, error)
	MoveStage(ctx context.Context, secretID, stage, toVersion, fromVersion string) error
	Describe(ctx context.Context, secretID string) (name, arn string, err error)
	ListVersions(ctx context.Context, secretID string) ([]store.VersionInfo, error)
}

// TokenSource asks Clear for a new token (see clear.Client). Its errors are *clear.Error.
type TokenSource interface {
	Token(ctx context.Context, secret clear.ClientSecret) (clear.Grant, error)
}

// Client is one configured Clear client as the engine uses it: its settings, as configured
// (config.Client, the one declaration of a client's fields, which every layer shares), and the
// Clear client that asks for its tokens, the only part built at run time. It has one API client
// (client secret), or two used in turn.
type Client struct {
	config.Client
	// Clear asks Clear, at BaseURL, for the client's tokens.
	Clear TokenSource
}

// Slots returns how many API clients c has: 1 or 2.
func (c *Client) Slots() int {
	if !c.ClientSecret2.IsZero() || c.ClientSecretID2 != "" {
		return 2
	}
	return 1
}

// HasClientSecret reports whether c has a client secret, given or named. Only a client loaded
// for `rotator gateway` (config.LoadForGateway) may have none: it is read, never rotated.
func (c *Client) HasClientSecret() bool {
	return !c.ClientSecret.IsZero() || c.ClientSecretID != ""
}

func (c *Client) secretRef(slot int) (clear.ClientSecret, string) {
	if slot == 2 {
		return c.ClientSecret2, c.ClientSecretID2
	}
	return c.ClientSecret, c.ClientSecretID
}

// fingerprint identifies a client secret (with its base URL) without revealing it: Clear's limit
// and its refusals belong to a secret, and a change of secret is a change of configuration.
func fingerprint(baseURL string, cs clear.ClientSecret) string {
	sum := sha256.Sum256([]byte("clear-rotator/v1\x00" + strings.TrimRight(baseURL, "/") + "\x00" + cs.Reveal()))
	return hex.EncodeToString(sum[:8])
}

// redact removes the client secrets, in every spelling secret.Redact knows, from text that came
// from outside, before it is shown or stored where every reader of the token secret can see it.
func redact(text string, secrets []clear.ClientSecret) string {
	values := make([]string, len(secrets))
	for i, s := range secrets {
		values[i] = s.Reveal()
	}
	return secret.Redact(text, values...)
}

// ClientSecret returns c's first client secret: the literal one, or the value of the secret
// c.ClientSecretID, which holds either the plain secret or {"client_secret": "..."}.
func (e *Engine) ClientSecret(ctx context.Context, c *Client) (clear.ClientSecret, error) {
	return e.clientSecret(ctx, c, 1)
}

func (e *Engine) clientSecret(ctx context.Context, c *Client, slot int) (clear.ClientSecret, error) {
	lit, id := c.secretRef(slot)
	if !lit.IsZero() {
		return lit, nil
	}
	what := "the client secret"
	if c.Slots() == 2 {
		what = fmt.Sprintf("API client %d's client secret", slot)
	}
	v, err := e.Store.Read(ctx, id, CurrentStage)
	if err != nil {
		return clear.ClientSecret{}, fmt.Errorf("reading %s: %w", what, err)
	}
	s, err := secret.ParseClientSecret(v.Value)
	if err != nil {
		return clear.ClientSecret{}, fmt.Errorf("%s %q: %w", what, id, err)
	}
	return s, nil
}
