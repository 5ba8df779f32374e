package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// FuzzParse checks that Parse never panics and always returns exactly one of
// a Config that satisfies every documented rule, or an error made only of
// *Error values. withEnv switches on environment defaults, so that the
// merging of defaults into entries is fuzzed too.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML), false)
	f.Add([]byte("clients:\n  - name: a\n"), true)
	f.Add([]byte("clients:\n  - {name: a, token_secret_id: t1}\n  - {name: b, token_secret_id: t2, daily_limit: 300}\n"), true)
	f.Add([]byte("clients:\n  - &x {name: a, base_url: 'https://a.example.com', client_secret_id: c, token_secret_id: t}\n  - <<: *x\n    name: b\n"), false)
	f.Add([]byte("clients: []\n"), false)
	f.Add([]byte("clients:\n  - name: a\n    name: a\n"), true)
	f.Add([]byte("clients: [\n"), false)
	f.Add([]byte("clients:\n- ~\n- x\n- [1]\n---\n"), true)
	f.Add([]byte("a: &a [*a]\n"), false)
	f.Add([]byte("clients:\n  - {name: a, client_secret: x, client_secret_id: y, renew_before: -1s, max_age: 1h, bogus: 1}\n"), true)
	f.Add([]byte("clients:\n  - {name: a, client_secret_id: 'arn:aws:secretsmanager:r-1:123456789012:secret:t-AbCdEf', token_secret_id: t}\n"), true)

	defaults := env(map[string]string{
		EnvBaseURL:        "https://default.example.com",
		EnvClientSecretID: "clear/default-client",
		EnvTokenSecretID:  "clear/default-token",
		EnvRenewBefore:    "1h",
	})
	f.Fuzz(func(t *testing.T, data []byte, withEnv bool) {
		var lookup LookupFunc
		if withEnv {
			lookup = defaults
		}
		cfg, err := Parse(data, "fuzz.yaml", lookup)
		if err != nil {
			if cfg != nil {
				t.Fatal("both a config and an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is not a *config.Error: %v", err)
			}
			problemsOf(t, err)
			return
		}
		if cfg == nil {
			t.Fatal("neither a config nor an error")
		}
		checkInvariants(t, cfg)
	})
}

// checkInvariants asserts every rule a valid Config promises its users.
func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	if len(cfg.Clients) == 0 {
		t.Fatal("valid config without clients")
	}
	if _, err := timing.ParseSchedule(cfg.Schedule, time.Now()); err != nil {
		t.Errorf("schedule %q: %v", cfg.Schedule, err)
	}
	if cfg.ClearTimeout < MinClearTimeout || cfg.ClearTimeout > MaxClearTimeout || cfg.ShutdownGrace <= 0 {
		t.Errorf("globals out of range: %+v", cfg)
	}
	names := map[string]bool{}
	var ids []store.ID
	var tokens []store.ID
	literals := map[string]bool{}
	for _, c := range cfg.Clients {
		if !ValidName(c.Name) || names[c.Name] {
			t.Errorf("bad or duplicate name %q", c.Name)
		}
		names[c.Name] = true
		u, err := clear.ParseBaseURL(c.BaseURL)
		if err != nil || strings.HasSuffix(c.BaseURL, "/") || u.String() != c.BaseURL {
			t.Errorf("client %q: base URL %q: %v", c.Name, c.BaseURL, err)
		}
		if c.ClientSecret.IsZero() == (c.ClientSecretID == "") {
			t.Errorf("client %q: want exactly one of client secret and client secret id", c.Name)
		}
		if !c.ClientSecret.IsZero() {
			if literals[c.ClientSecret.Reveal()] {
				t.Errorf("client %q: shared literal secret", c.Name)
			}
			literals[c.ClientSecret.Reveal()] = true
		}
		tok, err := store.ParseID(c.TokenSecretID)
		if err != nil {
			t.Errorf("client %q: token secret id: %v", c.Name, err)
		}
		for _, o := range append(append([]store.ID(nil), tokens...), ids...) {
			if store.SameSecret(o, tok) {
				t.Errorf("client %q: token secret %q collides", c.Name, c.TokenSecretID)
			}
		}
		if c.ClientSecretID != "" {
			id, err := store.ParseID(c.ClientSecretID)
			if err != nil {
				t.Errorf("client %q: client secret id: %v", c.Name, err)
			}
			for _, o := range append(append([]store.ID{tok}, tokens...), ids...) {
				if store.SameSecret(o, id) {
					t.Errorf("client %q: client secret id %q collides", c.Name, c.ClientSecretID)
				}
			}
			ids = append(ids, id)
		}
		tokens = append(tokens, tok)
		if c.DailyLimit < 1 || c.DailyLimit > MaxDailyLimit || c.RenewBefore < 0 || c.MaxAge < 0 {
			t.Errorf("client %q: out of range: %+v", c.Name, c)
		}
	}
}
