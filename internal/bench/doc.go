// Package bench holds the benchmarks behind BENCHMARKS.md (`make bench`): the Clear requests a
// month costs against the minimum the token lifetime needs, the revocation gap (Clear's answer to
// the token readable as AWSCURRENT) against one bare PutSecretValue, the Secrets Manager calls and
// versions per idle tick and per rotation, a thousand clients against moto, the footprint of the
// daemon, the binary and the Lambda, what ERPs see of rotations (with and without the Clear
// gateway), the seconds without a live token after a token is revoked outside the rotator, and the
// gateway's cost against nginx under wrk. Each compares, where it applies, with a naive baseline
// (Naive) that fetches and stores a token on every tick.
//
// The benchmarks print their figures with b.ReportMetric and b.Logf; none of them asserts a time.
// One test lives here too, TestGatewayERPNoFailedCalls (part of `make test`): it asserts the
// gateway's zero failed calls across rotations, a count, not a time.
package bench
