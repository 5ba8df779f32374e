package config

import (
	"sort"
	"strings"
	"time"
)

// Scope says where a setting applies.
type Scope int

const (
	// PerClient settings have a YAML key in a client entry; the environment
	// variable is the only client's value, or the default for entries.
	PerClient Scope = iota
	// Global settings come from the environment only and apply to the whole
	// process.
	Global
	// DaemonOnly settings are global settings that only `rotator run` uses.
	DaemonOnly
)

// Setting describes one configuration setting. Settings is the single table
// the environment path, the YAML path, the unknown-variable warning and the
// help texts all read, so that a new setting cannot be known to one of them
// and missing from another.
type Setting struct {
	Env     string // environment variable
	Key     string // YAML key in a client entry; "" for global settings
	Scope   Scope
	Kind    string // what the value is, for help texts: "URL", "duration", ...
	Default string // the default as documented; "" when there is none
	Limits  string // allowed values, for help texts; "" when any value of the kind goes
	Help    string // one line: what the setting does

	// For the per-client settings that are a single value, parse validates
	// the trimmed text (recording any problem) and set stores the result;
	// both the environment and the YAML path go through them. The client
	// secrets and the token's secret id are nil here: their cross-checks
	// need to know where each came from, which candidate records.
	parse func(p *problems, l location, s string) (any, bool)
	set   func(c *Client, v any)
	// missing completes "KEY is missing; " or "VARIABLE is not set; " for
	// a required per-client setting; "" when the setting is optional.
	missing string
}

// Settings lists every setting the rotator reads, in the order help texts
// show them. Client entries in a YAML file accept the keys of the PerClient
// settings, plus name.
var Settings = []Setting{
	{Env: EnvBaseURL, Key: "base_url", Kind: "URL", Limits: "https://HOST[/PATH]; http:// only for loopback hosts",
		Help:    "Clear API base URL, e.g. https://api.clear.in",
		parse:   func(p *problems, l location, s string) (any, bool) { return checkBaseURL(p, l, s) },
		set:     func(c *Client, v any) { c.BaseURL = v.(string) },
		missing: "it must be the Clear API base URL (https://HOST[/PATH])"},
	{Env: EnvClientSecretID, Key: "client_secret_id", Kind: "secret id",
		Help: "Secrets Manager name or ARN of the secret holding the Clear client secret"},
	{Env: EnvClientSecret, Key: "client_secret", Kind: "secret",
		Help: "the Clear client secret itself (for development); set this or " + EnvClientSecretID},
	{Env: EnvClientSecretID2, Key: "client_secret_id_2", Kind: "secret id",
		Help: "optional second API client: Secrets Manager name or ARN of its client secret"},
	{Env: EnvClientSecret2, Key: "client_secret_2", Kind: "secret",
		Help: "optional second API client's client secret itself (for development)"},
	{Env: EnvTokenSecretID, Key: "token_secret_id", Kind: "secret id",
		Help: "Secrets Manager name or ARN of the secret where the token is kept"},
	{Env: EnvDailyLimit, Key: "daily_limit", Kind: "number", Default: "48", Limits: "1..250",
		Help:  "requests per client secret per UTC day",
		parse: func(p *problems, l location, s string) (any, bool) { return checkDailyLimit(p, l, s) },
		set:   func(c *Client, v any) { c.DailyLimit = v.(int) }},
	{Env: EnvRenewBefore, Key: "renew_before", Kind: "duration", Default: "a third of the lifetime", Limits: "1s..8784h",
		Help:  "renew when this much validity is left",
		parse: func(p *problems, l location, s string) (any, bool) { return checkRenewBefore(p, l, s) },
		set:   func(c *Client, v any) { c.RenewBefore = v.(time.Duration) }},
	{Env: EnvMaxAge, Key: "max_age", Kind: "duration", Default: "never", Limits: "1m..87840h, and 24h/max_age <= daily_limit",
		Help:  "rotate tokens that never expire once they are this old",
		parse: func(p *problems, l location, s string) (any, bool) { return checkMaxAge(p, l, s) },
		set:   func(c *Client, v any) { c.MaxAge = v.(time.Duration) }},
	{Env: EnvWebhookURL, Key: "webhook_url", Kind: "URL", Limits: "https://HOST[/PATH]; http:// only for loopback hosts",
		Help:  "receives a signed POST (Standard Webhooks) after every token stored; never the token itself",
		parse: func(p *problems, l location, s string) (any, bool) { return checkWebhookURL(p, l, s) },
		set:   func(c *Client, v any) { c.WebhookURL = v.(string) }},
	{Env: EnvConfig, Scope: Global, Kind: "path",
		Help: "YAML file with a clients: list; the variables above then give defaults for its entries"},
	{Env: EnvClearTimeout, Scope: Global, Kind: "duration", Default: "30s", Limits: "1s..120s",
		Help: "time limit of one request to Clear"},
	{Env: EnvSchedule, Scope: DaemonOnly, Kind: "cron spec", Default: DefaultSchedule,
		Help: "when the daemon checks every client; must fire at least once in 5 years"},
	{Env: EnvHTTPAddr, Scope: DaemonOnly, Kind: "[HOST]:PORT", Default: DefaultHTTPAddr,
		Help: "ops listener (/healthz, /readyz, /metrics); set but empty disables it"},
	{Env: EnvShutdownGrace, Scope: DaemonOnly, Kind: "duration", Default: "CLEAR_TIMEOUT+30s (60s)", Limits: "at least CLEAR_TIMEOUT+30s",
		Help: "how long SIGTERM waits for a rotation in progress"},
	{Env: EnvWebhookSecretID, Scope: Global, Kind: "secret id",
		Help: "Secrets Manager name or ARN of the webhook signing secret: whsec_<base64>, or two such values separated by a space while it changes"},
	{Env: EnvWebhookSecret, Scope: Global, Kind: "secret",
		Help: "the webhook signing secret itself (for development); set this or " + EnvWebhookSecretID},
	{Env: EnvHookCommand, Scope: Global, Kind: "command",
		Help: "runs after every token stored (not in the Lambda); split at white space with '...' and \"...\" quoting, no shell: write sh -c '...' for one"},
	{Env: EnvHookStdin, Scope: Global, Kind: "word", Default: "empty", Limits: HookStdinToken,
		Help: "token: the hook command reads the token document on its standard input"},
	{Env: EnvHookTimeout, Scope: Global, Kind: "duration", Default: "30s", Limits: "1s..10m",
		Help: "time limit of one run of the hook command"},
	{Env: EnvLogLevel, Scope: Global, Kind: "level", Default: "info", Limits: "debug, info, warn, error",
		Help: "least level logged"},
	{Env: EnvLogFormat, Scope: Global, Kind: "format", Default: "text on a terminal, json otherwise", Limits: "text, json",
		Help: "log format"},
	{Env: EnvNoColor, Scope: Global, Kind: "any", Help: "any non-empty value turns off colour in text logs"},
}

// valueSettings are the per-client settings that parse and set handle.
func valueSettings() []*Setting {
	var out []*Setting
	for i := range Settings {
		if Settings[i].parse != nil {
			out = append(out, &Settings[i])
		}
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
