// Package secret holds the rotator's secret primitives, in one place: the redaction marker, the
// self-redacting Value type (Clear's client secret and access token, and any other credential: a
// gateway key, a webhook signing secret), the one redactor, which removes a secret from text in
// the spellings it takes when echoed, and the checks of a client secret and of an access token.
//
// It depends on the standard library only, so that the public cleartoken package can use it
// without pulling the rotator's dependencies into an ERP.
package secret
