package settings

import (
	"slices"
	"sort"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

// Warning is a problem that does not stop the program but that an operator
// should hear about: an environment variable it does not know.
type Warning struct {
	Name       string // the variable
	Suggestion string // the known variable it is probably a typo of; "" when none is close
}

// String renders the warning as one line, the name escaped if it does not print.
func (w Warning) String() string {
	msg := "unknown environment variable " + Printable(w.Name) + " is ignored"
	if w.Suggestion != "" {
		msg += "; did you mean " + w.Suggestion + "?"
	}
	return msg
}

// Unknown returns a warning for every variable with one of t's Prefixes in
// environ (KEY=VALUE entries, as os.Environ returns them) that is neither a
// row nor Foreign, sorted by name, each with the closest known name when one
// is close enough to be a likely typo (ROTATOR_DAILY_LIMT), which would
// otherwise pass in silence while its setting keeps the default. Values are
// never looked at, so a warning cannot carry a secret.
func (t *Table) Unknown(environ []string) []Warning {
	var known []string // sorted, so that ties in suggest.Closest do not depend on the table's order
	seen := map[string]bool{}
	for _, s := range t.Settings {
		known, seen[s.Env] = append(known, s.Env), true
	}
	sort.Strings(known)
	var out []Warning
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] || t.Foreign[name] || !slices.ContainsFunc(t.Prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		seen[name] = true
		out = append(out, Warning{Name: name, Suggestion: suggest.Closest(name, known)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
