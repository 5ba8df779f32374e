package ops

import "testing"

// Who gives way to a newcomer: the source holding the most connections (the newcomer counted),
// then a connection that is not fresh, then the least recently used.
func TestEvict(t *testing.T) {
	for name, tc := range map[string]struct {
		open   []connUse
		source string
		want   int
	}{
		"one":                      {open: []connUse{{source: "a", used: 1}}, source: "b", want: 0},
		"least recently used":      {open: []connUse{{source: "a", used: 3}, {source: "a", used: 1}, {source: "a", used: 2}}, source: "a", want: 1},
		"the crowd gives way":      {open: []connUse{{source: "probe", used: 1}, {source: "crowd", used: 5}, {source: "crowd", used: 4}, {source: "crowd", used: 6}}, source: "probe", want: 2},
		"the newcomer counts":      {open: []connUse{{source: "a", used: 1}, {source: "b", used: 2}}, source: "b", want: 1},
		"a tie: the older":         {open: []connUse{{source: "a", used: 2}, {source: "b", used: 1}}, source: "c", want: 1},
		"fresh is spared":          {open: []connUse{{source: "a", used: 1, fresh: true}, {source: "a", used: 2}}, source: "a", want: 1},
		"all fresh: the oldest":    {open: []connUse{{source: "a", used: 2, fresh: true}, {source: "a", used: 1, fresh: true}}, source: "a", want: 1},
		"the crowd even if fresh":  {open: []connUse{{source: "probe", used: 1}, {source: "crowd", used: 2, fresh: true}, {source: "crowd", used: 3, fresh: true}}, source: "crowd", want: 1},
		"an unknown source counts": {open: []connUse{{source: "", used: 1}, {source: "", used: 2}, {source: "x", used: 0}}, source: "", want: 0},
	} {
		if got := evict(tc.open, tc.source); got != tc.want {
			t.Errorf("%s: evict = %d, want %d", name, got, tc.want)
		}
	}
}
