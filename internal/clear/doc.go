// Package clear is a client for Clear's (ClearTax / Clear Finance Cloud) access token API. It names
// the two confidential values the rotator handles, the API client secret and the access token,
// which package secret defines: distinct types that redact themselves wherever they could be
// printed or logged, so that revealing one takes an explicit call to Reveal.
//
// The package also holds what every caller needs to treat Clear's answers as untrusted text:
// Sanitize makes remote text printable and single-line; secret.Redact removes secrets from it.
package clear
