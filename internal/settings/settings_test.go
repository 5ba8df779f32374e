package settings

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// The package knows no setting of the rotator's: these tests read a table of their own, so that
// nothing of internal/config's is needed for its reading, inheriting and reporting to work.

type entry struct {
	URL, Secret, SecretID string
	N                     int
}

type global struct{ Level string }

var errNoSecret = errors.New("no secret")

func failOn(bad string) func(string) (string, error) {
	return func(s string) (string, error) {
		if s == bad {
			return "", fmt.Errorf("%s is refused", Quote(s))
		}
		return s, nil
	}
}

var tbl = New(Table{Settings: []Setting{
	{Env: "T_URL", Key: "url", Kind: "URL", Required: "it must be a URL",
		Parse: Parser(failOn("bad")), Set: Field(func(e *entry) *string { return &e.URL })},
	{Env: "T_SECRET", Key: "secret", Kind: "secret", Group: "s", Secret: true, Required: "set T_SECRET_ID", Missing: errNoSecret,
		Parse: Parser(Text), Set: Field(func(e *entry) *string { return &e.Secret })},
	{Env: "T_SECRET_ID", Key: "secret_id", Kind: "id", Group: "s",
		Parse: Parser(Text), Set: Field(func(e *entry) *string { return &e.SecretID })},
	{Env: "T_N", Key: "n", Kind: "number", Default: 3,
		Parse: Parser(Count(10, 3)), Set: Field(func(e *entry) *int { return &e.N })},
	{Env: "T_LEVEL", Scope: Global, Kind: "level", Default: "info",
		Parse: Parser(Text), Set: Field(func(g *global) *string { return &g.Level })},
	{Env: "T_FILE", Scope: Global, Kind: "path"},
}, Entry: (*entry)(nil), Global: (*global)(nil),
	FileVar: "T_FILE", ExampleVar: "T_URL", Prefixes: []string{"T_"}, Foreign: map[string]bool{"T_OTHER": true}})

func env(kv ...string) LookupFunc {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// read reads in and returns the entries as applied, the global settings and the joined problems.
func read(in Input) ([]entry, global, error) {
	var p Problems
	vals, entries := tbl.Read(&p, in)
	var g global
	tbl.Apply(&g, vals)
	var out []entry
	for _, e := range entries {
		var x entry
		tbl.Apply(&x, e.Values)
		out = append(out, x)
	}
	return out, g, p.Err()
}

func TestTheEnvironmentAloneGivesOneEntry(t *testing.T) {
	got, g, err := read(Input{Lookup: env("T_URL", " https://x \n", "T_SECRET_ID", "id", "T_LEVEL", "debug"), Single: "default"})
	if err != nil || len(got) != 1 || got[0] != (entry{URL: "https://x", SecretID: "id", N: 3}) || g.Level != "debug" {
		t.Fatalf("got %+v %+v %v", got, g, err)
	}
}

func TestEntriesInheritWhatTheyOmitAndGroupsWhole(t *testing.T) {
	file := &File{Source: "f.yaml", Data: []byte("clients:\n  - {name: a}\n  - {name: b, url: https://b, secret: s2, n: 7}\n")}
	got, _, err := read(Input{Lookup: env("T_URL", "https://x", "T_SECRET_ID", "id"), File: file})
	want := []entry{{URL: "https://x", SecretID: "id", N: 3}, {URL: "https://b", Secret: "s2", N: 7}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}

func TestEveryProblemAtOnceWithoutTheSecret(t *testing.T) {
	const sec = "hunter2-the-secret"
	file := &File{Source: "f.yaml", Data: []byte("clients:\n  - {name: a, secret: s, secret_id: i}\n  - {name: b, url: " + sec + ", urll: x}\n")}
	_, _, err := read(Input{Lookup: env("T_SECRET", sec, "T_N", "11"), File: file})
	if err == nil {
		t.Fatal("no error")
	}
	var lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		lines = append(lines, e.Error())
	}
	for i, want := range []string{
		"environment: T_N 11 is out of range 1..10",
		"f.yaml:2: client \"a\": secret and secret_id are both set; set exactly one",
		"f.yaml:2: client \"a\": url is missing; set it in the entry, or set T_URL as a default for all entries",
		"f.yaml:3: unknown key \"urll\" in a client entry; allowed keys: name, url, secret, secret_id, n (did you mean url?)",
	} {
		if i >= len(lines) || lines[i] != want {
			t.Errorf("problem %d:\n got %q\nwant %q", i, lines, want)
		}
	}
	if strings.Contains(err.Error(), sec) {
		t.Errorf("the secret is echoed: %v", err)
	}
	// Optional skips a required group; Missing is its cause otherwise.
	if _, _, err := read(Input{Lookup: env("T_URL", "https://x"), Single: "d", Optional: "s"}); err != nil {
		t.Errorf("an optional group is reported: %v", err)
	}
	if _, _, err := read(Input{Lookup: env("T_URL", "https://x"), Single: "d"}); !errors.Is(err, errNoSecret) {
		t.Errorf("a missing group is %v, not its Missing", err)
	}
}

func TestUnknownNamesTyposNotForeignVariables(t *testing.T) {
	got := tbl.Unknown([]string{"T_URLL=1", "T_OTHER=2", "T_URL=3", "X_URL=4"})
	if len(got) != 1 || got[0] != (Warning{Name: "T_URLL", Suggestion: "T_URL"}) {
		t.Errorf("got %v", got)
	}
}

// New refuses a table with a row that could not work, rather than let a read skip it in silence.
func TestNewRefusesARowThatCouldNotWork(t *testing.T) {
	url := Field(func(e *entry) *string { return &e.URL })
	level := Field(func(g *global) *string { return &g.Level })
	for name, row := range map[string]Setting{
		"no setter":               {Env: "T_A", Key: "a", Parse: Parser(Text)},
		"a global's setter":       {Env: "T_A", Key: "a", Parse: Parser(Text), Set: level},
		"an entry's setter":       {Env: "T_A", Scope: Global, Parse: Parser(Text), Set: url},
		"a default without parse": {Env: "T_A", Scope: Global, Default: "x"},
		"a key on a global":       {Env: "T_A", Key: "a", Scope: Global, Parse: Parser(Text), Set: level},
		"a required second":       {Env: "T_A", Key: "a", Group: "g", Required: "x", Parse: Parser(Text), Set: url},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New accepted it", name)
				}
			}()
			first := Setting{Env: "T_G", Key: "g", Group: "g", Parse: Parser(Text), Set: url}
			New(Table{Settings: []Setting{first, row}, Entry: (*entry)(nil), Global: (*global)(nil)})
		}()
	}
}

