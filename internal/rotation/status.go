package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// BlockedByConfig is the blocked_until value of a client that Clear refused permanently (401): it
// stays blocked until its configuration (client secret or base URL) changes, or an operator forces
// a rotation.
const BlockedByConfig = "configuration-change"

// Status is what `rotator status` reports for one client. The JSON keys are part of the operator
// contract.
type Status struct {
	Name          string     `json:"name"`
	ValidTill     *time.Time `json:"valid_till"`
	RenewAt       *time.Time `json:"renew_at"`
	RequestsToday int        `json:"requests_today"`
	DailyLimit    int        `json:"daily_limit"`
	// BlockedUntil is an RFC 3339 time, BlockedByConfig, or nil when the client may call Clear.
	BlockedUntil *string `json:"blocked_until"`
	LastError    *string `json:"last_error"`

	// The fields below feed metrics; they are not part of the status document.
	IssuedAt   *time.Time `json:"-"`
	HasToken   bool       `json:"-"`
	InProgress bool       `json:"-"`
}

// Status reads c's token and state without writing anything or calling Clear.
func (e *Engine) Status(ctx context.Context, c *Client) (Status, error) {
	now := e.now()
	s := Status{Name: c.Name, DailyLimit: c.DailyLimit}
	cur, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return s, fmt.Errorf("reading the token secret: %w", err)
	}
	tok, ok := parseToken(cur.Value)
	renewAt, _ := dueAt(tok, ok, c, now)
	var r Result
	r.describe(tok, ok, renewAt)
	s.ValidTill, s.RenewAt, s.IssuedAt, s.HasToken = r.ValidTill, r.RenewAt, r.IssuedAt, ok
	if !ok {
		s.RenewAt = &now
	}
	st, _, err := e.state(ctx, c)
	if err != nil {
		return s, fmt.Errorf("reading the rotation state: %w", err)
	}
	st, inFlight := settle(st, cur.ID, now)
	s.InProgress = inFlight != nil
	if st.Day == timing.Day(now) {
		s.RequestsToday = st.Requests
	}
	if st.LastError != "" {
		le := st.LastError
		s.LastError = &le
	}
	var until string
	switch {
	case st.Blocked != nil && st.Blocked.Until == nil:
		until = BlockedByConfig
	case st.Blocked != nil && now.Before(*st.Blocked.Until):
		until = st.Blocked.Until.Format(time.RFC3339)
	case s.RequestsToday >= c.DailyLimit:
		until = timing.NextMidnightUTC(now).Format(time.RFC3339)
	case st.RetryAt != nil && now.Before(*st.RetryAt):
		until = st.RetryAt.Format(time.RFC3339)
	}
	if until != "" {
		s.BlockedUntil = &until
	}
	return s, nil
}

// Check verifies that c's secrets can be read, without writing anything or calling Clear. It
// returns a note on what it found.
func (e *Engine) Check(ctx context.Context, c *Client) (string, error) {
	if _, err := e.ClientSecret(ctx, c); err != nil {
		return "", err
	}
	cur, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "token secret " + c.TokenSecretID + " does not exist yet; the first rotation creates it", nil
	case err != nil:
		return "", fmt.Errorf("reading the token secret: %w", err)
	}
	if _, ok := parseToken(cur.Value); !ok {
		return "token secret " + c.TokenSecretID + " holds no token yet; the first rotation stores one", nil
	}
	return "client secret and token secret are readable", nil
}
