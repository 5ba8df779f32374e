// Package apicall names a call to one of Clear's business APIs the way a refusal is remembered:
// method and path, where an id in the path stands for any id. Clear refuses some calls whatever the
// token (an API the API client lacks the product for), and the gateway and cleartoken both need to
// tell such a call, made again on another invoice, from a call that says the token was revoked.
//
// It uses the standard library only, since cleartoken, which ERPs import, depends on it.
package apicall

import "strings"

// Call is a route of calls: a method and a path (without the query), the path's ids standing for
// any id (Is). The zero Call is a call whose route is unknown; it is only ever the same call as
// itself.
type Call struct{ Method, Path string }

// Is reports whether method and path are c: the same method, and the same path segment by
// segment, but that an id (isID) stands for any other id: the same call on another invoice. It is
// symmetric.
func (c Call) Is(method, path string) bool {
	if c.Method != method {
		return false
	}
	if c.Path == path {
		return true
	}
	for a, b := c.Path, path; ; {
		sa, ra, moreA := strings.Cut(a, "/")
		sb, rb, moreB := strings.Cut(b, "/")
		if sa != sb && !(isID(sa) && isID(sb)) {
			return false
		}
		if !moreA || !moreB {
			return moreA == moreB
		}
		a, b = ra, rb
	}
}

// TokenAccepted reports whether an answer of status says Clear accepted the token it was sent
// with: not a 401, nor a 403 (which may be the token's too), nor a 5xx (which may come before the
// token is looked at).
func TokenAccepted(status int) bool {
	return status != 401 && status != 403 && status < 500
}

// isID reports whether a path segment is an id: all digits (an invoice number), or at least 8
// bytes with a digit among them (a GSTIN, an IRN, a UUID). A short name with a digit (v2, GSTR3B)
// is a name.
func isID(seg string) bool {
	digits := 0
	for i := 0; i < len(seg); i++ {
		if '0' <= seg[i] && seg[i] <= '9' {
			digits++
		}
	}
	return digits > 0 && (digits == len(seg) || len(seg) >= 8)
}
