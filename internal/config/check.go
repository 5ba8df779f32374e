package config

import (
	"fmt"
	"slices"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/settings"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// idUse is one client secret (literal, or the Secrets Manager id holding it)
// or token secret id in one role; at.Field is the name to show, e.g.
// "token_secret_id (from ROTATOR_TOKEN_SECRET_ID)".
type idUse struct {
	id      store.ID
	literal string // a literal client secret instead, compared with literals only
	at      Error
	owner   *candidate
	token   bool // the token's secret rather than the client secret's
}

// names are the names u's secret may go by, by which uses are indexed.
func (u *idUse) names() []string {
	if u.literal != "" {
		return []string{u.literal}
	}
	return u.id.Names()
}

// same reports whether u and v may be one secret.
func (u *idUse) same(v *idUse) bool {
	if u.literal != "" || v.literal != "" {
		return u.literal == v.literal
	}
	return store.SameSecret(u.id, v.id)
}

// crossCheck finds problems between clients: duplicate names, and secrets
// that two roles share. Clear issues one token per client secret at a time,
// so two clients with one client secret would each revoke the other's token
// on every rotation and burn both daily limits; two clients with one token
// secret would overwrite each other; and a token written into the client
// secret's own secret would destroy the credential it was obtained with. Two
// API clients of one client with one client secret are one API client, and
// each rotation would revoke the token just stored.
func crossCheck(cands []*candidate, p *settings.Problems) {
	names := map[string]*candidate{}
	for _, c := range cands {
		if !c.NameOK {
			continue
		}
		if first, dup := names[c.client.Name]; dup {
			p.Bad(c.At.At("name", c.NameLine), nil, "%q is already used by client #%d (line %d); names must be unique", c.client.Name, first.At.Entry, first.NameLine)
			continue
		}
		names[c.client.Name] = c
	}
	// Uses are indexed by every name they may stand for, so that the check
	// stays linear however many clients a file lists.
	index := map[string][]*idUse{}
	for _, c := range cands {
		for _, v := range c.Values {
			if !v.OK {
				continue
			}
			switch x := v.V.(type) {
			case clear.ClientSecret:
				checkID(p, index, &idUse{literal: x.Reveal(), at: v.At, owner: c})
			case store.ID:
				checkID(p, index, &idUse{id: x, at: v.At, owner: c, token: v.Setting.Env == EnvTokenSecretID})
			}
		}
	}
}

// checkID reports u against the uses indexed before it that may name the
// same secret. A use that conflicts is not indexed itself: those already
// stand for its secret, so thousands of entries sharing one default cost one
// problem each, not one per pair.
func checkID(p *settings.Problems, index map[string][]*idUse, u *idUse) {
	var seen []*idUse
	for _, name := range u.names() {
		for _, prev := range index[name] {
			if !slices.Contains(seen, prev) && u.same(prev) {
				seen = append(seen, prev)
				msg := "" // counted only, once full: no message to compose
				if !p.Full() {
					msg = conflict(u, prev)
				}
				p.Add(u.at, nil, msg)
			}
		}
	}
	if len(seen) > 0 {
		return
	}
	for _, name := range u.names() {
		index[name] = append(index[name], u)
	}
}

// conflict explains why u, found after prev, refers to a secret it must not
// share. Only token ids are quoted: a client_secret_id might be a secret
// pasted into the wrong field, and a literal is one.
func conflict(u, prev *idUse) string {
	self := prev.owner == u.owner
	other := prev.owner.Label() + "'s " + prev.at.Field
	if self {
		other = "this client's " + prev.at.Field
	}
	same := u.at.Field + " refers to the same secret as " + other
	switch {
	case u.literal != "" && self:
		return u.at.Field + " is the same client secret as " + other + " (value not shown); the second API client must have its own client secret, or each rotation would revoke the token just stored"
	case u.literal != "":
		return u.at.Field + " is the same client secret as " + other + " (value not shown); each would revoke the other's token, so give every client its own client secret"
	case u.token && prev.token:
		return fmt.Sprintf("%s %s refers to the same secret as %s (%s); each client would overwrite the other's token, so give every client its own token secret",
			u.at.Field, settings.Quote(u.id.Raw), other, settings.Quote(prev.id.Raw))
	case !u.token && !prev.token && self:
		return u.at.Field + " refers to the same Secrets Manager secret as " + other + "; the two API clients must have different client secrets, or each rotation would revoke the token just stored"
	case !u.token && !prev.token:
		return u.at.Field + " refers to the same Secrets Manager secret as " + other + "; the two clients would share one client secret and each would revoke the other's token"
	case self:
		return same + "; writing the token there would overwrite the client secret it is obtained with"
	case u.token:
		return same + "; writing this client's token there would overwrite that client secret"
	}
	return same + "; writing that client's token there would overwrite this client's client secret"
}
