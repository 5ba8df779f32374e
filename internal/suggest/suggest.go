// Package suggest finds the name an operator probably meant: the "did you mean" of mistyped
// commands, flags, environment variables and YAML keys.
package suggest

import "strings"

// Closest returns the candidate closest to word by edit distance (ignoring
// case), or "" when none is close enough to be a likely typo: at most a third
// of the word's length but at least 2, and never more than 3. Ties go to the
// earlier candidate.
func Closest(word string, candidates []string) string {
	best, bestD := "", min(3, max(2, len([]rune(word))/3))+1
	for _, c := range candidates {
		if d := editDistance([]rune(strings.ToLower(word)), []rune(strings.ToLower(c))); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, with one row of
// memory.
func editDistance(a, b []rune) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		prev := row[0] // the diagonal
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			prev, row[j] = row[j], min(row[j]+1, row[j-1]+1, prev+cost)
		}
	}
	return row[len(b)]
}
