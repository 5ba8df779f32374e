package config

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/logging"
)

// Scope says where a setting applies.
type Scope int

const (
	PerClient  Scope = iota // a key in a client entry; the variable is the only client's value, or the entries' default
	Global                  // the environment only, for the whole process
	DaemonOnly              // global, and only `rotator run` reads it
)

// Setting is one row of the configuration table. The environment path, the
// YAML path, the unknown-variable warning, the help texts and the README's
// table all iterate Settings, so a setting cannot be known to one of them and
// missing from another. Adding a setting is a row here and a field in Client
// or Config.
type Setting struct {
	Env        string // environment variable
	Key        string // YAML key in a client entry; "" for global settings
	Scope      Scope
	Kind       string // what the value is, for help texts: "URL", "duration", ...
	Default    any    // the typed value when the setting is not given; nil: the field's zero value
	DefaultDoc string // how help shows the default, when Default alone does not say it
	Limits     string // allowed values, for help texts; "" when any value of the kind goes
	Help       string // one line: what the setting does
	Notes      string // more, for docs/configuration.md's table
	Required   string // a per-client setting (or the first of a Group) is required: what it must be
	// Group names settings of which at most one may be given (a client secret,
	// or the id of the secret holding it); an entry that gives one of them
	// inherits none of the group from the environment.
	Group     string
	Secret    bool // a literal secret: never echoed, scrubbed from every message
	KeepEmpty bool // "set but empty" is a value, not "unset" (ROTATOR_HTTP_ADDR= turns the listener off)

	// parse validates the trimmed text, records any problem and returns the
	// typed value, which client or config stores; without parse the setting
	// is read elsewhere (ROTATOR_CONFIG).
	parse  func(p *problems, l location, s string) (any, bool)
	client func(c *Client, v any)
	config func(c *Config, v any)
}

// DefaultText is the default as help texts show it; "" when there is none.
func (s *Setting) DefaultText() string {
	if s.DefaultDoc != "" || s.Default == nil {
		return s.DefaultDoc
	}
	return fmt.Sprint(s.Default)
}

// parser and the setters adapt typed validators and fields to the table.
func parser[T any](f func(*problems, location, string) (T, bool)) func(*problems, location, string) (any, bool) {
	return func(p *problems, l location, s string) (any, bool) { return f(p, l, s) }
}

func clientField[T any](f func(*Client) *T) func(*Client, any) {
	return func(c *Client, v any) { *f(c) = v.(T) }
}

func configField[T any](f func(*Config) *T) func(*Config, any) {
	return func(c *Config, v any) { *f(c) = v.(T) }
}

// clientID stores a validated secret id as the text it was given.
func clientID(f func(*Client) *string) func(*Client, any) {
	return func(c *Client, v any) { *f(c) = v.(secretRef).raw }
}

