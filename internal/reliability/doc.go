// Package reliability proves the rotator's promises under faults, crashes, races and a month of
// simulated time. Its tests run the real rotation engine against moto (the aws-sdk-go-v2 Secrets
// Manager client with faults injected on the wire) and the Clear emulator, run the built `rotator`
// binary and kill it at each step of a rotation, race processes and in-process engines on one
// secret, and drive thirty simulated days with random faults, restarts and duplicate ticks.
//
// The invariants checked everywhere are the ones operators rely on:
//
//   - The token secret's AWSCURRENT always holds a token document: the live token, or the token
//     it held before the attempt (revoked only when Clear issued a token whose answer was lost).
//     Never garbage, never a state document.
//   - The daily count in the ROTATOR_STATE document equals the number of requests Clear received
//     for the client secret that day, plus the number of lost claims: claims that were written
//     (and so counted) but whose rotator never sent the request to Clear, because it failed or
//     died between the claim and the request. A lost claim can only over-count, never under-count,
//     which keeps the daily limit safe.
//   - Once a fault clears, the client rotates again (after its backoff or the stale claim's lease),
//     and a crash costs at most one extra Clear request.
//   - Neither a client secret nor a token ever reaches a log or an output.
//   - With two API clients used in turn: AWSCURRENT never holds a token Clear has revoked, except
//     after a rotation made in degraded mode (with the API client that issued it); consecutive
//     rotations use different API clients while both are usable; and each API client's count in
//     the state equals Clear's count for its client secret, plus its lost claims.
//   - A lost token (a refused write, or an owner dead after Clear answered) is replaced at the
//     next tick, or after the claim's lease and one tick when its owner died; a claim its owner
//     knows it abandoned holds nobody up once the owner could say so; and no valid_till, however
//     bad, brings two automatic rotations closer than timing.MinInterval.
//
// The fault tests of issues 9 and 10 run inside testing/synctest bubbles on the one in-memory
// Secrets Manager (fake.NewSecretsManager, behind the real store) and the emulator reached through
// its in-memory Transport. The non-test files hold what the tests and the benchmarks in
// internal/bench share: the month simulation (Simulate) over the same two doubles.
package reliability
