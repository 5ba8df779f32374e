package rotation

import (
	"context"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/document"
)

// RevokedEventPrefix starts the event id of the forced rotation a gateway asks for after it found
// a token revoked outside the rotator (issue 17): the rest is the refused token's version.
const RevokedEventPrefix = "gateway-revoked:"

// RevokedEvent is the event id of the forced rotation after version was found revoked outside the
// rotator: every gateway and daemon that finds the same version revoked asks with the same id, so
// the engine lets one request through between them and answers the others "duplicate".
func RevokedEvent(version string) string { return RevokedEventPrefix + version }

// HealVersion is the version id the token of that forced rotation is stored under: derived from
// the revoked version, so that status can find when the heal stored its token.
func HealVersion(revoked string) string { return requestToken("revoked-outside", revoked) }

// RevokedView is the last token found revoked outside the rotator (by a person or another tool
// asking Clear with the same client secret), as status shows it.
type RevokedView struct {
	// Version is the revoked token's version in the token secret.
	Version string `json:"version"`
	// At is when the forced rotation that followed stored its token, a few seconds after the
	// revocation was seen; nil when it stored none (it failed, or is still under way) or the
	// token secret could not tell.
	At *time.Time `json:"at"`
}

// lastRevokedOutside finds the newest revocation outside the rotator among the settled state's
// events (newest last; a completed claim's event is among them), if the state still remembers one (it keeps document.MaxEvents forced requests).
func lastRevokedOutside(st document.State) *RevokedView {
	for i := len(st.Events) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(st.Events[i], RevokedEventPrefix); ok && v != "" {
			return &RevokedView{Version: v}
		}
	}
	return nil
}

// healedAt reads when the heal of a revocation stored its token (HealVersion), if it did.
func (e *Engine) healedAt(ctx context.Context, c *Client, rv *RevokedView) {
	if rv == nil {
		return
	}
	if t, _, err := e.Version(ctx, c, HealVersion(rv.Version)); err == nil && t != nil {
		at := t.IssuedAt
		rv.At = &at
	}
}
