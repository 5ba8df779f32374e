// Package fake holds the tests' in-memory stand-ins: SecretsManager, the one in-memory Secrets
// Manager, and Clock, the one settable clock. Clear's one double is the project's emulator
// (internal/emulator), served over loopback or, inside a testing/synctest bubble, in-process through
// its Transport.
//
// SecretsManager answers with the SDK's own types, so the real store.SecretsManager runs on it
// unchanged; it keeps exactly the semantics the rotator relies on (version ids, staging labels,
// ClientRequestToken idempotency, DescribeSecret's VersionIdsToStages, UpdateSecretVersionStage)
// and counts every call, so that a test can assert how much work the rotator did. It makes no
// network call, which is what lets timer loops and month-long simulations run in synctest
// bubbles; internal/store's tests run the same scenario against it and against moto, so the two
// cannot drift apart unnoticed.
package fake