// Settings lists every setting the rotator reads, in the order help texts and
// the README show them; the gateway's rows (gateway.go) and push delivery's
// (notify.go) come last.
var Settings = slices.Concat([]Setting{
	{Env: EnvBaseURL, Key: "base_url", Kind: "URL", Limits: "https://HOST[/PATH]; http:// only for loopback hosts",
		Help:     "Clear API base URL",
		Notes:    "India sandbox `https://api-sandbox.clear.in`, production `https://api.clear.in`; other regions (KSA, EU): the full base URL",
		Required: "it must be the Clear API base URL (https://HOST[/PATH])",
		parse:    parser(checkBaseURL), client: clientField(func(c *Client) *string { return &c.BaseURL })},
	{Env: EnvClientSecret, Key: "client_secret", Kind: "secret", Group: "client_secret", Secret: true,
		Help:     "the Clear client secret itself (for development)",
		Required: "set " + EnvClientSecretID + " to the Secrets Manager secret holding the Clear client secret (or " + EnvClientSecret + " to the secret itself, for development)",
		parse:    parser(checkClientSecret), client: clientField(func(c *Client) *clear.ClientSecret { return &c.ClientSecret })},
	{Env: EnvClientSecretID, Key: "client_secret_id", Kind: "secret id", Group: "client_secret",
		Help:  "or: Secrets Manager name or ARN of the secret holding the Clear client secret",
		Notes: "plain string, or JSON `{\"client_secret\": \"...\"}`",
		parse: parser(checkClientSecretID), client: clientID(func(c *Client) *string { return &c.ClientSecretID })},
	{Env: EnvClientSecret2, Key: "client_secret_2", Kind: "secret", Group: "client_secret_2", Secret: true,
		Help:  "optional second API client of the same workspace: its client secret itself (for development)",
		Notes: "needs the first; must differ from it and from every other client's",
		parse: parser(checkClientSecret), client: clientField(func(c *Client) *clear.ClientSecret { return &c.ClientSecret2 })},
	{Env: EnvClientSecretID2, Key: "client_secret_id_2", Kind: "secret id", Group: "client_secret_2",
		Help:  "or: Secrets Manager name or ARN of the second API client's client secret",
		Notes: "not the same secret as the first client secret's",
		parse: parser(checkClientSecretID), client: clientID(func(c *Client) *string { return &c.ClientSecretID2 })},
	{Env: EnvTokenSecretID, Key: "token_secret_id", Kind: "secret id",
		Help:     "Secrets Manager name or ARN of the secret where the token is kept",
		Notes:    "created if missing",
		Required: "it must be the Secrets Manager name or ARN of the secret that holds the token",
		parse:    parser(checkTokenSecretID), client: clientID(func(c *Client) *string { return &c.TokenSecretID })},
	{Env: EnvDailyLimit, Key: "daily_limit", Kind: "number", Default: DefaultDailyLimit, Limits: fmt.Sprintf("1..%d", MaxDailyLimit),
		Help:  "requests per client secret per UTC day the rotator allows itself",
		Notes: "anything else is refused at start-up",
		parse: parser(checkDailyLimit), client: clientField(func(c *Client) *int { return &c.DailyLimit })},
	{Env: EnvRenewBefore, Key: "renew_before", Kind: "duration", DefaultDoc: "a third of the lifetime", Limits: "more than zero, at most 8784h (366 days)",
		Help:  "renew when this much validity is left",
		Notes: "a Go duration such as `2h`",
		parse: parser(checkRenewBefore), client: clientField(func(c *Client) *time.Duration { return &c.RenewBefore })},
	{Env: EnvMaxAge, Key: "max_age", Kind: "duration", DefaultDoc: "never", Limits: "at least 1m, and at least 24h divided by the daily limit (30m at 48)",
		Help:  "rotate tokens that never expire once they are this old",
		Notes: "so that it never needs more requests than the daily limit allows",
		parse: parser(checkMaxAge), client: clientField(func(c *Client) *time.Duration { return &c.MaxAge })},
	{Env: EnvConfig, Scope: Global, Kind: "path",
		Help:  "YAML file with a clients: list; the variables above then give defaults for its entries",
		Notes: "a regular file (a FIFO, device or directory is refused) of at most 256 KiB"},
	{Env: EnvSchedule, Scope: DaemonOnly, Kind: "cron spec", Default: DefaultSchedule,
		Help:  "when the daemon checks every client; must fire at least once in 5 years",
		Notes: "UTC, seconds field optional, `@every 5m` style allowed; a spec that never fires (`0 0 30 2 *`) is refused",
		parse: parser(checkSchedule), config: configField(func(c *Config) *string { return &c.Schedule })},
	{Env: EnvHTTPAddr, Scope: DaemonOnly, Kind: "[HOST]:PORT", Default: DefaultHTTPAddr, KeepEmpty: true, Limits: "port 0..65535",
		Help:  "ops listener (/healthz, /readyz, /metrics); set but empty disables it",
		Notes: "the default listens on every interface, right in a container; on a host bind one interface, e.g. `127.0.0.1:9090`; port 0 takes any free port, and the `daemon started` log line names the address bound",
		parse: parser(checkHTTPAddr), config: configField(func(c *Config) *string { return &c.HTTPAddr })},
	{Env: EnvShutdownGrace, Scope: DaemonOnly, Kind: "duration", DefaultDoc: "CLEAR_TIMEOUT+30s (60s)", Limits: "at least CLEAR_TIMEOUT+30s",
		Help:  "how long SIGTERM waits for a rotation in progress",
		Notes: "a shorter grace could lose a token Clear has already issued",
		parse: parser(checkPositive), config: configField(func(c *Config) *time.Duration { return &c.ShutdownGrace })},
	{Env: EnvClearTimeout, Scope: Global, Kind: "duration", Default: DefaultClearTimeout, Limits: "1s..120s",
		Help:  "time limit of one request to Clear, connection to last byte",
		parse: parser(checkClearTimeout), config: configField(func(c *Config) *time.Duration { return &c.ClearTimeout })},
	{Env: EnvLogLevel, Scope: Global, Kind: "level", DefaultDoc: "info", Limits: "debug, info, warn, error",
		Help:  "least level logged",
		parse: fromLogging(logging.ParseLevel), config: configField(func(c *Config) *slog.Level { return &c.LogLevel })},
	{Env: EnvLogFormat, Scope: Global, Kind: "format", DefaultDoc: "text on a terminal, json otherwise", Limits: "text, json",
		Help:  "log format",
		parse: fromLogging(logging.ParseFormat), config: configField(func(c *Config) *string { return &c.LogFormat })},
	{Env: EnvNoColor, Scope: Global, Kind: "any",
		Help:  "any non-empty value turns off colour in text logs",
		parse: func(*problems, location, string) (any, bool) { return true, true }, config: configField(func(c *Config) *bool { return &c.NoColor })},
}, gatewaySettings, notifySettings)

// fromLogging adapts the logging package's parsers, whose messages already
// say what is allowed.
func fromLogging[T any](f func(string) (T, error)) func(*problems, location, string) (any, bool) {
	return func(p *problems, l location, s string) (any, bool) {
		v, err := f(s)
		if err != nil {
			p.bad(l, err, "%s", err)
		}
		return v, err == nil
	}
}

// groups are the settings, each alone or with the others of its Group, in
// table order; settingGroups and entryKeys are computed once, since a file
// may list thousands of entries.
var (
	settingGroups = groups()
	entryKeys     = clientKeyList()
)

func groups() [][]*Setting {
	var out [][]*Setting
	at := map[string]int{}
	for i := range Settings {
		s := &Settings[i]
		if j, ok := at[s.Group]; ok && s.Group != "" {
			out[j] = append(out[j], s)
			continue
		}
		at[s.Group] = len(out)
		out = append(out, []*Setting{s})
	}
	return out
}

// clientKeyList returns the keys a client entry accepts, name first.
func clientKeyList() []string {
	keys := []string{"name"}
	for _, s := range Settings {
		if s.Key != "" {
			keys = append(keys, s.Key)
		}
	}
	return keys
}

// clientKeys is the list of client entry keys for messages.
var clientKeys = strings.Join(clientKeyList(), ", ")

// knownEnv lists every variable the rotator reads, for Unknown.
func knownEnv() []string {
	names := make([]string, 0, len(Settings))
	for _, s := range Settings {
		names = append(names, s.Env)
	}
	sort.Strings(names)
	return names
}
