package config

import (
	"sort"
	"strings"
)

// Warning is a problem that does not stop the rotator but that an operator
// should hear about, such as an environment variable it does not know.
type Warning struct {
	Name       string // the variable
	Suggestion string // the known variable it is probably a typo of; "" when none is close
}

// String renders the warning as one line, the name escaped if it holds
// characters that do not print.
func (w Warning) String() string {
	msg := "unknown environment variable " + printable(w.Name) + " is ignored"
	if w.Suggestion != "" {
		msg += "; did you mean " + w.Suggestion + "?"
	}
	return msg
}

// unknownPrefixes are the prefixes of the variables the rotator owns. A
// variable with one of them that the rotator does not read is almost
// certainly a typo (ROTATOR_DAILY_LIMT), which would otherwise pass in
// silence while the setting it was meant to change keeps its default.
var unknownPrefixes = []string{"ROTATOR_", "CLEAR_"}

// foreignEnv are variables with the rotator's prefixes that belong to other
// programs of this project, so that a shared environment (the demo, the
// Makefile) does not warn about them.
var foreignEnv = map[string]bool{
	"ROTATOR_BIN":            true, // the Makefile's path of the binary under test
	"CLEAR_EMULATOR_SECRETS": true, // cmd/clear-emulator
}

// Unknown returns a warning for every ROTATOR_* or CLEAR_* variable in
// environ (KEY=VALUE entries, as os.Environ returns them) that the rotator
// does not read, sorted by name, each with the closest known name when one
// is close enough to be a likely typo. Values are never looked at, so a
// warning cannot carry a secret.
func Unknown(environ []string) []Warning {
	known := knownEnv()
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	seen := map[string]bool{}
	var out []Warning
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] || isKnown[name] || foreignEnv[name] || !hasPrefix(name) {
			continue
		}
		seen[name] = true
		out = append(out, Warning{Name: name, Suggestion: Suggest(name, known)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func hasPrefix(name string) bool {
	for _, p := range unknownPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Suggest returns the candidate closest to word by edit distance (ignoring
// case), or "" when none is close enough to be a likely typo: at most a
// third of the word's length but at least 2, and never more than 3. Ties go to the
// earlier candidate. The CLI uses it for mistyped commands and flags too.
func Suggest(word string, candidates []string) string {
	limit := min(3, max(2, len([]rune(word))/3))
	best, bestD := "", limit+1
	w := strings.ToLower(word)
	for _, c := range candidates {
		if d := editDistance(w, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in
// runes, with one row of memory.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	row := make([]int, len(rb)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		prev := row[0] // the diagonal
		row[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur := min(row[j]+1, row[j-1]+1, prev+cost)
			prev, row[j] = row[j], cur
		}
	}
	return row[len(rb)]
}
