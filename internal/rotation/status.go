package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Status is what `rotator status` reports for one client. The JSON keys are part of the operator
// contract. A value the rotator could not read is null, never a made-up zero.
type Status struct {
	Name string `json:"name"`
	// State is the client's health in one word (see Health).
	State     Health     `json:"state"`
	ValidTill *time.Time `json:"valid_till"`
	IssuedAt  *time.Time `json:"issued_at"`
	RenewAt   *time.Time `json:"renew_at"`
	// APIClient is the API client that issued the token in AWSCURRENT, when known.
	APIClient *int `json:"api_client"`
	// RequestsToday counts today's requests across the API clients; DailyLimit applies to each.
	RequestsToday *int `json:"requests_today"`
	DailyLimit    int  `json:"daily_limit"`
	// BlockedUntil is when the client may call Clear again, nil when it may now or when only a
	// configuration change lifts the block; BlockedReason says why it may not.
	BlockedUntil  *time.Time `json:"blocked_until"`
	BlockedReason *string    `json:"blocked_reason"`
	LastError     *string    `json:"last_error"`
	// Degraded is true when two API clients are configured and only one may be asked.
	Degraded   bool       `json:"degraded"`
	APIClients []SlotView `json:"api_clients"`
	// ConsumerReread is the consumers' rule: with two API clients, a consumer that re-reads the
	// secret at least this often never holds a dead token. Nil with one API client (consumers must
	// re-read on a 401) or when it cannot be known.
	ConsumerReread *string `json:"consumer_reread_interval"`
	// InFlight describes a rotation in progress; TokenLost a token issued and not stored.
	InFlight  *ClaimView `json:"in_flight"`
	TokenLost *LostView  `json:"token_lost"`

	// HasToken reports whether AWSCURRENT holds a token; it feeds metrics.
	HasToken bool `json:"-"`
}

// ClaimView is a rotation in progress.
type ClaimView struct {
	Owner      string    `json:"owner"`
	Since      time.Time `json:"since"`
	LeaseUntil time.Time `json:"lease_until"`
	APIClient  int       `json:"api_client,omitempty"`
}

// LostView is a token issued and not stored.
type LostView struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Certain is true when Clear is known to have issued the token; false when a claim's owner
	// vanished and nobody knows whether it called Clear.
	Certain bool `json:"certain"`
}

// statusOf describes a decision for status.
func statusOf(c *Client, s Snapshot, d Decision) Status {
	st := Status{Name: c.Name, State: d.Health, DailyLimit: c.DailyLimit, Degraded: d.Degraded, APIClients: d.Slots,
		RequestsToday: d.RequestsToday}
	if st.APIClients == nil {
		st.APIClients = []SlotView{}
	}
	if !s.CurrentKnown {
		st.State = HealthUnknown
		return st
	}
	if s.HasToken {
		st.HasToken = true
		t := s.Token
		st.ValidTill = t.ValidTill
		at := t.IssuedAt
		st.IssuedAt = &at
		if t.APIClient != 0 {
			n := t.APIClient
			st.APIClient = &n
		}
	}
	if !d.RenewAt.IsZero() {
		ra := d.RenewAt
		st.RenewAt = &ra
	}
	if !s.StateKnown {
		return st
	}
	if cl := s.State.Claim; cl != nil && d.Health == HealthInFlight {
		st.InFlight = &ClaimView{Owner: cl.Owner, Since: cl.At, LeaseUntil: cl.LeaseUntil, APIClient: cl.Slot}
	}
	if l := d.Settled.Lost; l != nil && lostCurrent(s, d.Settled) {
		st.TokenLost = &LostView{At: l.At, Reason: l.Reason, Certain: l.Certain}
	}
	// Why the client may not rotate automatically, if it may not: the refusal of the API client it
	// would ask, or of the other when that one is usable too.
	if _, err := choose(s, d.Slots, Request{}); err != nil {
		for _, v := range d.Slots {
			if v.refusal == err {
				st.BlockedUntil, st.BlockedReason = v.BlockedUntil, v.BlockedReason
			}
		}
		if st.BlockedReason == nil {
			reason := err.Error()
			st.BlockedReason = &reason
		}
	}
	// The most recent error of any API client.
	for _, v := range d.Slots {
		if v.LastError != nil {
			st.LastError = v.LastError
		}
	}
	if l := d.Settled.Lost; l != nil && st.LastError == nil {
		reason := l.Reason
		st.LastError = &reason
	}
	if len(d.Slots) == 2 && s.HasToken {
		if every := rereadInterval(s.Token, Policy{MaxAge: c.MaxAge}, d.RenewAt); every > 0 {
			s := every.Round(time.Second).String()
			st.ConsumerReread = &s
		}
	}
	return st
}

