// Package document defines the two JSON documents the rotator keeps in the token secret: the token
// document that ERP systems read from AWSCURRENT, and the rotator's own state (the daily request
// count, the rotation claim, backoff and blocks) kept in a version under the ROTATOR_STATE staging
// label, where consumers reading AWSCURRENT never see it.
//
// Parsing is strict and total: anything that is not a well-formed document of the right kind is
// reported as such, never half-read, so that a template's "{}" or a hand-edited value simply means
// "no token yet" or "no state yet".
package document

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// StateStage is the staging label of the version holding the rotator's state.
const StateStage = "ROTATOR_STATE"

// StateKind marks a state document, so that one is never mistaken for a token.
const StateKind = "clear-rotator/state"

// Token is the document ERP systems read: the live access token and its expiry.
type Token struct {
	AccessToken clear.AccessToken
	// ValidTill is nil for a token that never expires.
	ValidTill *time.Time
	// IssuedAt is when Clear answered with the token.
	IssuedAt time.Time
	// Client is the configured client name that rotated it.
	Client string
}

type tokenJSON struct {
	AccessToken string     `json:"access_token"`
	ValidTill   *time.Time `json:"valid_till"`
	IssuedAt    time.Time  `json:"issued_at"`
	Client      string     `json:"client,omitempty"`
	RotatedBy   string     `json:"rotated_by,omitempty"`
}

// MarshalToken renders the token document. Times are RFC 3339 UTC; valid_till is null for a token
// that never expires.
func MarshalToken(t Token) ([]byte, error) {
	j := tokenJSON{
		AccessToken: t.AccessToken.Reveal(),
		IssuedAt:    t.IssuedAt.UTC().Truncate(time.Second),
		Client:      t.Client,
		RotatedBy:   "clear-rotator",
	}
	if t.ValidTill != nil {
		v := t.ValidTill.UTC()
		j.ValidTill = &v
	}
	return json.Marshal(j)
}

// ErrNoToken means the secret holds no token document: it is empty, "{}", or anything else.
var ErrNoToken = errors.New("no token document")

// ParseToken reads a token document. Anything that is not one (empty, "{}", a state document,
// another JSON value, a token that is empty, too long or unprintable) yields an error wrapping
// ErrNoToken.
func ParseToken(data []byte) (Token, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Token{}, fmt.Errorf("%w: not a JSON object", ErrNoToken)
	}
	var tokStr string
	if err := json.Unmarshal(raw["access_token"], &tokStr); err != nil || tokStr == "" {
		return Token{}, fmt.Errorf("%w: no access_token", ErrNoToken)
	}
	// Re-validate with the same rules as Clear's answer, so a hand-edited value is not trusted.
	if _, err := clear.ParseResponse(200, mustJSON(map[string]any{"access_token": tokStr})); err != nil {
		return Token{}, fmt.Errorf("%w: access_token is not a valid token", ErrNoToken)
	}
	t := Token{AccessToken: clear.NewAccessToken(tokStr)}
	var issued string
	if err := json.Unmarshal(raw["issued_at"], &issued); err != nil {
		return Token{}, fmt.Errorf("%w: issued_at is missing", ErrNoToken)
	}
	at, err := clear.ParseTime(issued)
	if err != nil {
		return Token{}, fmt.Errorf("%w: issued_at is not a time", ErrNoToken)
	}
	t.IssuedAt = at
	if v, ok := raw["valid_till"]; ok && string(v) != "null" {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return Token{}, fmt.Errorf("%w: valid_till is neither a time nor null", ErrNoToken)
		}
		vt, err := clear.ParseTime(s)
		if err != nil {
			return Token{}, fmt.Errorf("%w: valid_till is not a time", ErrNoToken)
		}
		t.ValidTill = &vt
	}
	if c, ok := raw["client"]; ok {
		_ = json.Unmarshal(c, &t.Client)
	}
	return t, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// State is the rotator's durable state for one token secret, shared by every rotator process that
// serves it. Each change is written as a new version under StateStage with a ClientRequestToken
// derived from the version it replaces, so two writers that read the same state cannot both win.
type State struct {
	// Day is the UTC day Requests counts, and Secret a fingerprint of the client secret (and base
	// URL) they were made with: Clear's limit is per client secret per UTC day.
	Day      string `json:"day,omitempty"`
	Requests int    `json:"requests"`
	Secret   string `json:"secret,omitempty"`

	// Claim is the rotation in flight, if any: written before Clear is called.
	Claim *Claim `json:"claim,omitempty"`

	// Failures counts consecutive failed attempts; RetryAt is when backoff allows the next.
	Failures  int        `json:"failures,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`

	// Blocked is set when Clear refused in a way that retrying cannot fix soon.
	Blocked *Block `json:"blocked,omitempty"`
}

// Claim records a rotation in flight. It is complete once AWSCURRENT is no longer Base.
type Claim struct {
	Owner      string    `json:"owner"`
	At         time.Time `json:"at"`
	LeaseUntil time.Time `json:"lease_until"`
	// Base is the AWSCURRENT version id the claim set out to replace.
	Base  string `json:"base"`
	Force bool   `json:"force,omitempty"`
}

// Block records a refusal by Clear.
type Block struct {
	// Kind is the clear.Kind name: "unauthorized", "rejected" or "rate-limited".
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	// Until ends a temporary block (429: the next midnight UTC). Nil for a permanent block, which
	// holds while the client secret fingerprint stays Secret.
	Until  *time.Time `json:"until,omitempty"`
	Secret string     `json:"secret,omitempty"`
}

type stateJSON struct {
	Kind    string `json:"kind"`
	Version int    `json:"version"`
	State
}

// MarshalState renders a state document.
func MarshalState(s State) ([]byte, error) {
	return json.Marshal(stateJSON{Kind: StateKind, Version: 1, State: s})
}

// ParseState reads a state document. A document of another kind is an error.
func ParseState(data []byte) (State, error) {
	var j stateJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return State{}, fmt.Errorf("state document: %w", err)
	}
	if j.Kind != StateKind {
		return State{}, fmt.Errorf("state document: kind %q is not %q", j.Kind, StateKind)
	}
	if j.Version != 1 {
		return State{}, fmt.Errorf("state document: version %d is not supported", j.Version)
	}
	if j.Requests < 0 || j.Failures < 0 {
		return State{}, errors.New("state document: negative counter")
	}
	if j.Claim != nil && (j.Claim.Base == "" || j.Claim.LeaseUntil.IsZero()) {
		return State{}, errors.New("state document: claim without base or lease")
	}
	return j.State, nil
}

// RequestsOn returns how many requests the state counts for day and client secret fingerprint.
func (s State) RequestsOn(day, secret string) int {
	if s.Day != day || s.Secret != secret {
		return 0
	}
	return s.Requests
}
