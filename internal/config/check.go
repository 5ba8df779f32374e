package config

import (
	"fmt"
	"strings"
)

// candidate is a client under validation, with what the cross-client checks
// need to say where each of its settings came from.
type candidate struct {
	client   Client
	loc      location // the entry, or the environment
	nameOK   bool
	nameLine int

	literal    string   // the literal client secret, when valid
	literalLoc location // where it was set
	secretUse  *idUse   // the client secret's Secrets Manager id, when valid
	tokenUse   *idUse   // the token's Secrets Manager id, when valid
}

// label names the candidate in a message about another client.
func (c *candidate) label() string {
	switch {
	case c.nameOK:
		return fmt.Sprintf("client %q", c.client.Name)
	case c.loc.entry > 0 && c.loc.line > 0:
		return fmt.Sprintf("client #%d (line %d)", c.loc.entry, c.loc.line)
	case c.loc.entry > 0:
		return fmt.Sprintf("client #%d", c.loc.entry)
	}
	return "the client"
}

// idUse is one Secrets Manager id in one role.
type idUse struct {
	ref   secretRef
	loc   location // loc.field is the name to show, e.g. "token_secret_id (from ROTATOR_TOKEN_SECRET_ID)"
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

	literals := map[string]*candidate{}
	for _, c := range cands {
		if c.literal == "" {
			continue
		}
		if first, dup := literals[c.literal]; dup {
			p.add(fieldOnly(c.literalLoc), nil, fmt.Sprintf("%s is the same client secret as %s's %s (value not shown); each would revoke the other's token, so give every client its own client secret",
				c.literalLoc.field, first.label(), first.literalLoc.field))
			continue
		}
		literals[c.literal] = c
	}

	// Ids are indexed by every name they may stand for, so that the check
	// stays linear for realistic files however many clients they list.
	index := map[string][]*idUse{}
	for _, c := range cands {
		for _, u := range []*idUse{c.secretUse, c.tokenUse} {
			if u == nil {
				continue
			}
			seen := map[*idUse]bool{}
			for _, name := range u.ref.names {
				for _, prev := range index[name] {
					if seen[prev] || !sameSecret(prev.ref, u.ref) {
						continue
					}
					seen[prev] = true
					p.add(fieldOnly(u.loc), nil, conflict(u, prev))
				}
			}
			for _, name := range u.ref.names {
				index[name] = append(index[name], u)
			}
		}
	}
}

// fieldOnly strips the " (from VARIABLE)" that messages show for inherited
// settings, so that Error.Field is always a plain key or variable name.
func fieldOnly(l location) location {
	l.field, _, _ = strings.Cut(l.field, " (from ")
	return l
}

// describe names the candidate together with its line, for duplicate names.
func (c *candidate) describe() string {
	if c.loc.entry > 0 && c.nameLine > 0 {
		return fmt.Sprintf("client #%d (line %d)", c.loc.entry, c.nameLine)
	}
	return c.label()
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
