package settings

import (
	"fmt"
	"strings"
)

// SourceEnvironment is the Source of a problem in the environment.
const SourceEnvironment = "environment"

// Input is what one Read reads.
type Input struct {
	Lookup LookupFunc
	// File is the YAML file; nil: the environment alone gives one entry, named
	// Single.
	File   *File
	Single string
	// Optional is a Group that need not be given this time, though it is
	// Required (a gateway that only reads tokens needs no client secret).
	Optional string
}

// File is the YAML side of a read: the data, or why it could not be read.
type File struct {
	Source  string // the path, for messages (see Printable)
	Data    []byte
	ReadErr error
}

// Value is one setting as given: valid (OK) or already reported, and where it
// came from, for messages about it and about its conflicts.
type Value struct {
	Setting *Setting
	V       any
	OK      bool
	At      Error
}

// Get returns the value of the setting read from the variable env, if vals has it.
func Get(vals []Value, env string) (Value, bool) {
	for _, v := range vals {
		if v.Setting.Env == env {
			return v, true
		}
	}
	return Value{}, false
}

// Entry is one entry under validation (a client), with what the checks
// between entries need to say where each of its settings came from.
type Entry struct {
	At       Error  // the entry, or the environment
	Name     string // "" when NameOK is false
	NameOK   bool
	NameLine int
	Values   []Value // the per-entry settings it uses; a slice, since a file may list thousands
}

// Label names the entry in a message about another one.
func (e *Entry) Label() string {
	switch {
	case e.NameOK:
		return fmt.Sprintf("client %q", e.Name)
	case e.At.Entry > 0 && e.At.Line > 0:
		return fmt.Sprintf("client #%d (line %d)", e.At.Entry, e.At.Line)
	case e.At.Entry > 0:
		return fmt.Sprintf("client #%d", e.At.Entry)
	}
	return "the client"
}

// Read validates what in gives and returns the environment's values and the
// entries, each with its own values and those it inherits. It collects every
// problem in p, so that an error in the environment does not hide one in the
// file. Every variable that is set is validated in both modes: an invalid
// default is an error even if every entry overrides it, since the operator
// meant something by it.
func (t *Table) Read(p *Problems, in Input) (env []Value, entries []*Entry) {
	p.t = t
	env = t.read(p, fromEnv(in.Lookup))
	if in.File == nil {
		e := &Entry{At: Error{Source: SourceEnvironment}, Name: in.Single, NameOK: true}
		t.assemble(p, e, nil, env, false, in.Optional)
		return env, []*Entry{e}
	}
	return env, t.fileEntries(in.File, env, p, in.Optional)
}

// given is one setting's text as an operator wrote it: a variable, or a key
// of a YAML entry (where a null value is not given, so that the
// environment's default applies). shape is false when a YAML value was not a
// single value, which is already reported.
type given struct {
	text  string
	line  int
	shape bool
}

// read validates what one source gives, the environment or one entry: every
// value given is parsed, so that all its problems show at once, and of a
// group given more than once none is used. The environment and the YAML path
// differ only in source, which returns a setting's text and location.
func (t *Table) read(p *Problems, source func(s *Setting) (given, Error, bool)) []Value {
	var out []Value
	for _, g := range t.groups {
		n := len(out)
		for _, s := range g {
			raw, at, ok := source(s)
			if !ok || s.Parse == nil {
				continue
			}
			out = append(out, parse(p, s, raw, at))
		}
		if len(out)-n > 1 {
			p.Bad(out[n].At, nil, "and %s are both set; set exactly one", out[n+1].At.Field)
			for i := n; i < len(out); i++ {
				out[i].OK = false
			}
		}
	}
	return out
}

// parse validates one setting's text, marking what may be a secret for the
// final scrub.
func parse(p *Problems, s *Setting, raw given, at Error) Value {
	if s.Secret {
		p.secret(raw.text)
		for _, f := range strings.Fields(raw.text) {
			p.secret(f) // a part of a secret is secret too: a signing secret while it changes is two
		}
	}
	v := Value{Setting: s, At: at}
	if !raw.shape {
		return v
	}
	var err error
	v.V, err = s.Parse(raw.text)
	v.OK = err == nil
	if r, ok := v.V.(interface{ Reveal() string }); ok && s.Secret {
		p.secret(r.Reveal()) // as parsed: a client secret given as JSON is a part of the text
	}
	if _, hide := err.(maybeSecret); hide {
		p.secret(raw.text)
	}
	if err != nil {
		p.Bad(at, err, "%s", err)
	}
	return v
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
		return given{text: v, shape: true}, EnvAt(s.Env), v != "" || set && s.KeepEmpty
	}
}

// assemble takes each per-entry group from the entry's own values when it
// gives any of the group, else from the environment's (in a file, named
// "key (from VARIABLE)", since the fix may be in either), and reports a
// required group given by neither. own is nil in environment-only mode.
func (t *Table) assemble(p *Problems, e *Entry, own, env []Value, inFile bool, optional string) {
	for _, g := range t.groups {
		if g[0].Scope != PerEntry {
			continue
		}
		inherit, n := !gives(own, g), len(e.Values)
		from := own
		if inherit {
			from = env
		}
		for _, v := range from {
			if !v.Setting.in(g) {
				continue
			}
			if inFile && inherit {
				v.At = e.At.At(v.Setting.Key+" (from "+v.Setting.Env+")", 0)
			}
			e.Values = append(e.Values, v)
		}
		if len(e.Values) == n && !(optional != "" && g[0].Group == optional) {
			missing(p, e, g, inFile)
		}
	}
}

func gives(vals []Value, g []*Setting) bool {
	for _, v := range vals {
		if v.Setting.in(g) {
			return true
		}
	}
	return false
}

// missing reports a required group that neither the entry nor the
// environment gives, naming what the operator can set.
func missing(p *Problems, e *Entry, g []*Setting, inFile bool) {
	s := g[0]
	switch {
	case s.Required == "":
	case !inFile && len(g) == 1:
		p.Bad(EnvAt(s.Env), s.Missing, "is not set; %s", s.Required)
	case !inFile:
		p.Add(EnvAt(s.Env), s.Missing, fmt.Sprintf("neither %s nor %s is set; %s", s.Env, g[1].Env, s.Required))
	case len(g) == 1:
		p.Bad(e.At.At(s.Key, 0), s.Missing, "is missing; set it in the entry, or set %s as a default for all entries", s.Env)
	default:
		p.Add(e.At.At(s.Key, 0), s.Missing, fmt.Sprintf("needs a %s or a %s; set one in the entry, or set %s or %s as a default for all entries",
			s.Key, g[1].Key, s.Env, g[1].Env))
	}
}
