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
	"slices"
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
	// APIClient is the configured API client (1 or 2) that issued it; 0 when unknown (a document
	// written before the rotator knew two API clients).
	APIClient int
	// ValidTillUnknown is true when Clear's answer carried a valid_till the rotator could not
	// understand: ValidTill is nil, yet the token is not known never to expire.
	ValidTillUnknown bool
}

type tokenJSON struct {
	AccessToken string     `json:"access_token"`
	ValidTill   *time.Time `json:"valid_till"`
	IssuedAt    time.Time  `json:"issued_at"`
	Client      string     `json:"client,omitempty"`
	RotatedBy   string     `json:"rotated_by,omitempty"`
	APIClient   int        `json:"api_client,omitempty"`
	Unknown     bool       `json:"valid_till_unknown,omitempty"`
}

// MarshalToken renders the token document. Times are RFC 3339 UTC; valid_till is null for a token
// that never expires.
func MarshalToken(t Token) ([]byte, error) {
	j := tokenJSON{
		AccessToken: t.AccessToken.Reveal(),
		IssuedAt:    t.IssuedAt.UTC().Truncate(time.Second),
		Client:      t.Client,
		RotatedBy:   "clear-rotator",
		APIClient:   t.APIClient,
		Unknown:     t.ValidTillUnknown && t.ValidTill == nil,
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
	if c, ok := raw["api_client"]; ok {
		var n int
		if json.Unmarshal(c, &n) == nil && (n == 1 || n == 2) {
			t.APIClient = n
		}
	}
	if u, ok := raw["valid_till_unknown"]; ok && t.ValidTill == nil {
		_ = json.Unmarshal(u, &t.ValidTillUnknown)
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

// MaxEvents is how many ids of forced requests the state remembers, to recognise a duplicated
// delivery of the same event (an EventBridge retry, an operator's repeated command).
const MaxEvents = 16

// State is the rotator's durable state for one token secret, shared by every rotator process that
// serves it. Each change is written as a new version under StateStage with a ClientRequestToken
// derived from the version it replaces, so two writers that read the same state cannot both win.
type State struct {
	// APIClients holds the bookkeeping of each API client (client secret) that has made requests:
	// Clear's daily limit, its refusals and the backoff after failures all belong to a client
	// secret, so they are keyed by its fingerprint rather than by its position in the
	// configuration. A replaced client secret starts afresh.
	APIClients []APIClient `json:"api_clients,omitempty"`

	// Claim is the rotation in flight, if any: written before Clear is called.
	Claim *Claim `json:"claim,omitempty"`

	// LastRequest is when the last request to Clear was claimed, with any API client, for an
	// operator reading the state. No rule reads it: the floor between two automatic rotations
	// counts from the issue of the token in AWSCURRENT (rotation's floorGate).
	LastRequest *time.Time `json:"last_request,omitempty"`

	// Lost records a token that Clear may have issued but that was not stored: a write that
	// failed, or a claim whose owner vanished. It holds until AWSCURRENT changes.
	Lost *Lost `json:"lost,omitempty"`

	// Suspect is the AWSCURRENT version whose token a failed request may have revoked: the request
	// of its API client left, and Clear may have issued a token before it failed (a 5xx, a timeout,
	// an answer that was not a token). The token is replaced once the API client's backoff allows,
	// due or not. It holds until AWSCURRENT changes. Older releases ignore it, and replace the token
	// when it is due.
	Suspect string `json:"suspect,omitempty"`

	// Events are the ids of the most recent forced requests that were acted on (their rotation
	// stored a token), newest last, at most MaxEvents. A request whose claim is still live is
	// recognised by the claim's Event.
	Events []string `json:"events,omitempty"`

	// Failed are the ids of the most recent forced requests whose attempt failed (Clear refused,
	// or the token was lost), newest last, at most MaxEvents. A retry of one asks Clear again, but
	// is spaced by its API client's backoff rather than lifting it as a new request would. A
	// document written before this field existed has none, which only means a retry is treated
	// as a new request.
	Failed []string `json:"failed_events,omitempty"`
}

// Remember returns ids with id appended as the newest, once, keeping the last MaxEvents.
func Remember(ids []string, id string) []string {
	if id == "" {
		return ids
	}
	out := make([]string, 0, len(ids)+1)
	for _, v := range ids {
		if v != id {
			out = append(out, v)
		}
	}
	out = append(out, id)
	if len(out) > MaxEvents {
		out = out[len(out)-MaxEvents:]
	}
	return out
}

// Forget returns ids without id.
func Forget(ids []string, id string) []string {
	if id == "" {
		return ids
	}
	var out []string
	for _, v := range ids {
		if v != id {
			out = append(out, v)
		}
	}
	return out
}

// APIClient is the bookkeeping of one client secret.
type APIClient struct {
	// Secret is the client secret's fingerprint (with its base URL); never the secret.
	Secret string `json:"secret"`
	// Day is the UTC day Requests counts.
	Day      string `json:"day,omitempty"`
	Requests int    `json:"requests"`
	// Failures counts consecutive failed attempts; RetryAt is when backoff allows the next.
	Failures  int        `json:"failures,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// Blocked is set when Clear refused in a way that retrying cannot fix soon.
	Blocked *Block `json:"blocked,omitempty"`
	// CountLost is the UTC day whose count a damaged state lost: Requests on that day is the
	// rotator's assumption (which guards the limit) plus the requests made since, not the day's
	// count, which is unknown until the day is over. Empty when the count is whole.
	CountLost string `json:"count_lost,omitempty"`
	// Retired is when the token this API client last issued stopped being AWSCURRENT (another
	// API client's token replaced it). Consumers that re-read the secret on the documented
	// interval may hold that token until Retired plus that interval, so the decision does not ask
	// this API client again before then (which would revoke it). Nil when unknown: a document
	// written before this field existed, or a token that was never replaced by another API
	// client's.
	Retired *time.Time `json:"retired,omitempty"`
}

// RequestsOn returns the requests counted on day.
func (a APIClient) RequestsOn(day string) int {
	if a.Day != day {
		return 0
	}
	return a.Requests
}

// Claim records a rotation in flight. It is complete once AWSCURRENT is no longer Base.
type Claim struct {
	Owner      string    `json:"owner"`
	At         time.Time `json:"at"`
	LeaseUntil time.Time `json:"lease_until"`
	// Base is the AWSCURRENT version id the claim set out to replace.
	Base  string `json:"base"`
	Force bool   `json:"force,omitempty"`
	// Slot is the configured API client asked (1 or 2) and Secret its fingerprint.
	Slot   int    `json:"api_client,omitempty"`
	Secret string `json:"secret,omitempty"`
	// Event is the id of the event or command that asked for a forced rotation, if any.
	Event string `json:"event,omitempty"`
	// Replaces is the fingerprint of the API client that issued the token in Base, when known:
	// once the claim completes, that API client's token is retired (APIClient.Retired).
	Replaces string `json:"replaces,omitempty"`
}

// Lost describes a token that was, or may have been, issued and not stored.
type Lost struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Base is the AWSCURRENT version that was current when the token was lost; the loss is over
	// once AWSCURRENT is another version.
	Base string `json:"base"`
	// Slot and Secret name the API client that asked; its previous token is revoked.
	Slot   int    `json:"api_client,omitempty"`
	Secret string `json:"secret,omitempty"`
	// Certain is true when Clear is known to have answered with a token (a failed write); false
	// when the owner vanished and nobody knows whether Clear was called.
	Certain bool `json:"certain,omitempty"`
}

// Block records a refusal by Clear.
type Block struct {
	// Kind is the clear.Kind name: "unauthorized", "rejected" or "rate-limited".
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	// Until ends a temporary block (429: Retry-After or the next midnight UTC). Nil for a block
	// that holds while the client secret stays the same.
	Until *time.Time `json:"until,omitempty"`
}

// StateVersion is the current state document format.
const StateVersion = 2

type stateJSON struct {
	Kind    string `json:"kind"`
	Version int    `json:"version"`
	State
}

// stateV1 is the first format: one client secret's bookkeeping at the top level.
type stateV1 struct {
	Day       string     `json:"day"`
	Requests  int        `json:"requests"`
	Secret    string     `json:"secret"`
	Claim     *Claim     `json:"claim"`
	Failures  int        `json:"failures"`
	RetryAt   *time.Time `json:"retry_at"`
	LastError string     `json:"last_error"`
	Blocked   *struct {
		Kind   string     `json:"kind"`
		Reason string     `json:"reason"`
		Until  *time.Time `json:"until"`
		Secret string     `json:"secret"`
	} `json:"blocked"`
}

// MarshalState renders a state document.
func MarshalState(s State) ([]byte, error) {
	return json.Marshal(stateJSON{Kind: StateKind, Version: StateVersion, State: s})
}

// NewerStateError is a state document of a format newer than this rotator's, written by a newer
// clear-rotator (a rolling upgrade). Unlike a damaged state it must not be ignored: it may hold the
// newer rotator's live claim and the day's count, and ignoring them would ask Clear while the other
// is asking, revoking the token it stores.
type NewerStateError struct{ Version int }

func (e *NewerStateError) Error() string {
	return fmt.Sprintf("state document: format %d was written by a newer clear-rotator (this one reads up to %d); it is left alone and nothing is asked of Clear until every rotator of this secret is upgraded", e.Version, StateVersion)
}

// ParseState reads a state document, of this format or the first. A document of another kind is
// an error.
func ParseState(data []byte) (State, error) {
	var head struct {
		Kind    string `json:"kind"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return State{}, fmt.Errorf("state document: %w", err)
	}
	if head.Kind != StateKind {
		return State{}, fmt.Errorf("state document: kind %q is not %q", head.Kind, StateKind)
	}
	if head.Version > StateVersion {
		return State{}, &NewerStateError{Version: head.Version}
	}
	var st State
	switch head.Version {
	case 1:
		var v1 stateV1
		if err := json.Unmarshal(data, &v1); err != nil {
			return State{}, fmt.Errorf("state document: %w", err)
		}
		st = upgrade(v1)
	case StateVersion:
		var j stateJSON
		if err := json.Unmarshal(data, &j); err != nil {
			return State{}, fmt.Errorf("state document: %w", err)
		}
		st = j.State
	default:
		return State{}, fmt.Errorf("state document: version %d is not supported", head.Version)
	}
	for _, a := range st.APIClients {
		if a.Requests < 0 || a.Failures < 0 {
			return State{}, errors.New("state document: negative counter")
		}
	}
	if st.Claim != nil && (st.Claim.Base == "" || st.Claim.LeaseUntil.IsZero()) {
		return State{}, errors.New("state document: claim without base or lease")
	}
	cleanText(&st)
	if len(st.Events) > MaxEvents {
		st.Events = st.Events[len(st.Events)-MaxEvents:]
	}
	if len(st.Failed) > MaxEvents {
		st.Failed = st.Failed[len(st.Failed)-MaxEvents:]
	}
	return st, nil
}

// cleanText makes the state's free text safe to show: anyone who may write the secret may edit
// it, and it reaches terminals (rotator status), logs and metrics, where a terminal escape or a
// bidirectional control would rewrite what an operator sees. What rotators write is clean already.
func cleanText(st *State) {
	st.APIClients = slices.Clone(st.APIClients)
	for i := range st.APIClients {
		a := &st.APIClients[i]
		a.LastError = clear.Sanitize(a.LastError)
		if b := a.Blocked; b != nil {
			a.Blocked = &Block{Kind: clear.Sanitize(b.Kind), Reason: clear.Sanitize(b.Reason), Until: b.Until}
		}
	}
	if st.Claim != nil {
		c := *st.Claim
		c.Owner = clear.Sanitize(c.Owner)
		st.Claim = &c
	}
	if st.Lost != nil {
		l := *st.Lost
		l.Reason = clear.Sanitize(l.Reason)
		st.Lost = &l
	}
}

// upgrade carries a first-format state over: its one client secret becomes the first entry.
func upgrade(v1 stateV1) State {
	st := State{Claim: v1.Claim}
	if v1.Secret == "" && v1.Requests == 0 && v1.Failures == 0 && v1.Blocked == nil {
		return st
	}
	a := APIClient{Secret: v1.Secret, Day: v1.Day, Requests: v1.Requests, Failures: v1.Failures, RetryAt: v1.RetryAt, LastError: v1.LastError}
	if b := v1.Blocked; b != nil && (b.Secret == "" || b.Secret == v1.Secret) {
		a.Blocked = &Block{Kind: b.Kind, Reason: b.Reason, Until: b.Until}
	}
	if st.Claim != nil && st.Claim.Secret == "" {
		st.Claim.Secret, st.Claim.Slot = v1.Secret, 1
	}
	st.APIClients = []APIClient{a}
	return st
}

// APIClient returns the bookkeeping of the client secret with fingerprint secret, or a fresh one.
func (s State) APIClient(secret string) APIClient {
	for _, a := range s.APIClients {
		if a.Secret == secret {
			return a
		}
	}
	return APIClient{Secret: secret}
}

// WithAPIClient returns a copy of s with a's entry replaced (or added), keeping only the entries
// whose fingerprints are in keep: an API client no longer configured has nothing left to count. An
// empty fingerprint in keep is a configured API client whose secret could not be read: its entry
// cannot be told from one no longer configured, so while one is unknown no entry is dropped, lest
// the unreadable API client lose its day's count and blocks (and ask Clear past its daily limit
// once its secret reads again).
func (s State) WithAPIClient(a APIClient, keep ...string) State {
	out := make([]APIClient, 0, len(s.APIClients)+1)
	unknown := false
	for _, fp := range keep {
		if fp == "" {
			unknown = true
			continue
		}
		if fp == a.Secret {
			out = append(out, a)
			continue
		}
		for _, old := range s.APIClients {
			if old.Secret == fp {
				out = append(out, old)
				break
			}
		}
	}
	if unknown {
		for _, old := range s.APIClients {
			if old.Secret != a.Secret && !slices.Contains(keep, old.Secret) {
				out = append(out, old)
			}
		}
	}
	s.APIClients = out
	return s
}
