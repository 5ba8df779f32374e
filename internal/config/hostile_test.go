package config

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Hostile files: issue 19 items 6 and 7. A configuration file is a few kilobytes written by an
// operator, but `rotator check` and a daemon's SIGHUP read whatever the path names, so the cost of
// reading one must be bounded by its size, and what it reports by a fixed number of problems.

// mergeBomb is an empty anchored mapping merged thousands of times, in many entries.
func mergeBomb() string {
	var b strings.Builder
	b.WriteString("clients:\n  - &e {}\n")
	for range 3000 {
		b.WriteString("  - {<<: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]}\n")
	}
	return b.String()
}

// aliasBomb lists thousands of aliases of one mapping with 10,000 unknown keys: one problem per
// key per alias.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("clients:\n  - &m {")
	for i := range 9999 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("name: x}\n")
	for range 3000 {
		b.WriteString("  - *m\n")
	}
	return b.String()
}

// sharedDefaults is thousands of entries inheriting one token secret from the environment: every
// pair of them shares it.
func sharedDefaults() string {
	var b strings.Builder
	b.WriteString("clients:\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "  - {name: c%d}\n", i)
	}
	return b.String()
}

// TestHostileFilesAreBounded: each file used to cost seconds and hundreds of megabytes (or the
// whole memory: the daemon died on SIGHUP), reporting millions of problems.
func TestHostileFilesAreBounded(t *testing.T) {
	defaults := env(map[string]string{EnvBaseURL: "https://a.example.com", EnvClientSecretID: "cs", EnvTokenSecretID: "tok"})
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"merge bomb", mergeBomb(), "merge keys (<<) are not supported"},
		{"alias bomb", aliasBomb(), "an alias (*m) stands for a mapping"},
		{"shared defaults", sharedDefaults(), "refers to the same secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Parse([]byte(tc.yaml), "f.yaml", defaults)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			probs := wantErrors(t, err, tc.want)
			// The cap, the refusal of merge keys and of aliases of collections, and the count.
			if len(probs) > MaxProblems+3 {
				t.Errorf("%d problems reported, want at most %d and a count of the rest", len(probs), MaxProblems+2)
			}
			if n := len(err.Error()); n > 64<<10 {
				t.Errorf("the message is %d bytes", n)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("reading a %d-byte file allocated %d MB", len(tc.yaml), alloc>>20)
			}
			// Generous for -race on a loaded machine; the bombs took minutes.
			if took > 30*time.Second {
				t.Errorf("reading a %d-byte file took %s", len(tc.yaml), took)
			}
		})
	}
}

// TestProblemsCapped: past MaxProblems, the rest is counted, not listed.
func TestProblemsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("clients:\n  - {name: a, base_url: 'https://a.example.com', client_secret_id: c, token_secret_id: t")
	for i := range MaxProblems + 7 {
		fmt.Fprintf(&b, ", k%d: 1", i)
	}
	b.WriteString("}\n")
	_, err := Parse([]byte(b.String()), "f.yaml", nil)
	probs := wantErrors(t, err, `unknown key "k0"`, "and 7 more problems")
	if len(probs) != MaxProblems+1 {
		t.Errorf("%d problems, want %d and the count", len(probs), MaxProblems)
	}
	if strings.Contains(err.Error(), fmt.Sprintf(`"k%d"`, MaxProblems)) {
		t.Error("a problem past the cap is listed")
	}
}

// TestMergeKeysRefused: merge keys are refused with one message, wherever and however often they
// appear; aliases of single values still work.
func TestMergeKeysRefused(t *testing.T) {
	_, err := Parse([]byte(`clients:
  - &a {name: a, base_url: "https://a.example.com", client_secret_id: c1, token_secret_id: t1}
  - <<: *a
    name: b
  - {<<: [*a], name: c}
`), "f.yaml", nil)
	probs := wantErrors(t, err, "f.yaml:3: merge keys (<<) are not supported")
	n := 0
	for _, p := range probs {
		if strings.Contains(p.Msg, "merge keys") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d messages about merge keys, want 1:\n%v", n, err)
	}
	cfg, err := Parse([]byte(`clients:
  - {name: a, base_url: &u "https://a.example.com", client_secret_id: c1, token_secret_id: t1}
  - {name: b, base_url: *u, client_secret_id: c2, token_secret_id: t2}
`), "f.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := clientNamed(cfg, "b"); b.BaseURL != "https://a.example.com" {
		t.Errorf("alias of a value: %+v", b)
	}
}

// TestControlCharactersEscaped: issue 19 item 14. A variable's name and the configuration's path
// are chosen by whoever sets the environment; printed raw, their control characters could clear
// a terminal or forge a log line.
func TestControlCharactersEscaped(t *testing.T) {
	ws := Unknown([]string{"ROTATOR_X\x1b[2J\u200b=1"})
	if len(ws) != 1 || strings.ContainsAny(ws[0].String(), "\x1b\u200b") || !strings.Contains(ws[0].String(), `ROTATOR_X\x1b[2J\u200b`) {
		t.Errorf("warning = %q", ws)
	}
	_, err := Load(env(map[string]string{EnvConfig: "/nonexistent/a\x1b[2J\nb.yaml"}))
	if err == nil || strings.ContainsAny(err.Error(), "\x1b") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("error = %q", err)
	}
	cfg, err := Parse([]byte(validYAML), "a\x1bb.yaml", nil)
	if err != nil || cfg.Source != `"a\x1bb.yaml"` {
		t.Errorf("Source = %q, %v", cfg.Source, err)
	}
}

// TestHTTPAddrStrict: issue 19 item 14. A port is 0..65535 in decimal digits (0: any free port,
// which the daemon logs); a host is empty, an IP address or a host name.
func TestHTTPAddrStrict(t *testing.T) {
	for _, s := range []string{":99999", ":65536", ":+80", ":-0", ": 80", ":0x50", "a b:80", "[::1:80", "host:", "[fe80::1%eth0]:80x", "::80"} {
		if _, err := Load(env(with(minimalEnv, EnvHTTPAddr, s))); err == nil || !strings.Contains(err.Error(), "is not a listen address") {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{":0", ":65535", "127.0.0.1:9090", "[::]:9090", "localhost:9090", "rotator-0.ops.svc:9090"} {
		if _, err := Load(env(with(minimalEnv, EnvHTTPAddr, s))); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestLargestFileIsBounded: a file of MaxFileSize bytes of tiny entries sharing the environment's
// defaults is the most work a file can ask for; a daemon reloading it must stay within a small
// container's memory. At 1 MiB it cost 300 MB and seconds of CPU.
func TestLargestFileIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("clients:\n")
	for b.Len() < MaxFileSize-20 {
		b.WriteString("- {name: a}\n")
	}
	defaults := env(map[string]string{EnvBaseURL: "https://a.example.com", EnvClientSecretID: "cs", EnvTokenSecretID: "tok"})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Parse([]byte(b.String()), "f.yaml", defaults)
	runtime.ReadMemStats(&after)
	wantErrors(t, err, "and", "more problems")
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 80<<20 {
		t.Errorf("reading a %d-byte file allocated %d MB", b.Len(), alloc>>20)
	}
}
