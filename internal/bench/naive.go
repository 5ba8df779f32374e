package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/reliability"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Naive is the baseline the rotator is compared with: what a cron job running
//
//	curl -H "x-clear-client-secret: $SECRET" $CLEAR/integration/v1/authz/token |
//	  aws secretsmanager put-secret-value --secret-id clear/token --secret-string file:///dev/stdin
//
// every tick does. It asks Clear for a token on every tick, whether or not the stored one is due,
// and stores whatever token it gets; it keeps no count, no claim and no backoff, and a failed tick
// simply waits for the next one.
type Naive struct {
	P *reliability.Process
	// Timeout bounds the request to Clear, as curl --max-time does; zero means 30 s.
	Timeout time.Duration
}

// Tick fetches a token and stores it as AWSCURRENT.
func (n *Naive) Tick(ctx context.Context) {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	grant, err := n.P.Client.Clear.Token(cctx, n.P.Client.ClientSecret)
	cancel()
	if err != nil {
		return
	}
	body, err := document.MarshalToken(document.Token{AccessToken: grant.AccessToken, ValidTill: grant.ValidTill, IssuedAt: n.P.Clock.Now()})
	if err != nil {
		return
	}
	s := store.New(n.P.API)
	// The aws CLI generates a fresh ClientRequestToken for every call.
	var b [16]byte
	_, _ = rand.Read(b[:])
	if _, err := s.Put(ctx, n.P.Client.TokenSecretID, hex.EncodeToString(b[:]), string(body)); errors.Is(err, store.ErrNotFound) {
		_ = s.Create(ctx, n.P.Client.TokenSecretID, string(body), "naive")
	}
}
