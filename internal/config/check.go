package config

import (
	"fmt"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// candidate is a client under validation, with what the cross-client checks
// need to say where each of its settings came from.
type candidate struct {
	client   Client
	loc      location // the entry, or the environment
	nameOK   bool
	nameLine int

	// Per API client slot (0 and 1 for client_secret and client_secret_2):
	literals   [2]string   // the literal client secret, when valid
	literalLoc [2]location // where it was set
	secretUse  [2]*idUse   // the client secret's Secrets Manager id, when valid
	tokenUse   *idUse      // the token's Secrets Manager id, when valid

	locs map[string]location // where each value setting came from, by YAML key
}

// setLoc records where the value setting key came from.
func (c *candidate) setLoc(key string, l location) {
	if c.locs == nil {
		c.locs = map[string]location{}
	}
	c.locs[key] = l
}

// useLiteral makes s the literal client secret of the slot (0 or 1).
func (c *candidate) useLiteral(slot int, s clear.ClientSecret, l location) {
	if slot == 0 {
		c.client.ClientSecret = s
	} else {
		c.client.ClientSecret2 = s
	}
	c.literals[slot], c.literalLoc[slot] = s.Reveal(), l
}

// useID makes ref the Secrets Manager id of the slot's client secret.
func (c *candidate) useID(slot int, ref secretRef, l location) {
	if slot == 0 {
		c.client.ClientSecretID = ref.raw
	} else {
		c.client.ClientSecretID2 = ref.raw
	}
	c.secretUse[slot] = &idUse{ref: ref, loc: l, owner: c}
}

// checkBudget applies the rule between max_age and daily_limit once both
// are known, at max_age's location.
func (c *candidate) checkBudget(p *problems) {
	l, ok := c.locs["max_age"]
	if !ok {
		return
	}
	checkBudget(p, l, c.client.MaxAge, c.client.DailyLimit)
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

	// A literal is compared with every literal seen before it, in this
	// client's other slot too: two API clients with one client secret are
	// one API client, and each rotation would revoke the token just stored.
	type litUse struct {
		owner *candidate
		loc   location
	}
	literals := map[string]litUse{}
	for _, c := range cands {
		for slot, lit := range c.literals {
			if lit == "" || lit == gatewayPlaceholder { // no client secret: a standalone gateway's entries (gateway.go)
				continue
			}
			l := c.literalLoc[slot]
			if first, dup := literals[lit]; dup {
				if first.owner == c {
					p.add(fieldOnly(l), nil, fmt.Sprintf("%s is the same client secret as this client's %s (value not shown); the second API client must have its own client secret, or each rotation would revoke the token just stored",
						l.field, first.loc.field))
				} else {
					p.add(fieldOnly(l), nil, fmt.Sprintf("%s is the same client secret as %s's %s (value not shown); each would revoke the other's token, so give every client its own client secret",
						l.field, first.owner.label(), first.loc.field))
				}
				continue
			}
			literals[lit] = litUse{c, l}
		}
	}

	// Ids are indexed by every name they may stand for, so that the check
	// stays linear for realistic files however many clients they list.
	index := map[string][]*idUse{}
	for _, c := range cands {
		for _, u := range []*idUse{c.secretUse[0], c.secretUse[1], c.tokenUse} {
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
