package config

import (
	"errors"
	"fmt"
	"strings"
)

// given is one setting's text as an operator wrote it: a variable, or a key
// of a YAML entry (where a null value is not given, so that the
// environment's default applies). shape is false when a YAML value was not a
// single value, which is already reported.
type given struct {
	text  string
	line  int
	shape bool
}

// value is one setting as given: valid (ok) or already reported, and where it
// came from, for messages about it and about its conflicts.
type value struct {
	s  *Setting
	v  any
	ok bool
	at Error
}

// read validates what one source gives, the environment or one entry: every
// value given is parsed, so that all its problems show at once, and of a
// group given more than once none is used. The environment and the YAML path
// differ only in source, which returns a setting's text and location.
func read(p *problems, source func(s *Setting) (given, Error, bool)) []value {
	var out []value
	for _, g := range settingGroups {
		n := len(out)
		for _, s := range g {
			raw, at, ok := source(s)
			if !ok || s.parse == nil {
				continue
			}
			if s.Secret {
				p.secret(raw.text)
				for _, f := range strings.Fields(raw.text) {
					p.secret(f) // a part of a secret is secret too: a signing secret while it changes is two
				}
			}
			v := value{s: s, at: at}
			if raw.shape {
				var err error
				v.v, err = s.parse(raw.text)
				v.ok = err == nil
				if r, ok := v.v.(interface{ Reveal() string }); ok && s.Secret {
					p.secret(r.Reveal()) // as parsed: a client secret given as JSON is a part of the text
				}
				if _, hide := err.(errMaybeSecret); hide {
					p.secret(raw.text)
				}
				if err != nil {
					p.bad(at, err, "%s", err)
				}
			}
			out = append(out, v)
		}
		if len(out)-n > 1 {
			p.bad(out[n].at, nil, "and %s are both set; set exactly one", out[n+1].at.Field)
			for i := n; i < len(out); i++ {
				out[i].ok = false
			}
		}
	}
	return out
}

// fromEnv is the environment as a source for read.
func fromEnv(lookup LookupFunc) func(s *Setting) (given, Error, bool) {
	return func(s *Setting) (given, Error, bool) {
		var raw string
		set := false
		if lookup != nil {
			raw, set = lookup(s.Env)
		}
		v := strings.TrimSpace(raw)
		return given{text: v, shape: true}, envAt(s.Env), v != "" || set && s.KeepEmpty
	}
}

func get(vals []value, s string) (value, bool) {
	for _, v := range vals {
		if v.s.Env == s {
			return v, true
		}
	}
	return value{}, false
}

// candidate is a client under validation, with what the cross-client checks
// need to say where each of its settings came from.
type candidate struct {
	client   Client
	at       Error // the entry, or the environment
	nameOK   bool
	nameLine int
	vals     []value // the per-client settings it uses; a slice, since a file may list thousands
}

// assemble takes each per-client group from the entry's own values when it
// gives any of the group, else from the environment's (in a file, named
// "key (from VARIABLE)", since the fix may be in either), and reports a
// required group given by neither. own is nil in environment-only mode.
func (c *candidate) assemble(p *problems, own, env []value, inFile, noClientSecret bool) {
	for _, g := range settingGroups {
		if g[0].Scope != PerClient {
			continue
		}
		inherit, n := !gives(own, g), len(c.vals)
		from := own
		if inherit {
			from = env
		}
		for _, v := range from {
			if !v.s.in(g) {
				continue
			}
			if inFile && inherit {
				v.at = c.at.at(v.s.Key+" (from "+v.s.Env+")", 0)
			}
			c.vals = append(c.vals, v)
		}
		if len(c.vals) == n && !(noClientSecret && g[0].Group == "client_secret") {
			c.missing(p, g, inFile)
		}
	}
	apply(nil, &c.client, c.vals)
}

func (s *Setting) in(g []*Setting) bool {
	return s == g[0] || s.Group != "" && s.Group == g[0].Group
}

func gives(vals []value, g []*Setting) bool {
	for _, v := range vals {
		if v.s.in(g) {
			return true
		}
	}
	return false
}

// missing reports a required group that neither the entry nor the
// environment gives, naming what the operator can set.
func (c *candidate) missing(p *problems, g []*Setting, inFile bool) {
	s := g[0]
	var cause error
	if s.Group == "client_secret" {
		cause = ErrNoClientSecret
	}
	switch {
	case s.Required == "":
	case !inFile && len(g) == 1:
		p.bad(envAt(s.Env), cause, "is not set; %s", s.Required)
	case !inFile:
		p.add(envAt(s.Env), cause, fmt.Sprintf("neither %s nor %s is set; %s", s.Env, g[1].Env, s.Required))
	case len(g) == 1:
		p.bad(c.at.at(s.Key, 0), cause, "is missing; set it in the entry, or set %s as a default for all entries", s.Env)
	default:
		p.add(c.at.at(s.Key, 0), cause, fmt.Sprintf("needs a %s or a %s; set one in the entry, or set %s or %s as a default for all entries",
			s.Key, g[1].Key, s.Env, g[1].Env))
	}
}

// ErrNoClientSecret is the cause of the problem Load reports for a client
// without a client secret (errors.Is finds it in Load's joined error), which
// LoadForGateway accepts: a caller can tell an operator who set up a
// read-only gateway where to turn.
var ErrNoClientSecret = errors.New("no client secret")

// label names the candidate in a message about another client.
func (c *candidate) label() string {
	switch {
	case c.nameOK:
		return fmt.Sprintf("client %q", c.client.Name)
	case c.at.Entry > 0 && c.at.Line > 0:
		return fmt.Sprintf("client #%d (line %d)", c.at.Entry, c.at.Line)
	case c.at.Entry > 0:
		return fmt.Sprintf("client #%d", c.at.Entry)
	}
	return "the client"
}
