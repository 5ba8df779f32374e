// Package cleartoken is what an ERP written in Go needs to use the Clear access token that
// clear-rotator keeps in AWS Secrets Manager: a cached Source of the token, and an http.RoundTripper
// that sends it to Clear and survives a rotation.
//
// Clear revokes the previous token the moment it issues a new one, and the rotator stores the new
// token a few milliseconds later (longer if Secrets Manager is slow). A consumer that re-reads the
// secret the instant Clear refuses its token can therefore read the revoked token again. The
// Transport handles that: on a 401 it tells the Source which token was refused, and the Source
// re-reads AWSCURRENT until it holds a different token (with bounded, jittered exponential backoff,
// about 10 s by default) before the request is retried once. However many requests are refused at
// the same moment, one re-read runs at a time for them all. Requests made during that wait join it
// rather than send the refused token; when no newer token comes (Clear refused one call for a
// reason of its own, an API the API client lacks, say), they go out with the token AWSCURRENT
// holds: only the refused call gets its 401. A wait also ends early, with the refused call's 401,
// when Clear accepts the refused token for a request sent after the refusal (an answer other than a
// 401, a 403 or a 5xx): the token is not revoked. A call refused during a whole wait that ended
// without a newer token, while Clear has accepted the token since, holds no other call at its next
// refusal, but waits for a newer token or such an acceptance itself (requests whose body cannot be
// replayed are held for up to 2 s of that wait: the refusal may be the rotation's, and they could
// not be retried); once a wait after its own refusal has ended so by a request sent within 2 s of
// the refusal, as a busy ERP's are (a later one ends the wait but proves nothing), or such a wait
// has ended whole with no call refused during it but calls taken for refused, or a second whole
// wait has while Clear accepts the token for no call (two waits with no acceptance between them
// count once, as they may be one incident of Clear's), its refusals (method and path, an id in the
// path standing for any id) are returned at once, holding no call, until Clear accepts it; the
// secret is read again first when the cache is more than 5 s old. With a newer token, a call proven
// by an acceptance with an earlier one, or refused again when retried with the newer token, is
// taken for refused, as above: its first refusal waits itself rather than hold every call (and a
// wait of it judges nothing). Rare cases still answer a call's refusal at a rotation at once: a
// call judged by a whole wait that fell inside an incident of Clear's, in an ERP that sent nothing
// else; one whose wait in a short incident was ended by a request sent within 2 s of its end; and a
// rotator that stores the newer token more than a wait late. A refusal of any other call may be the
// rotation that revokes the token, and holds every call.
//
// This works with both modes of the rotator. With one API client every rotation revokes the token
// consumers hold, and the 401 handling above is what keeps them working. With two API clients the
// replaced token stays valid until its own valid_till, and the Source's cache TTL (1 minute by
// default, WithTTL) must be shorter than the rotator's ROTATOR_RENEW_BEFORE (or ROTATOR_MAX_AGE for
// tokens that never expire); the 401 handling is then a safety net.
//
// When a re-read fails (Secrets Manager cannot be reached, or AWSCURRENT holds no token document),
// the Source keeps using the token it read before until that token's valid_till (for a token that
// never expires, until Clear refuses it), logs the failure, and tries again once per TTL rather
// than on every call; as the rotator's gateway does. A token Clear refused is never used this way,
// and without a token read before, or past its valid_till, the caller gets the error.
//
// The package depends only on the AWS SDK's Secrets Manager client and the standard library (and
// two small packages of the rotator's that use the standard library only: internal/secret, which
// holds the token the way the rotator does, and internal/apicall, which tells one call from
// another as the gateway does), so an ERP does not pull in the rotator's dependencies. It never
// logs a token and never puts one, or any part of the secret's value, in an error.
//
// Usage:
//
//	sm := secretsmanager.NewFromConfig(cfg)
//	src := cleartoken.NewSource(sm, "clear/erp/token")
//	client := &http.Client{Transport: cleartoken.NewTransport(src, nil), Timeout: 30 * time.Second}
//	resp, err := client.Get("https://api.clear.in/...")
//
// For a Clear API that reads the token from another header (Clear's GLS API reads
// x-clear-auth-token), make its Transport with WithHeader.
package cleartoken
