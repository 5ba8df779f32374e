package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one problem with the configuration. Load and Parse join all the
// problems they find with errors.Join; errors.As finds the first, and the
// joined error's Unwrap() []error lists them all.
type Error struct {
	Source string // "environment" or the YAML file's path
	Line   int    // 1-based line in the YAML file; 0 for the environment or when unknown
	Client string // the client's name; "" when not about one client or the entry has no valid name
	Entry  int    // 1-based position in the clients list; 0 outside it
	Field  string // the YAML key or environment variable concerned; "" when about the file as a whole
	Msg    string // what is wrong and what is allowed; never contains a client secret
	Err    error  // the underlying cause, if any
}

// Error formats the problem like a compiler diagnostic, source:line first, so
// that editors and operators can jump straight to it.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	switch {
	case e.Client != "":
		fmt.Fprintf(&b, "client %q: ", e.Client)
	case e.Entry > 0:
		fmt.Fprintf(&b, "client #%d: ", e.Entry)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, such as an *fs.PathError when the file
// cannot be read.
func (e *Error) Unwrap() error { return e.Err }

// MaxProblems bounds the problems a Load or Parse lists; the rest are
// counted in one last problem. An operator fixes a few dozen at a time, and a
// hostile file could otherwise produce millions.
const MaxProblems = 50

// problems collects every problem of one build, together with the literal
// client secrets seen, so that the final scrub can remove them.
type problems struct {
	list    []*Error
	more    int // problems past MaxProblems, counted only
	secrets []string
	given   map[string]bool // keys of the problems given once per build
}

// once records a problem only the first time key is given: a refused
// construct is explained once, however often a file uses it.
func (p *problems) once(key string, l location, msg string) {
	if p.given[key] {
		return
	}
	if p.given == nil {
		p.given = map[string]bool{}
	}
	p.given[key] = true
	// Past the cap too: a refused construct can be why the rest is wrong.
	p.list = append(p.list, &Error{Source: l.source, Line: l.line, Client: l.client, Entry: l.entry, Field: l.field, Msg: msg})
}

// bad records a problem about l.field; the message starts with the field's
// name so that it reads "daily_limit 300 is out of range 1..250".
func (p *problems) bad(l location, cause error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.field != "" {
		msg = l.field + " " + msg
	}
	p.add(l, cause, msg)
}

// add records a problem whose message is complete as it is.
func (p *problems) add(l location, cause error, msg string) {
	if len(p.list) >= MaxProblems {
		p.more++
		return
	}
	p.list = append(p.list, &Error{
		Source: l.source, Line: l.line, Client: l.client, Entry: l.entry,
		Field: l.field, Msg: msg, Err: cause,
	})
}

// secret remembers a literal client secret for the final scrub.
func (p *problems) secret(s string) {
	if s != "" {
		p.secrets = append(p.secrets, s)
	}
}

// minScrubLen is the shortest secret the scrub removes. Replacing one or two
// characters everywhere would turn every message into noise, and a secret
// that short protects nothing anyway.
const minScrubLen = 4

// err returns the joined problems, or nil. Messages are built so that they do
// not contain client secrets; the scrub is a safety net for values that are
// echoed on purpose (a base URL, a name) but into which an operator pasted a
// secret by mistake. Longer secrets are replaced first so that a secret that
// contains another is removed whole.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	secrets := append([]string(nil), p.secrets...)
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	scrub := func(s string) string {
		for _, sec := range secrets {
			if len(sec) >= minScrubLen {
				s = strings.ReplaceAll(s, sec, redacted)
			}
		}
		return s
	}
	// The environment comes first, in the order of the Settings table, then
	// the file in line order, so that an
	// operator can work through the file from top to bottom; problems on
	// the same line keep the order in which they were found.
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i], p.list[j]
		if ea, eb := a.Source == SourceEnvironment, b.Source == SourceEnvironment; ea != eb {
			return ea
		} else if ea {
			return settingIndex(a.Field) < settingIndex(b.Field)
		}
		return a.Line < b.Line
	})
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		e.Msg = scrub(e.Msg)
		e.Client = scrub(e.Client)
		e.Source = scrub(e.Source)
		e.Field = scrub(e.Field)
		if e.Err != nil {
			// A cause that quotes a secret is flattened to its scrubbed
			// text: losing its type is better than leaking through Unwrap.
			if msg := e.Err.Error(); scrub(msg) != msg {
				e.Err = errors.New(scrub(msg))
			}
		}
		errs[i] = e
	}
	if p.more > 0 {
		errs = append(errs, &Error{Msg: fmt.Sprintf("and %d more problems; fix these first", p.more)})
	}
	return errors.Join(errs...)
}

// settingIndex is the position of the variable in Settings, for sorting;
// problems about no one variable come last.
func settingIndex(env string) int {
	for i, s := range Settings {
		if s.Env == env {
			return i
		}
	}
	return len(Settings)
}

// redacted replaces secrets in messages, matching the clear package's marker.
const redacted = "[REDACTED]"
