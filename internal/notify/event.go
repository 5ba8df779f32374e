// Package notify tells ERP systems that a new token is in Secrets Manager, after every token the
// rotator stores: a signed webhook (Standard Webhooks) and a hook command. It never sends the token
// in a webhook: the receiver reads the version it is told about. The hook command gets the token
// document on its standard input only when asked (ROTATOR_HOOK_STDIN=token).
//
// Delivery is at least once. Each target (the webhook, the hook) is retried on its own with the
// project's one backoff (timing.Backoff) until it is delivered, the caller's context ends (a newer
// token superseded this one, or the run is over), or the attempts allowed are spent. Which
// failures are retried is decided by pure functions (Classify, Failing); Deliver only acts on them.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
)

// EventType is the webhook's type field.
const EventType = "clear.token.rotated"

// Reason says why a token was stored. The shell that stored it chooses (app.reasonOf maps the
// engine's result to one).
type Reason string

const (
	// Scheduled: the token was due.
	Scheduled Reason = "scheduled"
	// Forced: a rotation was asked for (rotate --force, an event).
	Forced Reason = "forced"
	// Healed: the token in AWSCURRENT was missing, expired or lost, and this one replaced it.
	Healed Reason = "healed"
	// Revoke: `rotator revoke` stored it, after revoking every token stored before.
	Revoke Reason = "revoke"
)

// Event is one stored token to tell the ERP about.
type Event struct {
	// ID is the webhook-id: the same for every attempt, distinct for every stored token.
	ID string
	// Client is the configured client name.
	Client string
	// SecretID is the token secret (its ARN when the configuration names it by ARN).
	SecretID string
	// VersionID is the AWSCURRENT version that holds the token.
	VersionID string
	Reason    Reason
	// Token is the document as stored. Only the hook's standard input ever reveals its AccessToken.
	Token document.Token
	// Previous is the token this one replaced, when the shell could read it: the hook's output is
	// redacted of it too, since a hook that writes the token into an ERP's configuration may print
	// what it replaced, and with two API clients that token is still live.
	Previous clear.AccessToken
	// Retrying is set on the event a Recorder's Failed is given when the delivery goes on (the
	// daemon's policy): the failure is reported, not final. See Finisher.
	Retrying bool
}

// NewEvent describes token, stored for client as version versionID of secretID. Its id is derived
// from the secret and the version, so that a shell that tells the same token twice (a Lambda
// invocation retried) sends the same webhook-id, and a receiver that deduplicates by id acts once.
// It takes plain values, not the engine's result: push delivery knows what a stored token is, not
// how the engine came to store it (the caller decides the Reason), so notify does not depend on
// the engine.
func NewEvent(client, secretID, versionID string, token document.Token, reason Reason) Event {
	sum := sha256.Sum256([]byte(secretID + "\x00" + versionID))
	return Event{
		ID:     "msg_" + hex.EncodeToString(sum[:16]),
		Client: client, SecretID: secretID, VersionID: versionID, Reason: reason, Token: token,
	}
}

// body is the webhook's JSON body. It has no field for the token, by construction.
type body struct {
	Type      string     `json:"type"`
	Client    string     `json:"client"`
	SecretID  string     `json:"secret_id"`
	VersionID string     `json:"version_id"`
	ValidTill *time.Time `json:"valid_till"`
	IssuedAt  time.Time  `json:"issued_at"`
	APIClient int        `json:"api_client,omitempty"`
	Reason    Reason     `json:"reason"`
}

// Body renders the webhook's JSON body; valid_till is null for a token that never expires. Its
// times are the token document's (document.MarshalToken: issued_at to the second), so that every
// process renders the same body for one event, the one that stored the token and one resuming its
// delivery from the document alike.
func (e Event) Body() []byte {
	b := body{Type: EventType, Client: e.Client, SecretID: e.SecretID, VersionID: e.VersionID,
		ValidTill: utc(e.Token.ValidTill), IssuedAt: e.Token.IssuedAt.UTC().Truncate(time.Second), APIClient: e.Token.APIClient, Reason: e.Reason}
	out, err := json.Marshal(b)
	if err != nil {
		panic(err) // strings, times and an int always marshal
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
