package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Guard refuses to rotate a client whose client secret is also another API client's under another
// name (rotation.Engine.SharedSecrets): each rotation of one would revoke the other's token. The
// configuration cannot see it, since the names differ; only reading the secrets tells, so a Guard
// reads them all at most once per TTL, and a long-running process (the daemon, a warm Lambda)
// notices a secret changed to another's value within TTL, at one read per secret per TTL.
type Guard struct {
	Engine *rotation.Engine
	// All is every configured client: a client shares its secret with any of them.
	All []*rotation.Client
	// TTL is how long one reading of the secrets holds; zero reads them on every call.
	TTL time.Duration

	mu       sync.Mutex
	at       time.Time
	done     bool
	refusals map[string]error
}

// GuardTTL is the TTL of a long-running process's Guard, the engine's own cache time of a client
// secret.
const GuardTTL = 15 * time.Minute

// Refusal returns why c must not be rotated, or nil when it may be.
func (g *Guard) Refusal(ctx context.Context, c *rotation.Client) error {
	return g.read(ctx)[c.Name]
}

// read returns, per client name, why it must not be rotated, reading the secrets when the last
// reading is older than the TTL. Reading costs a call per secret, so it is skipped when there are
// not two secrets to compare.
func (g *Guard) read(ctx context.Context) map[string]error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.Engine.Now()
	if g.done && g.TTL > 0 && now.Sub(g.at) < g.TTL {
		return g.refusals
	}
	n := 0
	for _, c := range g.All {
		n += c.Slots()
	}
	refusals := map[string]error{}
	if n >= 2 {
		for _, err := range g.Engine.SharedSecrets(ctx, g.All) {
			for _, name := range []string{err.Client, err.Other} {
				if _, done := refusals[name]; !done {
					refusals[name] = err
				}
			}
		}
	}
	g.refusals, g.at, g.done = refusals, now, true
	return refusals
}

// Run is Engine.Run behind the guard: a refused client is not looked at, and its result is a
// failure that says why.
func (g *Guard) Run(ctx context.Context, c *rotation.Client, req rotation.Request, cache *rotation.Cache) rotation.Result {
	if err := g.Refusal(ctx, c); err != nil {
		return Refused(ctx, g.Engine, c, err)
	}
	return g.Engine.Run(ctx, c, req, cache)
}

// Refused is the result of a client that is not rotated, with err as the reason: a failure, with
// the client's status as it stands.
func Refused(ctx context.Context, e *rotation.Engine, c *rotation.Client, err error) rotation.Result {
	st, _ := e.Status(ctx, c)
	e.Log.Error("refusing to rotate the client", "client", c.Name, "error", err)
	return rotation.Result{Client: c.Name, Outcome: rotation.Failed, Message: err.Error(), Err: err, Status: refusedStatus(st, err)}
}

// refusedStatus is st of a client the guard refuses: blocked, with err as the reason, until the
// client secret changes (BlockedUntil nil), since nothing rotates it until then. Its token's times
// stand as read.
func refusedStatus(st rotation.Status, err error) rotation.Status {
	msg := err.Error()
	st.State, st.BlockedReason, st.BlockedUntil = rotation.HealthBlocked, &msg, nil
	return st
}
