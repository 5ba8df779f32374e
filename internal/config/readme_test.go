package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's settings table from Settings")

// The README's configuration table is generated from Settings, between these markers.
const (
	tableBegin = "<!-- settings table: generated from config.Settings; go test ./internal/config -run TestREADMESettingsTable -update -->\n"
	tableEnd   = "<!-- end of settings table -->\n"
)

// settingsTable renders Settings as the README's Markdown table.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("| variable | YAML key | scope | meaning |\n|---|---|---|---|\n")
	for _, s := range Settings {
		key := "—"
		if s.Key != "" {
			key = "`" + s.Key + "`"
		}
		parts := []string{s.Help}
		switch d := s.DefaultText(); {
		case s.Default != nil && s.DefaultDoc == "":
			parts = append(parts, "default `"+d+"`")
		case d != "":
			parts = append(parts, "default "+d)
		}
		for _, x := range []string{s.Limits, s.Notes} {
			if x != "" {
				parts = append(parts, x)
			}
		}
		b.WriteString("| `" + s.Env + "` | " + key + " | " + [...]string{"client", "global", "daemon"}[s.Scope] + " | " + strings.Join(parts, "; ") + " |\n")
	}
	return b.String()
}

// TestREADMESettingsTable fails when the README's table drifts from Settings; -update rewrites it.
func TestREADMESettingsTable(t *testing.T) {
	const path = "../../docs/configuration.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	begin, end := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("README.md lacks the markers of the settings table:\n%s%s", tableBegin, tableEnd)
	}
	got, want := readme[begin+len(tableBegin):end], settingsTable()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(readme[:begin+len(tableBegin)]+want+readme[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's settings table differs from config.Settings; run go test ./internal/config -run TestREADMESettingsTable -update\n got:\n%s\nwant:\n%s", got, want)
}

// TestDocsNameEveryEntryKey fails when the docs' paragraph on a client entry's keys leaves one out.
func TestDocsNameEveryEntryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i := strings.Index(doc, "Each entry takes")
	if i < 0 {
		t.Fatal("docs/configuration.md lacks the paragraph that starts \"Each entry takes\"")
	}
	para, _, _ := strings.Cut(doc[i:], "\n\n")
	for _, k := range table.Keys() {
		if !strings.Contains(para, "`"+k+"`") {
			t.Errorf("the paragraph on a client entry's keys does not name `%s`", k)
		}
	}
}
