package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env turns a map into a LookupFunc, so that tests never read the real
// environment.
func env(m map[string]string) LookupFunc {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// with returns a copy of base with the given pairs added or replaced; a
// value of "\x00unset" deletes the key.
func with(base map[string]string, kv ...string) map[string]string {
	m := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == unset {
			delete(m, kv[i])
			continue
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}

const unset = "\x00unset"

const (
	secretA  = "s3cr3t-A-9f8e7d6c5b4a"
	secretB  = "s3cr3t-B-0a1b2c3d4e5f"
	tokenARN = "arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear/token-AbCdEf"
)

// minimalEnv is the smallest valid single-client environment.
var minimalEnv = map[string]string{
	EnvBaseURL:        "https://api.example.com",
	EnvClientSecretID: "clear/client-secret",
	EnvTokenSecretID:  "clear/token",
}

// problemsOf returns every *Error in err, checking on the way that err is
// nothing but *Errors, as the package promises.
func problemsOf(t *testing.T, err error) []*Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if ce, ok := e.(*Error); ok {
			out = append(out, ce)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		t.Errorf("error %T %q is not a *config.Error", e, e)
	}
	walk(err)
	return out
}

// wantErrors checks that err carries every wanted substring, each in some
// problem, and that no message leaks a secret.
func wantErrors(t *testing.T, err error, want ...string) []*Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", want)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not contain %q:\n%s", w, msg)
		}
	}
	noSecrets(t, err)
	return problemsOf(t, err)
}

// noSecrets asserts that neither err's message nor any cause it wraps, nor
// any way of printing it, shows a secret literal used in these tests.
func noSecrets(t *testing.T, err error) {
	t.Helper()
	var texts []string
	texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	for _, e := range problemsOf(t, err) {
		texts = append(texts, e.Error(), fmt.Sprintf("%+v", *e), fmt.Sprintf("%#v", *e))
		for c := e.Err; c != nil; c = errors.Unwrap(c) {
			texts = append(texts, c.Error())
		}
	}
	for _, text := range texts {
		for _, s := range []string{secretA, secretB} {
			if strings.Contains(text, s) {
				t.Errorf("error text leaks a client secret:\n%s", text)
			}
		}
	}
}

func TestLoadEnvDefaults(t *testing.T) {
	cfg, err := Load(env(minimalEnv))
	if err != nil {
		t.Fatal(err)
	}
	want := Client{
		Name:           DefaultClientName,
		BaseURL:        "https://api.example.com",
		ClientSecretID: "clear/client-secret",
		TokenSecretID:  "clear/token",
		DailyLimit:     DefaultDailyLimit,

		GatewayTokenHeader: DefaultGatewayTokenHeader,
	}
	if len(cfg.Clients) != 1 || cfg.Clients[0] != want {
		t.Errorf("clients = %+v, want [%+v]", cfg.Clients, want)
	}
	if cfg.Schedule != "@every 5m" || cfg.HTTPAddr != ":9090" || cfg.ShutdownGrace != 60*time.Second ||
		cfg.ClearTimeout != 30*time.Second || cfg.LogLevel != slog.LevelInfo || cfg.LogFormat != "" ||
		cfg.Source != "environment" {
		t.Errorf("globals = %+v", cfg)
	}
	if c, ok := clientNamed(cfg, "default"); !ok || c != want {
		t.Errorf("client default = %+v, %v", c, ok)
	}
	if _, ok := clientNamed(cfg, "nope"); ok {
		t.Error("client nope found")
	}
}

