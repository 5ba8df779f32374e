package config

import (
	"fmt"
	"slices"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// idUse is one client secret or Secrets Manager id in one role; loc.field is
// the name to show, e.g. "token_secret_id (from ROTATOR_TOKEN_SECRET_ID)".
type idUse struct {
	ref   secretRef
	loc   location
	owner *candidate
	token bool // the token's secret rather than the client secret's
}

// crossCheck finds problems between clients: duplicate names, and secrets
// that two roles share. Clear issues one token per client secret at a time,
// so two clients with one client secret would each revoke the other's token
// on every rotation and burn both daily limits; two clients with one token
// secret would overwrite each other; and a token written into the client
// secret's own secret would destroy the credential it was obtained with.
func crossCheck(cands []*candidate, p *problems) {
	names := map[string]*candidate{}
	for _, c := range cands {
		if !c.nameOK {
			continue
		}
		if first, dup := names[c.client.Name]; dup {
			p.bad(c.loc.with("name", c.nameLine), nil, "%q is already used by %s; names must be unique", c.client.Name, first.describe())
			continue
		}
		names[c.client.Name] = c
	}

	// A literal is compared with every literal seen before it, in this
	// client's other slot too: two API clients with one client secret are
	// one API client, and each rotation would revoke the token just stored.
	// Ids are indexed by every name they may stand for, so that the check
	// stays linear however many clients a file lists.
	literals := map[string]*idUse{}
	index := map[string][]*idUse{}
	for _, c := range cands {
		for i := range Settings {
			s := &Settings[i]
			v, ok := c.get(s.Key)
			if !ok || s.Scope != PerClient {
				continue
			}
			switch x := v.v.(type) {
			case clear.ClientSecret:
				if x.Reveal() == gatewayPlaceholder {
					continue // no client secret: a standalone gateway's entries (gateway.go)
				}
				if first, dup := literals[x.Reveal()]; dup {
					p.add(fieldOnly(v.loc), nil, sameLiteral(v.loc, c, first))
				} else {
					literals[x.Reveal()] = &idUse{loc: v.loc, owner: c}
				}
			case secretRef:
				checkID(p, index, &idUse{ref: x, loc: v.loc, owner: c, token: s.Env == EnvTokenSecretID})
			}
		}
	}
}

// sameLiteral explains why the literal client secret at l is refused.
func sameLiteral(l location, c *candidate, first *idUse) string {
	if first.owner == c {
		return fmt.Sprintf("%s is the same client secret as this client's %s (value not shown); the second API client must have its own client secret, or each rotation would revoke the token just stored",
			l.field, first.loc.field)
	}
	return fmt.Sprintf("%s is the same client secret as %s's %s (value not shown); each would revoke the other's token, so give every client its own client secret",
		l.field, first.owner.label(), first.loc.field)
}

// checkID reports u against the uses indexed before it that may name the
// same secret. A use that conflicts is not indexed itself: those already
// stand for its secret, so thousands of entries sharing one default cost one
// problem each, not one per pair.
func checkID(p *problems, index map[string][]*idUse, u *idUse) {
	var seen []*idUse
	for _, name := range u.ref.names {
		for _, prev := range index[name] {
			if !slices.Contains(seen, prev) && sameSecret(prev.ref, u.ref) {
				seen = append(seen, prev)
				if p.full() {
					p.more++ // no message to compose
				} else {
					p.add(fieldOnly(u.loc), nil, conflict(u, prev))
				}
			}
		}
	}
	if len(seen) > 0 {
		return
	}
	for _, name := range u.ref.names {
		index[name] = append(index[name], u)
	}
}

// conflict explains why u, found after prev, refers to a secret it must not
// share. Only token ids are quoted: a client_secret_id might be a secret
// pasted into the wrong field.
func conflict(u, prev *idUse) string {
	other := prev.owner.label() + "'s " + prev.loc.field
	if prev.owner == u.owner {
		other = "this client's " + prev.loc.field
	}
	switch {
	case u.token && prev.token:
		return fmt.Sprintf("%s %s refers to the same secret as %s (%s); each client would overwrite the other's token, so give every client its own token secret",
			u.loc.field, quote(u.ref.raw), other, quote(prev.ref.raw))
	case !u.token && !prev.token && prev.owner == u.owner:
		return fmt.Sprintf("%s refers to the same Secrets Manager secret as %s; the two API clients must have different client secrets, or each rotation would revoke the token just stored",
			u.loc.field, other)
	case !u.token && !prev.token:
		return fmt.Sprintf("%s refers to the same Secrets Manager secret as %s; the two clients would share one client secret and each would revoke the other's token",
			u.loc.field, other)
	case prev.owner == u.owner:
		return fmt.Sprintf("%s refers to the same secret as %s; writing the token there would overwrite the client secret it is obtained with",
			u.loc.field, other)
	case u.token:
		return fmt.Sprintf("%s refers to the same secret as %s; writing this client's token there would overwrite that client secret",
			u.loc.field, other)
	default:
		return fmt.Sprintf("%s refers to the same secret as %s; writing that client's token there would overwrite this client's client secret",
			u.loc.field, other)
	}
}
