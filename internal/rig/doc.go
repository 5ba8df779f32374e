// Package rig is the project's one test rig. A World is one rotated client's surroundings: a
// Secrets Manager, the Clear emulator, the client secrets of one or two API clients, the token
// secret, a clock, a log buffer, and a leak scan that runs when the test ends. Every test that
// rotates a token builds its world here, whether it drives the engine in-process, runs a daemon
// inside a testing/synctest bubble, or runs the built rotator and Lambda binaries as processes.
//
// A world comes in two kinds, chosen by Options.Memory:
//
//   - On the wire (the default): moto_server reached through the real aws-sdk-go-v2 client, and
//     the emulator served over HTTP on 127.0.0.1, so that child processes reach the same world.
//   - In memory: the SDK-level fake Secrets Manager (fake.SecretsManager) and the emulator reached
//     through its in-process Transport. Tests inside a synctest bubble need this kind, because
//     network I/O does not block durably inside a bubble and would stall its clock.
//
// Both kinds share one fake of each external system (fake.SecretsManager or moto, the emulator),
// one clock (fake.Clock, or the bubble's time.Now), one way to inject Secrets Manager faults
// (API.Fail) and one leak scan: every client secret and every token that Clear delivered or that
// was stored must be absent from the logs and outputs a test captured.
package rig
