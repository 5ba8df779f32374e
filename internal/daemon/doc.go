// Package daemon runs the rotator unattended (`rotator run`): it looks at every configured client
// on a cron schedule, and in between wakes for the clients that need it sooner.
//
// The engine (package rotation) makes every decision that costs a Clear request, and persists what
// it decided in Secrets Manager; the daemon only decides when to ask it. At every activation of the
// schedule (a tick) it asks the engine about every client, through a per-client rotation.Cache: a
// client whose secret has not changed since the last look costs one DescribeSecret call and writes
// nothing, and a change made elsewhere (another rotator, an operator's forced rotation, a person
// editing the secret) is seen within one tick. Between ticks the daemon wakes for a client at the
// time the engine named (Result.NextCheck: a renewal point, the end of a backoff or a block) and at
// the expiry of the token it last saw, so a coarse schedule such as "@every 6h" still renews hourly
// tokens on time. Since all state that matters lives in Secrets Manager, a restarted daemon picks
// up exactly where the previous one stopped: a restart resets no backoff, block or count.
//
// # One loop
//
// One goroutine owns the schedule: it holds one timer, set for the earliest of the schedule's next
// activation, the clients' NextCheck times and the stored tokens' expiry, and it receives the
// reload signal and the cancellation of Run's context as events of the same select. When to wake
// and whom to look at is decided by one pure function of the times, schedule; the loop acts on its
// plan. The cron library is used for the schedule's syntax only. A round of checks runs in a pool of at most
// Options.Concurrency workers while the loop waits for it; the timer is not armed meanwhile, so
// checks never overlap, and what fell due during a round is looked at as soon as it ends. A
// schedule whose next activation cannot be found (robfig/cron's Next returns the zero time) does
// not stop the daemon: it falls back to the default interval and says so.
//
// # Shutdown
//
// On cancellation of Run's context (SIGTERM, SIGINT) the daemon starts no further check and waits,
// at most the configured shutdown grace, for those in flight: the engine finishes a started Clear
// request and its token write even though the context is cancelled, because the token the ERP
// holds is already revoked by then.
//
// # Ops listener
//
// The ops listener serves /healthz, /readyz and /metrics (Prometheus text format); see handler. It
// has read, write and idle timeouts, a cap on header size and a cap on open connections, so that
// clients of the ops port can never take the descriptors rotation needs; a connection beyond the
// cap takes the place of an old one (see connLimit), so that no crowd of connections keeps the
// probes from being answered.
//
// # Hooks
//
// Every check of every round ends in daemon.act, which files the engine's rotation.Result and then
// hands it to the Options.OnResult hooks: a gateway serves Result.Stored, push delivery announces
// it. Options.Metrics add families to /metrics (rendered from a snapshot taken under the daemon's
// lock, outside it), and Options.Services start and stop with the daemon, as the ops listener does.
package daemon
