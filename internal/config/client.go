package config

import (
	"fmt"
	"strings"
)

// value is one setting as given: valid (ok) or already reported, and where
// it came from, for messages about it and about its conflicts.
type value struct {
	v   any
	ok  bool
	loc location
	key string // the YAML key, in candidate.vals
}

// given is one key of a YAML entry before validation. A null value ("key:"
// or "key: ~") is not given, so that the environment's default applies.
type given struct {
	v     string
	line  int
	shape bool // false when its shape was wrong, which is already reported
}

// candidate is a client under validation, with what the cross-client checks
// need to say where each of its settings came from.
type candidate struct {
	client   Client
	loc      location // the entry, or the environment
	nameOK   bool
	nameLine int
	vals     []value // the valid per-client settings; a slice, since a file may list thousands
}

// get returns the valid value of the per-client setting key.
func (c *candidate) get(key string) (value, bool) {
	for _, v := range c.vals {
		if v.key == key {
			return v, true
		}
	}
	return value{}, false
}

// assemble validates the per-client settings of one client: those its
// entry gives (nil in environment-only mode), else the environment's, which
// were parsed once by parseEnv. Messages name the key in a file and the
// variable in the environment, since that is what the operator has to change.
func (c *candidate) assemble(p *problems, entry map[string]given, env map[string]value) {
	for _, g := range settingGroups {
		if g[0].Scope != PerClient {
			continue
		}
		var own []*Setting
		for _, s := range g {
			if _, ok := entry[s.Key]; ok {
				own = append(own, s)
			}
		}
		switch {
		case len(own) > 1:
			for _, s := range own {
				if s.Secret {
					p.secret(entry[s.Key].v)
				}
			}
			p.bad(c.loc.with(own[0].Key, entry[own[0].Key].line), nil, "and %s are both set; set exactly one", own[1].Key)
		case len(own) == 1:
			s, r := own[0], entry[own[0].Key]
			if !r.shape {
				break
			}
			l := c.loc.with(s.Key, r.line)
			if v, ok := s.parse(p, l, r.v); ok {
				c.vals = append(c.vals, value{v, true, l, s.Key})
			}
		default:
			c.inherit(p, g, entry != nil, env)
		}
	}
	for i := range Settings {
		s := &Settings[i]
		if v, ok := c.get(s.Key); ok && s.Scope == PerClient {
			s.client(&c.client, v.v)
		} else if s.Scope == PerClient && s.Default != nil {
			s.client(&c.client, s.Default)
		}
	}
	if l, ok := c.get("max_age"); ok {
		checkBudget(p, l.loc, c.client.MaxAge, c.client.DailyLimit)
	}
}

// inherit takes a group the entry does not give from the environment, or
// reports it missing when it is required.
func (c *candidate) inherit(p *problems, g []*Setting, inFile bool, env map[string]value) {
	for _, s := range g {
		v, set := env[s.Env]
		switch {
		case !set:
			continue
		case !v.ok: // already reported
		case inFile:
			v.loc = c.loc.with(s.Key+" (from "+s.Env+")", 0)
			fallthrough
		default:
			v.key = s.Key
			c.vals = append(c.vals, v)
		}
		return
	}
	s := g[0]
	switch {
	case s.Required == "":
	case !inFile && len(g) == 1:
		p.bad(location{source: SourceEnvironment, field: s.Env}, nil, "is not set; %s", s.Required)
	case !inFile:
		p.add(location{source: SourceEnvironment, field: s.Env}, nil, fmt.Sprintf("neither %s nor %s is set; %s", s.Env, g[1].Env, s.Required))
	case len(g) == 1:
		p.bad(c.loc.with(s.Key, 0), nil, "is missing; set it in the entry, or set %s as a default for all entries", s.Env)
	default:
		p.add(c.loc.with(s.Key, 0), nil, fmt.Sprintf("needs a %s or a %s; set one in the entry, or set %s or %s as a default for all entries",
			s.Key, g[1].Key, s.Env, g[1].Env))
	}
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

// describe names the candidate together with its line, for duplicate names.
func (c *candidate) describe() string {
	if c.loc.entry > 0 && c.nameLine > 0 {
		return fmt.Sprintf("client #%d (line %d)", c.loc.entry, c.nameLine)
	}
	return c.label()
}

// fieldOnly strips the " (from VARIABLE)" that messages show for inherited
// settings, so that Error.Field is always a plain key or variable name.
func fieldOnly(l location) location {
	l.field, _, _ = strings.Cut(l.field, " (from ")
	return l
}
