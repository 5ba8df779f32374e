package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README is a map and the reference lives in docs/ (issue 16 item 7): every relative link in
// them, and in BENCHMARKS.md, must name a file that exists and, with an anchor, a heading in it, so
// that moving a section cannot leave a dead link behind.
func TestDocsLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md", "../BENCHMARKS.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchorsOf := map[string]map[string]bool{}
	anchors := func(path string) map[string]bool {
		if a, ok := anchorsOf[path]; ok {
			return a
		}
		a := map[string]bool{}
		if data, err := os.ReadFile(path); err == nil {
			for line := range strings.Lines(string(data)) {
				if h, ok := strings.CutPrefix(line, "#"); ok {
					a[slug(strings.TrimLeft(h, "#"))] = true
				}
			}
		}
		anchorsOf[path] = a
		return a
	}
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s links to %s, which does not exist", page, target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !anchors(path)[anchor] {
				t.Errorf("%s links to %s, which has no heading #%s", page, target, anchor)
			}
		}
	}
	if len(pages) < 5 {
		t.Fatalf("only %d pages found", len(pages))
	}
}