// Status reads c's token and state without writing anything or calling Clear, and reports the
// decision a rotation would make. When the token secret cannot be read it returns a status whose
// state is unknown, with the error.
func (e *Engine) Status(ctx context.Context, c *Client) (Status, error) {
	rd, err := e.read(ctx, c, nil, false)
	if err != nil {
		return Status{Name: c.Name, State: HealthUnknown, DailyLimit: c.DailyLimit, APIClients: []SlotView{}}, err
	}
	d := Decide(rd.snap, e.policy(c), Request{})
	return statusOf(c, rd.snap, d), errors.Join(rd.errs...)
}

// Check verifies that c's secrets can be read, without writing anything or calling Clear. It
// returns a note on what it found.
func (e *Engine) Check(ctx context.Context, c *Client) (string, error) {
	var fps []string
	for slot := 1; slot <= c.Slots(); slot++ {
		s, err := e.clientSecret(ctx, c, slot)
		if err != nil {
			return "", err
		}
		fps = append(fps, fingerprint(c.BaseURL, s))
	}
	if len(fps) == 2 && fps[0] == fps[1] {
		return "", errors.New("both API clients hold the same client secret; configure two different API clients, or each rotation revokes the other's token")
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
	if len(fps) == 2 {
		return "both client secrets and the token secret are readable", nil
	}
	return "client secret and token secret are readable", nil
}

// SharedSecrets reads every configured client secret of clients and reports, as one error per
// pair, the API clients that hold the same value under different names: each would revoke the
// other's tokens. Secrets that cannot be read are left to Check to report. The errors never hold a
// value.
func (e *Engine) SharedSecrets(ctx context.Context, clients []*Client) []error {
	type owner struct {
		client string
		slot   int
	}
	seen := map[string]owner{}
	var errs []error
	for _, c := range clients {
		for slot := 1; slot <= c.Slots(); slot++ {
			s, err := e.clientSecret(ctx, c, slot)
			if err != nil {
				continue
			}
			key := fingerprint("", s)
			if o, ok := seen[key]; ok {
				errs = append(errs, fmt.Errorf("client %q API client %d and client %q API client %d hold the same client secret: each rotation of one revokes the other's token; give each its own API client in Clear",
					o.client, o.slot, c.Name, slot))
				continue
			}
			seen[key] = owner{c.Name, slot}
		}
	}
	return errs
}

// Revoke asks every configured API client of c for a new token, so that every token the rotator
// ever stored for c is revoked at Clear, and stores each answer as it comes: the last one stays
// AWSCURRENT. It goes through the same claim, count and limits as any rotation, one request per API
// client, and stops at the first that fails. The API client that issued the token in AWSCURRENT is
// asked last, so that AWSCURRENT always holds a live token when it returns successfully.
func (e *Engine) Revoke(ctx context.Context, c *Client, event string) []Result {
	order := []int{1}
	if c.Slots() == 2 {
		order = []int{1, 2}
		if st, err := e.Status(ctx, c); err == nil && st.APIClient != nil && *st.APIClient == 1 {
			order = []int{2, 1}
		}
	}
	var out []Result
	for i, slot := range order {
		req := Request{Force: true, Slot: slot}
		if event != "" {
			req.Event = fmt.Sprintf("%s/revoke/%d", event, i+1)
		}
		r := e.Run(ctx, c, req, nil)
		out = append(out, r)
		if r.Outcome != Rotated {
			break
		}
	}
	return out
}