func TestLoadEnvEverything(t *testing.T) {
	cfg, err := Load(env(map[string]string{
		EnvBaseURL:       " http://127.0.0.1:8080/clear/ ",
		EnvClientSecret:  secretA + "\n",
		EnvTokenSecretID: tokenARN,
		EnvDailyLimit:    "250",
		EnvRenewBefore:   "2h",
		EnvMaxAge:        "720h",
		EnvSchedule:      "*/30 * * * * *",
		EnvHTTPAddr:      "127.0.0.1:0",
		EnvShutdownGrace: "150s",
		EnvClearTimeout:  "120s",
		EnvLogLevel:      "WARNING",
		EnvLogFormat:     "JSON",
		EnvConfig:        "", // empty means unset
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clients[0]
	if c.BaseURL != "http://127.0.0.1:8080/clear" || c.ClientSecret.Reveal() != secretA || c.ClientSecretID != "" ||
		c.TokenSecretID != tokenARN || c.DailyLimit != 250 || c.RenewBefore != 2*time.Hour || c.MaxAge != 720*time.Hour {
		t.Errorf("client = %+v", c)
	}
	if cfg.Schedule != "*/30 * * * * *" || cfg.HTTPAddr != "127.0.0.1:0" || cfg.ShutdownGrace != 150*time.Second ||
		cfg.ClearTimeout != 120*time.Second || cfg.LogLevel != slog.LevelWarn || cfg.LogFormat != "json" {
		t.Errorf("globals = %+v", cfg)
	}
}

func TestHTTPAddr(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
	}{
		{"unset", unset, ":9090"},
		{"set but empty disables", "", ""},
		{"blank disables", "  ", ""},
		{"host and port", "127.0.0.1:9191", "127.0.0.1:9191"},
		{"ipv6", "[::1]:9090", "[::1]:9090"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(env(with(minimalEnv, EnvHTTPAddr, tc.value)))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTPAddr != tc.want {
				t.Errorf("HTTPAddr = %q, want %q", cfg.HTTPAddr, tc.want)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		field string   // Field of the first problem
		want  []string // substrings of the whole message
	}{
		{"nothing set", map[string]string{}, EnvBaseURL,
			[]string{"CLEAR_BASE_URL is not set", "neither CLEAR_CLIENT_SECRET nor CLEAR_CLIENT_SECRET_ID is set", "ROTATOR_TOKEN_SECRET_ID is not set"}},
		{"http to a remote host", with(minimalEnv, EnvBaseURL, "http://api.example.com"), EnvBaseURL,
			[]string{"environment: CLEAR_BASE_URL is invalid", "http is allowed only for loopback"}},
		{"ftp", with(minimalEnv, EnvBaseURL, "ftp://api.example.com"), EnvBaseURL, []string{"scheme must be https"}},
		{"url with password", with(minimalEnv, EnvBaseURL, "https://user:"+secretA+"@api.example.com"), EnvBaseURL,
			[]string{"must not contain a user name or password"}},
		{"url with query", with(minimalEnv, EnvBaseURL, "https://api.example.com/?"), EnvBaseURL, []string{"a query"}},
		{"both secrets", with(minimalEnv, EnvClientSecret, secretA), EnvClientSecret,
			[]string{"CLEAR_CLIENT_SECRET and CLEAR_CLIENT_SECRET_ID are both set; set exactly one"}},
		{"secret with control character", with(minimalEnv, EnvClientSecretID, unset, EnvClientSecret, secretA+"\x01x"), EnvClientSecret,
			[]string{"CLEAR_CLIENT_SECRET contains a control character"}},
		{"bad client secret id", with(minimalEnv, EnvClientSecretID, "not a name!"), EnvClientSecretID,
			[]string{"CLEAR_CLIENT_SECRET_ID has a character at position 4 that is not allowed", "value is not shown"}},
		{"bad token arn", with(minimalEnv, EnvTokenSecretID, "arn:aws:s3:::bucket"), EnvTokenSecretID,
			[]string{`ROTATOR_TOKEN_SECRET_ID "arn:aws:s3:::bucket" is not a Secrets Manager secret ARN`}},
		{"bad token account", with(minimalEnv, EnvTokenSecretID, "arn:aws:secretsmanager:eu-west-1:123:secret:x"), EnvTokenSecretID,
			[]string{"malformed account id"}},
		{"token is the client secret's secret", with(minimalEnv, EnvTokenSecretID, "clear/client-secret"), EnvTokenSecretID,
			[]string{"ROTATOR_TOKEN_SECRET_ID refers to the same secret as this client's CLEAR_CLIENT_SECRET_ID", "overwrite the client secret"}},
		{"token is the client secret's secret by ARN", with(minimalEnv, EnvTokenSecretID,
			"arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear/client-secret-Q1w2E3"), EnvTokenSecretID,
			[]string{"refers to the same secret as this client's CLEAR_CLIENT_SECRET_ID"}},
		{"daily limit too high", with(minimalEnv, EnvDailyLimit, "300"), EnvDailyLimit,
			[]string{"environment: ROTATOR_DAILY_LIMIT 300 is out of range 1..250"}},
		{"daily limit zero", with(minimalEnv, EnvDailyLimit, "0"), EnvDailyLimit, []string{"ROTATOR_DAILY_LIMIT 0 is out of range 1..250"}},
		{"daily limit negative", with(minimalEnv, EnvDailyLimit, "-5"), EnvDailyLimit, []string{"-5 is out of range 1..250"}},
		{"daily limit huge", with(minimalEnv, EnvDailyLimit, "99999999999999999999999"), EnvDailyLimit, []string{"is out of range 1..250"}},
		{"daily limit not a number", with(minimalEnv, EnvDailyLimit, "4.5"), EnvDailyLimit,
			[]string{`ROTATOR_DAILY_LIMIT "4.5" is not a whole number; allowed 1..250`}},
		{"renew before zero", with(minimalEnv, EnvRenewBefore, "0s"), EnvRenewBefore, []string{"ROTATOR_RENEW_BEFORE 0s must be greater than zero"}},
		{"renew before no unit", with(minimalEnv, EnvRenewBefore, "3600"), EnvRenewBefore, []string{`"3600" is not a Go duration`}},
		{"max age negative", with(minimalEnv, EnvMaxAge, "-1h"), EnvMaxAge, []string{"ROTATOR_MAX_AGE -1h must be greater than zero"}},
		{"schedule", with(minimalEnv, EnvSchedule, "every five minutes"), EnvSchedule, []string{`ROTATOR_SCHEDULE "every five minutes" is not a valid schedule`}},
		{"schedule seven fields", with(minimalEnv, EnvSchedule, "0 0 0 1 1 * 2024"), EnvSchedule, []string{"is not a valid schedule"}},
		{"schedule tz without space", with(minimalEnv, EnvSchedule, "TZ=UTC"), EnvSchedule, []string{"must be followed by a space"}},
		{"schedule negative every", with(minimalEnv, EnvSchedule, "@every -5m"), EnvSchedule, []string{"@every needs at least 1s"}},
		{"http addr", with(minimalEnv, EnvHTTPAddr, "9090"), EnvHTTPAddr, []string{`ROTATOR_HTTP_ADDR "9090" is not a listen address`}},
		{"http addr port", with(minimalEnv, EnvHTTPAddr, ":99999"), EnvHTTPAddr, []string{"is not a listen address"}},
		{"grace", with(minimalEnv, EnvShutdownGrace, "-1s"), EnvShutdownGrace, []string{"ROTATOR_SHUTDOWN_GRACE -1s must be greater than zero"}},
		{"timeout low", with(minimalEnv, EnvClearTimeout, "500ms"), EnvClearTimeout, []string{"CLEAR_TIMEOUT 500ms is out of range 1s..120s"}},
		{"timeout high", with(minimalEnv, EnvClearTimeout, "3m"), EnvClearTimeout, []string{"CLEAR_TIMEOUT 3m is out of range 1s..120s"}},
		{"log level", with(minimalEnv, EnvLogLevel, "verbose"), EnvLogLevel, []string{`LOG_LEVEL "verbose" is not a log level`}},
		{"log format", with(minimalEnv, EnvLogFormat, "xml"), EnvLogFormat, []string{`LOG_FORMAT "xml" is not a log format`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(env(tc.env))
			if cfg != nil {
				t.Errorf("got a config along with the error")
			}
			probs := wantErrors(t, err, tc.want...)
			var first *Error
			if !errors.As(err, &first) {
				t.Fatal("errors.As(*Error) failed")
			}
			if first != probs[0] || first.Field != tc.field || first.Source != SourceEnvironment {
				t.Errorf("first problem = %+v, want field %s from the environment", first, tc.field)
			}
		})
	}
}

// TestAllProblemsAtOnce checks that one Load reports everything, so that an
// operator does not fix one mistake per restart.
func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Load(env(map[string]string{
		EnvBaseURL:       "http://example.com",
		EnvClientSecret:  secretA,
		EnvTokenSecretID: "bad id!",
		EnvDailyLimit:    "300",
		EnvClearTimeout:  "1h",
		EnvLogLevel:      "chatty",
	}))
	probs := wantErrors(t, err)
	var fields []string
	for _, p := range probs {
		fields = append(fields, p.Field)
	}
	want := []string{EnvBaseURL, EnvTokenSecretID, EnvDailyLimit, EnvClearTimeout, EnvLogLevel}
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("fields = %v, want %v\n%v", fields, want, err)
	}
}

const validYAML = `
clients:
  - name: erp-a
    base_url: https://api-a.example.com/
    client_secret_id: arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear/a/client-AbCdEf
    token_secret_id: clear/a/token
    daily_limit: 10
    renew_before: 2h
    max_age: 720h
  - name: erp_b.2
    base_url: https://api-b.example.com
    client_secret: ` + secretB + `
    token_secret_id: clear/b/token
`

func TestParseYAML(t *testing.T) {
	cfg, err := Parse([]byte(validYAML), "clients.yaml", env(map[string]string{EnvSchedule: "@hourly"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Client{{
		Name:           "erp-a",
		BaseURL:        "https://api-a.example.com",
		ClientSecretID: "arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear/a/client-AbCdEf",
		TokenSecretID:  "clear/a/token",
		DailyLimit:     10,
		RenewBefore:    2 * time.Hour,
		MaxAge:         720 * time.Hour,

		GatewayTokenHeader: DefaultGatewayTokenHeader,
	}, {
		Name:          "erp_b.2",
		BaseURL:       "https://api-b.example.com",
		TokenSecretID: "clear/b/token",
		DailyLimit:    DefaultDailyLimit,

		GatewayTokenHeader: DefaultGatewayTokenHeader,
	}}
	if len(cfg.Clients) != 2 || cfg.Clients[0] != want[0] {
		t.Fatalf("clients = %+v", cfg.Clients)
	}
	b := cfg.Clients[1]
	if b.ClientSecret.Reveal() != secretB {
		t.Errorf("client secret not kept")
	}
	b.ClientSecret = want[1].ClientSecret
	if b != want[1] {
		t.Errorf("client = %+v, want %+v", b, want[1])
	}
	if cfg.Source != "clients.yaml" || cfg.Schedule != "@hourly" || cfg.HTTPAddr != ":9090" {
		t.Errorf("globals = %+v", cfg)
	}
	if _, ok := clientNamed(cfg, "default"); ok {
		t.Error("a file has no default client")
	}
}

// TestYAMLEnvDefaults checks that the per-client variables fill in whatever
// an entry omits, and only that.
func TestYAMLEnvDefaults(t *testing.T) {
	e := env(map[string]string{
		EnvBaseURL:        "https://default.example.com",
		EnvClientSecretID: "clear/shared-client",
		EnvTokenSecretID:  "clear/default-token",
		EnvDailyLimit:     "20",
		EnvRenewBefore:    "90m",
		EnvMaxAge:         "24h",
	})
	cfg, err := Parse([]byte(`
clients:
  - name: inherits-all-but-secrets
    client_secret: `+secretA+`
    token_secret_id: tok-1
  - name: overrides
    base_url: https://own.example.com
    client_secret_id: clear/own-client
    token_secret_id: tok-2
    daily_limit: 5
    renew_before: 1h
    max_age: 5h
  - name: nulls-mean-default
    base_url: ~
    client_secret:
    client_secret_id: clear/third
    token_secret_id: tok-3
    daily_limit: null
`), "f.yaml", e)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Clients
	if c := got[0]; c.BaseURL != "https://default.example.com" || c.ClientSecret.Reveal() != secretA || c.ClientSecretID != "" ||
		c.TokenSecretID != "tok-1" || c.DailyLimit != 20 || c.RenewBefore != 90*time.Minute || c.MaxAge != 24*time.Hour {
		t.Errorf("inherited: %+v", c)
	}
	if c := got[1]; c.BaseURL != "https://own.example.com" || c.ClientSecretID != "clear/own-client" ||
		c.DailyLimit != 5 || c.RenewBefore != time.Hour || c.MaxAge != 5*time.Hour {
		t.Errorf("overrides: %+v", c)
	}
	if c := got[2]; c.BaseURL != "https://default.example.com" || c.ClientSecretID != "clear/third" || c.DailyLimit != 20 {
		t.Errorf("nulls: %+v", c)
	}

	// The secret defaults as a pair: an entry that names either kind of
	// client secret does not also inherit the other kind.
	cfg, err = Parse([]byte("clients:\n  - {name: a, client_secret: "+secretB+", token_secret_id: t}\n"), "f.yaml", e)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Clients[0]; c.ClientSecretID != "" || c.ClientSecret.Reveal() != secretB {
		t.Errorf("secret pair: %+v", c)
	}
	// One entry may take the default token secret.
	cfg, err = Parse([]byte("clients:\n  - name: only\n"), "f.yaml", e)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Clients[0]; c.TokenSecretID != "clear/default-token" || c.ClientSecretID != "clear/shared-client" {
		t.Errorf("defaults: %+v", c)
	}
}

// TestYAMLFeatures covers YAML features an operator may reasonably use.
func TestYAMLFeatures(t *testing.T) {
	cfg, err := Parse([]byte(`
# shared settings
x-defaults: &defaults
  base_url: https://api.example.com
  daily_limit: 12
`), "f.yaml", nil)
	if err == nil || cfg != nil {
		t.Fatal("unknown top-level key accepted")
	}
	wantErrors(t, err, `unknown top-level key "x-defaults"`)

	// An alias of a single value is fine; merge keys are refused
	// (TestMergeKeysRefused).
	cfg, err = Parse([]byte(`
clients:
  - name: a
    base_url: &u "https://b.example.com"
    daily_limit: 12
    client_secret_id: cs-a
    token_secret_id: tok-a
  - {name: c, base_url: *u, client_secret_id: cs-c, token_secret_id: tok-c, daily_limit: "7"}
`), "f.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := clientNamed(cfg, "a")
	c, _ := clientNamed(cfg, "c")
	if a.DailyLimit != 12 || a.BaseURL != "https://b.example.com" || c.BaseURL != "https://b.example.com" || c.DailyLimit != 7 {
		t.Errorf("a = %+v, c = %+v", a, c)
	}
}

func TestYAMLErrors(t *testing.T) {
	full := func(name string, extra ...string) string {
		s := "  - name: " + name + "\n    base_url: https://api.example.com\n    client_secret_id: cs-" + name + "\n    token_secret_id: tok-" + name + "\n"
		for _, e := range extra {
			s += "    " + e + "\n"
		}
		return s
	}
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"empty file", "", nil, []string{"f.yaml: the file is empty"}},
		{"only comments", "# nothing\n", nil, []string{"the file is empty"}},
		{"no clients key", "{}\n", nil, []string{"the file lists no clients"}},
		{"null clients", "clients:\n", nil, []string{"the file lists no clients"}},
		{"empty clients", "clients: []\n", nil, []string{"f.yaml:1: clients is empty"}},
		{"clients is a mapping", "clients:\n  a: 1\n", nil, []string{"f.yaml:2: expected a list of clients under clients:, found a mapping"}},
		{"top level list", "- name: a\n", nil, []string{"f.yaml:1: expected a mapping with a clients: key at the top level, found a list"}},
		{"syntax", "clients: [\n", nil, []string{"the file is not valid YAML"}},
		{"tabs", "clients:\n\t- name: a\n", nil, []string{"the file is not valid YAML"}},
		{"two documents", "clients:\n" + full("a") + "---\nclients: []\n", nil, []string{"more than one YAML document"}},
		{"unknown key", "clients:\n" + full("a", "dialy_limit: 5"), nil,
			[]string{`f.yaml:6: unknown key "dialy_limit" in a client entry; allowed keys: name, base_url`}},
		{"unknown top key", "clients:\n" + full("a") + "schedule: x\n", nil, []string{`unknown top-level key "schedule"`}},
		{"duplicate key", "clients:\n" + full("a", "name: b"), nil, []string{`f.yaml:6: key "name" is given twice (first at line 2)`}},
		{"entry is a string", "clients:\n  - " + secretA + "\n", nil, []string{"f.yaml:2: expected a client entry", "found a string"}},
		{"entry is null", "clients:\n  -\n" + full("b"), nil, []string{"client #1: the entry is empty"}},
		{"missing name", "clients:\n  - base_url: https://a.example.com\n    client_secret_id: x\n    token_secret_id: y\n", nil,
			[]string{"f.yaml:2: client #1: name is missing"}},
		{"bad name", "clients:\n" + full("a b"), nil, []string{`client #1: name "a b" is not allowed; use 1 to 64 characters`}},
		{"long name", "clients:\n" + full(strings.Repeat("n", 65)), nil, []string{"is not allowed"}},
		{"empty name", "clients:\n  - name: ''\n    client_secret_id: x\n    token_secret_id: y\n    base_url: https://a.example.com\n", nil, []string{`name "" is not allowed`}},
		{"name is a list", "clients:\n  - name: [a]\n    client_secret_id: x\n    token_secret_id: y\n    base_url: https://a.example.com\n", nil,
			[]string{"client #1: name must be a single value, not a list"}},
		{"duplicate names", "clients:\n" + full("a") + "  - name: a\n    base_url: https://api.example.com\n    client_secret_id: other\n    token_secret_id: other-tok\n", nil,
			[]string{`f.yaml:6: client "a": name "a" is already used by client #1 (line 2); names must be unique`}},
		{"missing base_url", "clients:\n  - {name: a, client_secret_id: x, token_secret_id: y}\n", nil,
			[]string{`client "a": base_url is missing; set it in the entry, or set CLEAR_BASE_URL`}},
		{"http base_url", "clients:\n" +
			"  - {name: a, base_url: 'http://api.example.com', client_secret_id: x, token_secret_id: y}\n", nil,
			[]string{`client "a": base_url is invalid`, "http is allowed only for loopback"}},
		{"missing secret", "clients:\n  - {name: a, base_url: https://a.example.com, token_secret_id: y}\n", nil,
			[]string{`client "a": needs a client_secret or a client_secret_id; set one in the entry`}},
		{"both secrets", "clients:\n  - {name: a, base_url: https://a.example.com, client_secret: " + secretA + ", client_secret_id: x, token_secret_id: y}\n", nil,
			[]string{`client "a": client_secret and client_secret_id are both set; set exactly one`}},
		{"empty secret", "clients:\n  - {name: a, base_url: https://a.example.com, client_secret: '', token_secret_id: y}\n", nil,
			[]string{`client "a": client_secret is empty`}},
		{"missing token", "clients:\n  - {name: a, base_url: https://a.example.com, client_secret_id: x}\n", nil,
			[]string{`client "a": token_secret_id is missing`}},
		{"daily_limit high", "clients:\n" + full("erp-a", "daily_limit: 300"), nil,
			[]string{`f.yaml:6: client "erp-a": daily_limit 300 is out of range 1..250`}},
		{"daily_limit text", "clients:\n" + full("a", "daily_limit: lots"), nil, []string{`daily_limit "lots" is not a whole number`}},
		{"daily_limit float", "clients:\n" + full("a", "daily_limit: 1.5"), nil, []string{`daily_limit "1.5" is not a whole number`}},
		{"renew_before zero", "clients:\n" + full("a", "renew_before: 0s"), nil, []string{`client "a": renew_before 0s must be greater than zero`}},
		{"renew_before number", "clients:\n" + full("a", "renew_before: 7200"), nil, []string{`renew_before "7200" is not a Go duration`}},
		{"max_age negative", "clients:\n" + full("a", "max_age: -24h"), nil, []string{`client "a": max_age -24h must be greater than zero`}},
		{"max_age mapping", "clients:\n" + full("a", "max_age: {h: 1}"), nil, []string{`client "a": max_age must be a single value, not a mapping`}},
		{"shared literal secret", "clients:\n" +
			"  - {name: a, base_url: https://a.example.com, client_secret: " + secretA + ", token_secret_id: t1}\n" +
			"  - {name: b, base_url: https://a.example.com, client_secret: " + secretA + ", token_secret_id: t2}\n", nil,
			[]string{`client "b": client_secret is the same client secret as client "a"'s client_secret (value not shown); each would revoke the other's token`}},
		{"shared literal secret via env", "clients:\n  - {name: a, token_secret_id: t1}\n  - {name: b, token_secret_id: t2}\n",
			map[string]string{EnvBaseURL: "https://a.example.com", EnvClientSecret: secretA},
			[]string{`client "b": client_secret (from CLEAR_CLIENT_SECRET) is the same client secret as client "a"'s client_secret (from CLEAR_CLIENT_SECRET)`}},
		{"shared client secret id", "clients:\n" +
			"  - {name: a, base_url: https://a.example.com, client_secret_id: 'arn:aws:secretsmanager:ap-south-1:123456789012:secret:cs-x1y2z3', token_secret_id: t1}\n" +
			"  - {name: b, base_url: https://a.example.com, client_secret_id: cs, token_secret_id: t2}\n", nil,
			[]string{`client "b": client_secret_id refers to the same Secrets Manager secret as client "a"'s client_secret_id`, "each would revoke the other's token"}},
		{"shared token secret", "clients:\n" +
			"  - {name: a, base_url: https://a.example.com, client_secret_id: c1, token_secret_id: 'arn:aws:secretsmanager:ap-south-1:123456789012:secret:tok-AbCdEf'}\n" +
			"  - {name: b, base_url: https://a.example.com, client_secret_id: c2, token_secret_id: tok}\n", nil,
			[]string{`client "b": token_secret_id "tok" refers to the same secret as client "a"'s token_secret_id`}},
		{"shared default token secret", "clients:\n  - {name: a, client_secret_id: c1}\n  - {name: b, client_secret_id: c2}\n",
			map[string]string{EnvBaseURL: "https://a.example.com", EnvTokenSecretID: "tok"},
			[]string{`client "b": token_secret_id (from ROTATOR_TOKEN_SECRET_ID) "tok" refers to the same secret as client "a"'s token_secret_id (from ROTATOR_TOKEN_SECRET_ID)`}},
		{"token is own client secret", "clients:\n  - {name: a, base_url: https://a.example.com, client_secret_id: same, token_secret_id: same}\n", nil,
			[]string{`client "a": token_secret_id refers to the same secret as this client's client_secret_id`}},
		{"token is another's client secret", "clients:\n" +
			"  - {name: a, base_url: https://a.example.com, client_secret_id: c1, token_secret_id: t1}\n" +
			"  - {name: b, base_url: https://a.example.com, client_secret_id: c2, token_secret_id: c1}\n", nil,
			[]string{`client "b": token_secret_id refers to the same secret as client "a"'s client_secret_id`}},
		{"client secret is another's token", "clients:\n" +
			"  - {name: a, base_url: https://a.example.com, client_secret_id: c1, token_secret_id: t1}\n" +
			"  - {name: b, base_url: https://a.example.com, client_secret_id: t1, token_secret_id: t2}\n", nil,
			[]string{`client "b": client_secret_id refers to the same secret as client "a"'s token_secret_id`}},
		{"invalid env default reported once", "clients:\n  - {name: a, client_secret_id: c1, token_secret_id: t1}\n",
			map[string]string{EnvBaseURL: "ftp://x"}, []string{"environment: CLEAR_BASE_URL is invalid"}},
		{"invalid env default even if overridden", "clients:\n" + full("a"),
			map[string]string{EnvDailyLimit: "0"}, []string{"environment: ROTATOR_DAILY_LIMIT 0 is out of range 1..250"}},
		{"too large", "clients:\n" + full("a") + "#" + strings.Repeat("x", MaxFileSize) + "\n", nil, []string{"larger than 262144 bytes (256 KiB)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "f.yaml", env(tc.env))
			if cfg != nil {
				t.Errorf("got a config along with the error")
			}
			probs := wantErrors(t, err, tc.want...)
			if tc.name == "invalid env default reported once" && len(probs) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(probs), err)
			}
		})
	}
}

// TestYAMLAllProblemsAtOnce checks that problems in several entries, and in
// the environment, are all reported together with their lines and clients.
func TestYAMLAllProblemsAtOnce(t *testing.T) {
	_, err := Parse([]byte(`clients:
  - name: erp-a
    base_url: https://api.example.com
    client_secret: `+secretA+`
    token_secret_id: tok-a
    daily_limit: 300
    colour: blue
  - name: erp-b
    base_url: http://api.example.com
    client_secret: `+secretA+`
    token_secret_id: tok-b
    renew_before: soon
`), "f.yaml", env(map[string]string{EnvLogFormat: "xml"}))
	probs := wantErrors(t, err)
	type key struct {
		source string
		line   int
		client string
		field  string
	}
	var got []key
	for _, p := range probs {
		got = append(got, key{p.Source, p.Line, p.Client, p.Field})
	}
	want := []key{
		{"environment", 0, "", EnvLogFormat},
		{"f.yaml", 6, "erp-a", "daily_limit"},
		{"f.yaml", 7, "", ""}, // unknown key, found by yaml.v3 with no client context
		{"f.yaml", 9, "erp-b", "base_url"},
		{"f.yaml", 10, "erp-b", "client_secret"},
		{"f.yaml", 12, "erp-b", "renew_before"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("problems:\n got %v\nwant %v\n%v", got, want, err)
	}
}

// TestErrorsNeverContainSecrets tries the mistakes most likely to put a
// secret into a message: a secret pasted into the wrong field.
func TestErrorsNeverContainSecrets(t *testing.T) {
	yamls := []string{
		"clients:\n  - {name: a, base_url: 'https://" + secretA + "@x', client_secret: " + secretA + ", token_secret_id: t}\n",
		"clients:\n  - {name: a, base_url: '" + secretA + "', client_secret: " + secretA + ", token_secret_id: t}\n",
		"clients:\n  - {name: '" + secretA + "', client_secret: " + secretA + ", token_secret_id: t}\n",
		"clients:\n  - {name: a, base_url: 'https://a.example.com', client_secret: " + secretA + ", token_secret_id: '" + secretA + "!'}\n",
		"clients:\n  - {name: a, daily_limit: " + secretA + ", client_secret: " + secretA + ", token_secret_id: t}\n",
		"clients:\n  - {name: a, renew_before: " + secretA + ", client_secret: " + secretA + ", token_secret_id: t}\n",
		"clients:\n  - {name: a, client_secret_id: '" + secretB + "!', token_secret_id: t}\n",
		"clients:\n  - {name: a, client_secret_id: '" + secretB + "', token_secret_id: '" + secretB + "'}\n",
		"clients:\n  - " + secretA + "\n",
		"clients:\n  - {name: a, client_secret: \"" + secretA + "\\u0001\"}\n",
		"clients:\n  - {name: a, client_secret: " + secretA + ", client_secret_id: x}\n",
		"clients:\n  - {name: a, client_secret: " + secretA + "}\n  - {name: b, client_secret: " + secretA + "}\n",
	}
	for i, y := range yamls {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, err := Parse([]byte(y), "f.yaml", env(map[string]string{EnvClientSecret: secretB, EnvBaseURL: "https://" + secretB + ":" + secretB + "@x"}))
			if err == nil {
				t.Fatal("no error")
			}
			noSecrets(t, err)
		})
	}
	for i, e := range []map[string]string{
		{EnvClientSecret: secretA, EnvClientSecretID: secretB},
		{EnvClientSecret: secretA, EnvBaseURL: secretA, EnvTokenSecretID: secretA + "?", EnvDailyLimit: secretA, EnvMaxAge: secretA},
		{EnvClientSecret: secretA, EnvSchedule: secretA, EnvHTTPAddr: secretA, EnvLogLevel: secretA, EnvLogFormat: secretA, EnvClearTimeout: secretA},
		// A secret pasted into CLEAR_CLIENT_SECRET_ID is not a valid id, so
		// it is treated as a secret: not quoted, and scrubbed elsewhere.
		{EnvClientSecretID: secretA + "!", EnvTokenSecretID: secretA + "!"},
		{EnvClientSecret: secretA + "\r\n" + secretB},
	} {
		t.Run(fmt.Sprint("env", i), func(t *testing.T) {
			_, err := Load(env(e))
			if err == nil {
				t.Fatal("no error")
			}
			noSecrets(t, err)
		})
	}
}

// TestInheritedFieldNames checks that a problem with a setting an entry
// inherited names the variable in its message but keeps Error.Field a key.
func TestInheritedFieldNames(t *testing.T) {
	_, err := Parse([]byte("clients:\n  - {name: a, client_secret_id: c1}\n  - {name: b, client_secret_id: c2}\n"), "f.yaml",
		env(map[string]string{EnvBaseURL: "https://a.example.com", EnvTokenSecretID: "tok"}))
	probs := wantErrors(t, err, "(from ROTATOR_TOKEN_SECRET_ID)")
	if len(probs) != 1 || probs[0].Field != "token_secret_id" || probs[0].Client != "b" || probs[0].Line != 3 {
		t.Errorf("problems = %+v", probs)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(env(map[string]string{EnvConfig: path, EnvHTTPAddr: ""}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != path || len(cfg.Clients) != 2 || cfg.HTTPAddr != "" {
		t.Errorf("cfg = %+v", cfg)
	}

	// A missing file is reported together with the environment's problems,
	// and the cause is kept for errors.Is.
	_, err = Load(env(map[string]string{EnvConfig: filepath.Join(dir, "missing.yaml"), EnvLogLevel: "loud"}))
	probs := wantErrors(t, err, "ROTATOR_CONFIG names a file that cannot be read", "LOG_LEVEL")
	if !errors.Is(err, fs.ErrNotExist) || len(probs) != 2 {
		t.Errorf("err = %v", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, append([]byte(validYAML+"#"), make([]byte, MaxFileSize)...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(env(map[string]string{EnvConfig: big}))
	wantErrors(t, err, "larger than 262144 bytes")

	// Exactly the limit is fine.
	exact := filepath.Join(dir, "exact.yaml")
	data := []byte(validYAML + "#")
	data = append(data, []byte(strings.Repeat("x", MaxFileSize-len(data)))...)
	if err := os.WriteFile(exact, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(env(map[string]string{EnvConfig: exact})); err != nil {
		t.Errorf("a file of MaxFileSize bytes refused: %v", err)
	}
}

func TestNoClientsIs(t *testing.T) {
	_, err := Parse([]byte("clients: []\n"), "", nil)
	if !errors.Is(err, ErrNoClients) {
		t.Errorf("err = %v, want ErrNoClients", err)
	}
	if !strings.HasPrefix(err.Error(), "config:1: ") {
		t.Errorf("default source not used: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{Source: "f.yaml", Line: 3, Client: "erp-a", Msg: "daily_limit 300 is out of range 1..250"}, `f.yaml:3: client "erp-a": daily_limit 300 is out of range 1..250`},
		{Error{Source: "f.yaml", Entry: 2, Msg: "name is missing"}, `f.yaml: client #2: name is missing`},
		{Error{Source: "environment", Msg: "X is not set"}, `environment: X is not set`},
		{Error{Msg: "bare"}, `bare`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	cause := errors.New("cause")
	if e := (&Error{Err: cause}); !errors.Is(e, cause) {
		t.Error("Unwrap")
	}
}

// clientNamed returns cfg's client of that name.
func clientNamed(cfg *Config, name string) (Client, bool) {
	for _, c := range cfg.Clients {
		if c.Name == name {
			return c, true
		}
	}
	return Client{}, false
}

// TestBaseURLWithoutSchemeIsNotShown: with the client secret in Secrets Manager, configuration
// cannot know its value, and one pasted into CLEAR_BASE_URL (the variable beside it) must not be
// echoed in the refusal. A value that does not even start with a scheme is not shown; one that
// does is shown redacted of its user info and query, as before.
func TestBaseURLWithoutSchemeIsNotShown(t *testing.T) {
	const pasted = "3eboH/vsr2VpGcQ8nZx1Lw=="
	for _, v := range []string{pasted, "api.clear.in"} {
		_, err := Load(env(with(minimalEnv, EnvBaseURL, v)))
		wantErrors(t, err, "CLEAR_BASE_URL is invalid: it does not start with https:// (the value is not shown, in case it is a secret)")
		if err != nil && strings.Contains(err.Error(), v) {
			t.Errorf("the refusal shows the value: %v", err)
		}
	}
	_, err := Load(env(with(minimalEnv, EnvBaseURL, "ftp://api.example.com")))
	wantErrors(t, err, `"ftp://api.example.com"`, "scheme must be https")
}
