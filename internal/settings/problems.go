package settings

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// Error is one problem with the configuration. A read joins all the problems
// it finds with errors.Join; errors.As finds the first, and the joined
// error's Unwrap() []error lists them all.
type Error struct {
	Source string // SourceEnvironment or the YAML file's path
	Line   int    // 1-based line in the YAML file; 0 for the environment or when unknown
	Client string // the entry's name; "" when not about one entry or the entry has no valid name
	Entry  int    // 1-based position in the clients list; 0 outside it
	Field  string // the YAML key or environment variable concerned; "" when about the file as a whole
	Msg    string // what is wrong and what is allowed; never contains a secret
	Err    error  // the underlying cause, if any
}

// Error formats the problem like a compiler diagnostic, source:line first.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" && e.Line > 0 {
		fmt.Fprintf(&b, "%s:%d: ", e.Source, e.Line)
	} else if e.Source != "" {
		b.WriteString(e.Source + ": ")
	}
	if e.Client != "" {
		fmt.Fprintf(&b, "client %q: ", e.Client)
	} else if e.Entry > 0 {
		fmt.Fprintf(&b, "client #%d: ", e.Entry)
	}
	return b.String() + e.Msg
}

// Unwrap returns the underlying cause, such as an *fs.PathError.
func (e *Error) Unwrap() error { return e.Err }

// MaxProblems bounds the problems a read lists; the rest are counted in one
// last problem. An operator fixes a few dozen at a time, and a hostile file
// could otherwise produce millions.
const MaxProblems = 50

// EnvAt is where a problem with a variable is: an Error without a message is
// how the package says where a setting came from.
func EnvAt(name string) Error { return Error{Source: SourceEnvironment, Field: name} }

// At returns e about field, at line when it is known.
func (e Error) At(field string, line int) Error {
	e.Field = field
	if line > 0 {
		e.Line = line
	}
	return e
}

// Problems collects the problems of one read and of the checks its table's
// owner runs on what was read, and the literal secrets seen, for the final
// scrub. The zero value is ready; Read names the table Err orders by.
type Problems struct {
	t       *Table
	list    []*Error
	more    int // problems past MaxProblems, counted only
	secrets []string
	given   map[string]bool // keys of the problems given once per read
}

// Bad records a problem about at.Field, whose name starts the message:
// "daily_limit 300 is out of range 1..250".
func (p *Problems) Bad(at Error, cause error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if at.Field != "" {
		msg = at.Field + " " + msg
	}
	p.Add(at, cause, msg)
}

// Add records a problem whose message is complete as it is (once Full, it
// only counts it). A message names an inherited setting "key (from
// VARIABLE)"; Field keeps the key alone.
func (p *Problems) Add(at Error, cause error, msg string) {
	if p.Full() {
		p.more++
		return
	}
	at.Field, _, _ = strings.Cut(at.Field, " (from ")
	at.Msg, at.Err = msg, cause
	p.list = append(p.list, &at)
}

// Full reports whether further problems are only counted, so that callers
// can skip composing their messages.
func (p *Problems) Full() bool { return len(p.list) >= MaxProblems }

// once records a problem the first time key is given, past the cap too: a
// refused construct is explained once however often a file uses it, and it
// may be why everything else is wrong.
func (p *Problems) once(key string, at Error, msg string) {
	if p.given == nil {
		p.given = map[string]bool{}
	}
	if !p.given[key] {
		p.given[key] = true
		at.Msg = msg
		p.list = append(p.list, &at)
	}
}

func (p *Problems) secret(s string) {
	if s != "" {
		p.secrets = append(p.secrets, s)
	}
}

// Err returns the joined problems, or nil: the environment's first, in the
// order of the rows of the table read, then the file's in line order. Messages are built not to
// contain secrets; the scrub is a safety net for values echoed on purpose (a
// base URL, a name) into which a secret was pasted, in any spelling
// secret.Redact knows.
func (p *Problems) Err() error {
	if len(p.list) == 0 {
		return nil
	}
	var rows []Setting
	if p.t != nil {
		rows = p.t.Settings
	}
	scrub := secret.NewMatcher(p.secrets...).Redact // the one redactor
	order := func(e *Error) int {
		if e.Source != SourceEnvironment {
			return len(rows) + 1 + e.Line
		}
		if i := slices.IndexFunc(rows, func(s Setting) bool { return s.Env == e.Field }); i >= 0 {
			return i
		}
		return len(rows) // about no one variable
	}
	sort.SliceStable(p.list, func(i, j int) bool { return order(p.list[i]) < order(p.list[j]) })
	var errs []error
	for _, e := range p.list {
		e.Msg, e.Client, e.Source, e.Field = scrub(e.Msg), scrub(e.Client), scrub(e.Source), scrub(e.Field)
		// A cause that quotes a secret is flattened to its scrubbed text:
		// losing its type is better than leaking through Unwrap.
		if e.Err != nil && scrub(e.Err.Error()) != e.Err.Error() {
			e.Err = errors.New(scrub(e.Err.Error()))
		}
		errs = append(errs, e)
	}
	if p.more > 0 {
		errs = append(errs, &Error{Msg: fmt.Sprintf("and %d more problems; fix these first", p.more)})
	}
	return errors.Join(errs...)
}
