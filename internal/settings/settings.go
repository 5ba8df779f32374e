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
package settings

import (
	"fmt"
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
	// Set stores a value Parse returned, or Default, in dst when dst is what
	// the setting configures (see Field); else it does nothing.
	Set func(dst, v any)
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
func Field[X, T any](f func(*X) *T) func(dst, v any) {
	return func(dst, v any) {
		if x, ok := dst.(*X); ok {
			*f(x) = v.(T)
		}
	}
}

// Table is the rows and what messages about the file name. Build it with New.
type Table struct {
	Settings []Setting
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

// New returns t with what every read needs computed.
func New(t Table) *Table {
	at := map[string]int{}
	t.keys = []string{"name"}
	for i := range t.Settings {
		s := &t.Settings[i]
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

// Keys returns the keys an entry accepts, name first.
func (t *Table) Keys() []string { return t.keys }

// Apply sets every setting of dst (see Setting.Set) to its default, then to
// the valid values of vals.
func (t *Table) Apply(dst any, vals []Value) {
	for i := range t.Settings {
		if s := &t.Settings[i]; s.Default != nil && s.Set != nil {
			s.Set(dst, s.Default)
		}
	}
	for _, v := range vals {
		if v.OK && v.Setting.Set != nil {
			v.Setting.Set(dst, v.V)
		}
	}
}
