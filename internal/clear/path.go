package clear

import (
	"errors"
	"net/url"
	"strings"
)

// The rules on a path below a base URL that the gateway forwards, and that a probe path
// (ROTATOR_PROBE_PATH) is checked against when it is configured and again when it is sent: one
// rule, in the package both use.

// nextSegment splits path's first segment off, as a server in front of Clear may read it:
// segments end at a slash or a backslash, and lose their ";" parameters (Tomcat reads "..;" as
// ".."). path is unescaped: "%2e%2e" and "..%2f" are dots and a slash here.
func nextSegment(path string) (seg, rest string) {
	seg = path
	if i := strings.IndexAny(path, "/\\"); i >= 0 {
		seg, rest = path[:i], path[i+1:]
	}
	if j := strings.IndexByte(seg, ';'); j >= 0 {
		seg = seg[:j]
	}
	return seg, rest
}

// DotSegment reports whether path has a "." or ".." segment. Forwarded, "/base/../x" would be
// resolved by the server in front of Clear above the base URL's path, which bounds where the
// token goes.
func DotSegment(path string) bool {
	for seg := ""; path != ""; {
		if seg, path = nextSegment(path); seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// tokenSegments are the segments of Clear's token API's path below a base URL.
var tokenSegments = strings.Split(strings.Trim(TokenPath, "/"), "/")

// IsTokenAPI reports whether path (the caller's, unescaped, below the base URL; without dot
// segments, which are refused before) may name Clear's token API, in any spelling a server in front
// of it might take for it: any case, empty segments, a trailing slash, ";" parameters. A token
// asked for through the gateway revokes the one it sends to every ERP; a 401 from the token API
// (no client secret) would be taken for a refusal of the gateway's token.
func IsTokenAPI(path string) bool {
	n := 0
	for seg := ""; path != ""; {
		if seg, path = nextSegment(path); seg == "" {
			continue
		}
		if n == len(tokenSegments) || !strings.EqualFold(seg, tokenSegments[n]) {
			return false
		}
		n++
	}
	return n == len(tokenSegments)
}

// MaxProbePath bounds a probe path (ROTATOR_PROBE_PATH), query included.
const MaxProbePath = 1024

// A probe path's refusals, for errors.Is.
var (
	ErrNotProbePath  = errors.New("not a path below the base URL")
	ErrProbeTokenAPI = errors.New("is Clear's token API")
)

// CheckProbePath is the one rule on a probe path (ROTATOR_PROBE_PATH), which configuration applies
// when it loads one and the gateway again when it sends it: an origin-form target below the base
// URL of at most MaxProbePath printable characters, without a fragment or a "." or ".." segment
// (escaped too); and never the token API in any spelling (ErrProbeTokenAPI), whose every call would
// revoke the token it probes.
func CheckProbePath(s string) error {
	u, err := url.ParseRequestURI(s)
	switch {
	case err != nil || u.Host != "" || len(s) > MaxProbePath || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") ||
		strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '#' }) || DotSegment(u.Path):
		return ErrNotProbePath
	case IsTokenAPI(u.Path):
		return ErrProbeTokenAPI
	}
	return nil
}
