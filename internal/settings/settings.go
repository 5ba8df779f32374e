// Package settings reads a table of settings from the environment and from a
// YAML file listing entries (the rotator's clients), and reports every problem
// at once. It knows how values are given, found, inherited and reported; what
// the settings are, and the rules between them, are the table's owner's
// (internal/config).
//
// An empty variable means unset (but see Setting.KeepEmpty), which is what
// shells and container runtimes produce when a template variable is missing.
// Values are trimmed of surrounding white space: a trailing newline copied
// from a file would otherwise surface as a baffling authentication failure
// much later. No message echoes the value of a Secret setting, in any
// spelling the table's parsers give it.
//
// Its messages call the entries clients, and the file's list clients:, as
// the rotator's operators know them: the package is the rotator's reader, not
// a general library.
package settings

import (
	"fmt"
	"slices"
	"strings"
)

// LookupFunc reads one environment variable the way os.LookupEnv does. A nil
// LookupFunc is an empty environment, which keeps tests off the real one.
type LookupFunc func(name string) (value string, ok bool)

// Scope says where a setting applies.
type Scope int

const (
	PerEntry   Scope = iota // a key in an entry; the variable is the only entry's value, or the entries' default
	Global                  // the environment only, for the whole process
	DaemonOnly              // global, and only a long-running command reads it (help texts say which)
)

// Setting is one row of a table. The environment path, the YAML path, the
// unknown-variable warning, the help texts and the docs' table all iterate
// the rows, so a setting cannot be known to one of them and missing from
// another.
type Setting struct {
	Env        string // environment variable
	Key        string // YAML key in an entry; "" for global settings
	Scope      Scope
	Kind       string // what the value is, for help texts: "URL", "duration", ...
	Default    any    // the typed value when the setting is not given; nil: the field's zero value
	DefaultDoc string // how help shows the default, when Default alone does not say it
	Limits     string // allowed values, for help texts; "" when any value of the kind goes
	Help       string // one line: what the setting does
	Notes      string // more, for the docs' table
	Required   string // a per-entry setting (or the first of a Group) is required: what it must be
	Missing    error  // the cause, for errors.Is, of the problem that a Required setting is missing
	// Group names settings of which at most one may be given (a client secret,
	// or the id of the secret holding it); an entry that gives one of them
	// inherits none of the group from the environment.
	Group     string
	Secret    bool // a literal secret: never echoed, scrubbed from every message
	KeepEmpty bool // "set but empty" is a value, not "unset" (ROTATOR_HTTP_ADDR= turns the listener off)

	// Parse validates the trimmed text and returns the typed value (see
	// Parser); without Parse the setting is read elsewhere (the file's path).
	Parse func(s string) (any, error)
	// Set stores a value Parse returned, or Default, in dst, and reports
	// whether dst is what the setting configures (see Field); it stores nothing
	// in any other dst, or when v is nil (a question: New asks it of every row).
	Set func(dst, v any) bool
}

// DefaultText is the default as help texts show it; "" when there is none.
func (s *Setting) DefaultText() string {
	if s.DefaultDoc != "" || s.Default == nil {
		return s.DefaultDoc
	}
	return fmt.Sprint(s.Default)
}

// in reports whether s is g's setting, or one of g's group.
func (s *Setting) in(g []*Setting) bool {
	return s == g[0] || s.Group != "" && s.Group == g[0].Group
}

// Parser adapts a typed validator to Setting.Parse.
func Parser[T any](f func(string) (T, error)) func(string) (any, error) {
	return func(s string) (any, error) { return f(s) }
}

// Field adapts a typed field of an X to Setting.Set.
func Field[X, T any](f func(*X) *T) func(dst, v any) bool {
	return Convert(f, func(v T) T { return v })
}

// Convert is Field for a field of another type than the parsed value's: conv
// makes the one from the other (a secret's id, kept as the text given).
func Convert[X, T, F any](f func(*X) *F, conv func(T) F) func(dst, v any) bool {
	return func(dst, v any) bool {
		x, ok := dst.(*X)
		if ok && v != nil {
			*f(x) = conv(v.(T))
		}
		return ok
	}
}

// Table is the rows and what messages about the file name. Build it with New,
// and change none of it afterwards.
type Table struct {
	Settings []Setting
	// Entry and Global are a value of each type the rows set (a nil pointer
	// will do: a *Client, a *Config), against which New checks every row.
	Entry, Global any
	// FileVar is the variable naming the YAML file; ExampleVar, a per-entry
	// variable that messages give as an example of a default for every entry.
	FileVar, ExampleVar string
	// Prefixes are those of the variables Unknown looks at; Foreign, the
	// variables with those prefixes that belong to other programs.
	Prefixes []string
	Foreign  map[string]bool

	// groups are the settings, each alone or with the others of its Group, in
	// table order; it and keys are computed once, since a file may list
	// thousands of entries.
	groups  [][]*Setting
	keys    []string // the keys an entry accepts, name first
	keyList string   // for messages
}

// New returns t with what every read needs computed. It panics on a row
// that could not work (a mistake in the table, which any test that loads it
// finds): one parsed but not set, or set into the wrong target for its
// scope; a default without a parser; a YAML key on a global setting; a group
// member that is required, says why it is missing or differs in scope from
// the group's first row.
func New(t Table) *Table {
	at := map[string]int{}
	t.keys = []string{"name"}
	for i := range t.Settings {
		s := &t.Settings[i]
		if err := t.check(s, at); err != nil {
			panic(fmt.Sprintf("settings: row %s: %s", s.Env, err))
		}
		if s.Key != "" {
			t.keys = append(t.keys, s.Key)
		}
		if j, ok := at[s.Group]; ok && s.Group != "" {
			t.groups[j] = append(t.groups[j], s)
			continue
		}
		at[s.Group] = len(t.groups)
		t.groups = append(t.groups, []*Setting{s})
	}
	t.keyList = strings.Join(t.keys, ", ")
	return &t
}

// check finds what New refuses in s; at indexes the groups seen so far.
func (t *Table) check(s *Setting, at map[string]int) error {
	entry := s.Scope == PerEntry
	switch {
	case s.Parse == nil && (s.Set != nil || s.Default != nil):
		return fmt.Errorf("a setter or a default without a parser")
	case s.Parse != nil && (s.Set == nil || s.Set(t.Entry, nil) != entry || s.Set(t.Global, nil) == entry):
		return fmt.Errorf("parsed, but not set into the target of its scope alone")
	case (s.Key != "") != entry:
		return fmt.Errorf("a YAML key exactly for per-entry settings")
	}
	if j, ok := at[s.Group]; ok && s.Group != "" {
		first := t.groups[j][0]
		if s.Scope != first.Scope || s.Required != "" || s.Missing != nil {
			return fmt.Errorf("of group %s: only its first row says Required or Missing, and all share one scope", s.Group)
		}
	}
	return nil
}

// Keys returns the keys an entry accepts, name first.
func (t *Table) Keys() []string { return slices.Clone(t.keys) }

// Apply sets every setting of dst (see Setting.Set) to its default, then to
// the valid values of vals.
func (t *Table) Apply(dst any, vals []Value) {
	for i := range t.Settings {
		if s := &t.Settings[i]; s.Default != nil && s.Set != nil {
			_ = s.Set(dst, s.Default)
		}
	}
	for _, v := range vals {
		if v.OK && v.Setting.Set != nil {
			_ = v.Setting.Set(dst, v.V)
		}
	}
}