// problems returns the joined problems of err, each formatted.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

func count(list []string, part string) int {
	n := 0
	for _, s := range list {
		if strings.Contains(s, part) {
			n++
		}
	}
	return n
}

func fromFile(yaml string) error {
	_, _, err := read(Input{Lookup: env("T_URL", "https://x", "T_SECRET_ID", "id"), File: &File{Source: "f.yaml", Data: []byte(yaml)}})
	return err
}

// The walk of the file refuses what would make it cost more than the file's size, once each, and
// lists at most MaxProblems problems and a count of the rest.
func TestTheFileIsBounded(t *testing.T) {
	got := problems(t, fromFile("clients:\n  - &a {name: a}\n  - {<<: *a, name: b}\n  - {<<: [*a], name: c}\n  - *a\n  - *a\n"))
	if count(got, "merge keys (<<) are not supported") != 1 || count(got, "an alias (*a) stands for a mapping") != 1 {
		t.Errorf("want one message each about merge keys and aliases of collections:\n%s", strings.Join(got, "\n"))
	}
	if err := fromFile("clients:\n  - {name: a, url: &u \"https://y\"}\n  - {name: b, url: *u}\n"); err != nil {
		t.Errorf("an alias of a single value: %v", err)
	}
	if got := problems(t, fromFile("clients: [{name: a}]\n---\nclients: [{name: b}]\n")); count(got, "more than one YAML document") != 1 {
		t.Errorf("a second document: %q", got)
	}
	var b strings.Builder
	b.WriteString("clients:\n  - {name: a")
	for i := range MaxProblems + 7 {
		fmt.Fprintf(&b, ", k%d: 1", i)
	}
	b.WriteString("}\n")
	if got := problems(t, fromFile(b.String())); len(got) != MaxProblems+1 || got[MaxProblems] != "and 7 more problems; fix these first" {
		t.Errorf("%d problems, the last %q; want %d and the count of the rest", len(got), got[len(got)-1], MaxProblems)
	}
	if got := problems(t, fromFile("clients:\n"+strings.Repeat("#", MaxFileSize))); count(got, "the file is larger than") != 1 {
		t.Errorf("a file over MaxFileSize: %q", got)
	}
	// Thousands of merges of merges, and of aliases of a mapping of thousands of keys: minutes and
	// gigabytes before they were refused.
	var bomb strings.Builder
	bomb.WriteString("clients:\n  - &m {")
	for i := range 5000 {
		fmt.Fprintf(&bomb, "k%d: 1, ", i)
	}
	bomb.WriteString("name: x}\n")
	for range 2000 {
		bomb.WriteString("  - *m\n  - {<<: [*m,*m,*m,*m,*m,*m,*m,*m]}\n")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got = problems(t, fromFile(bomb.String()))
	runtime.ReadMemStats(&after)
	if len(got) > MaxProblems+3 {
		t.Errorf("%d problems", len(got))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("reading a %d-byte file allocated %d MB", bomb.Len(), alloc>>20)
	}
}

// TestNoRegexpRewriting guards against a return of parsing yaml.v3's error texts: the walk of the
// file imports no regexp.
func TestNoRegexpRewriting(t *testing.T) {
	data, err := os.ReadFile("file.go")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"regexp"`) {
		t.Error("file.go imports regexp again")
	}
}
