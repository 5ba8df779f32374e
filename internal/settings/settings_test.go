package settings

import (
	"errors"
	"fmt"
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
}, FileVar: "T_FILE", ExampleVar: "T_URL", Prefixes: []string{"T_"}, Foreign: map[string]bool{"T_OTHER": true}})

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
	return out, g, p.Err(tbl)
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
