package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/settings"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Environment variable names; Settings says what each one does.
const (
	EnvBaseURL                = "CLEAR_BASE_URL"
	EnvClientSecret           = "CLEAR_CLIENT_SECRET"
	EnvClientSecretID         = "CLEAR_CLIENT_SECRET_ID"
	EnvClientSecret2          = "CLEAR_CLIENT_SECRET_2"
	EnvClientSecretID2        = "CLEAR_CLIENT_SECRET_ID_2"
	EnvTokenSecretID          = "ROTATOR_TOKEN_SECRET_ID"
	EnvDailyLimit             = "ROTATOR_DAILY_LIMIT"
	EnvRenewBefore            = "ROTATOR_RENEW_BEFORE"
	EnvMaxAge                 = "ROTATOR_MAX_AGE"
	EnvConfig                 = "ROTATOR_CONFIG"
	EnvSchedule               = "ROTATOR_SCHEDULE"
	EnvHTTPAddr               = "ROTATOR_HTTP_ADDR"
	EnvShutdownGrace          = "ROTATOR_SHUTDOWN_GRACE"
	EnvClearTimeout           = "CLEAR_TIMEOUT"
	EnvLogLevel               = "LOG_LEVEL"
	EnvLogFormat              = "LOG_FORMAT"
	EnvNoColor                = "NO_COLOR" // https://no-color.org
	EnvGatewayTokenHeader     = "ROTATOR_GATEWAY_TOKEN_HEADER"
	EnvGatewayAddr            = "ROTATOR_GATEWAY_ADDR"
	EnvGatewayKey             = "ROTATOR_GATEWAY_KEY"
	EnvGatewayKeyID           = "ROTATOR_GATEWAY_KEY_ID"
	EnvGatewayKeyGrace        = "ROTATOR_GATEWAY_KEY_GRACE"
	EnvGatewayReplayLimit     = "ROTATOR_GATEWAY_REPLAY_LIMIT"
	EnvGatewayHold            = "ROTATOR_GATEWAY_HOLD"
	EnvGatewayUpstreamTimeout = "ROTATOR_GATEWAY_UPSTREAM_TIMEOUT"
	EnvGatewayMaxConns        = "ROTATOR_GATEWAY_MAX_CONNS"
	EnvGatewayPoll            = "ROTATOR_GATEWAY_POLL"
	EnvGatewayTLSCert         = "ROTATOR_GATEWAY_TLS_CERT"
	EnvGatewayTLSKey          = "ROTATOR_GATEWAY_TLS_KEY"
	EnvProbePath              = "ROTATOR_PROBE_PATH"
	EnvProbeInterval          = "ROTATOR_PROBE_INTERVAL"
	EnvWebhookURL             = "ROTATOR_WEBHOOK_URL"
	EnvWebhookSecretID        = "ROTATOR_WEBHOOK_SECRET_ID"
	EnvWebhookSecret          = "ROTATOR_WEBHOOK_SECRET"
	EnvHookCommand            = "ROTATOR_HOOK_COMMAND"
	EnvHookStdin              = "ROTATOR_HOOK_STDIN"
	EnvHookTimeout            = "ROTATOR_HOOK_TIMEOUT"
)

// Limits and defaults, exported so that help texts and other packages quote
// the numbers the validation enforces.
const (
	// DefaultDailyLimit allows a request every half hour on average: far more
	// than rotation needs, yet a crash loop cannot hammer Clear all day.
	DefaultDailyLimit    = 48
	MaxDailyLimit        = 250
	DefaultSchedule      = "@every 5m"
	DefaultHTTPAddr      = ":9090"
	DefaultClearTimeout  = 30 * time.Second
	MinClearTimeout      = time.Second
	MaxClearTimeout      = timing.MaxClearTimeout
	DefaultShutdownGrace = 60 * time.Second // timing.Lease(DefaultClearTimeout)
	MaxFileSize          = settings.MaxFileSize
	DefaultClientName    = "default" // the only client in single-client mode
	SourceEnvironment    = settings.SourceEnvironment

	DefaultGatewayAddr        = "127.0.0.1:8480" // `rotator gateway`'s; `rotator run` serves none unless told
	DefaultGatewayHTTPAddr    = "127.0.0.1:9480" // `rotator gateway`'s ops listener: beside the ERP, on loopback
	DefaultGatewayMaxConns    = 16384
	DefaultGatewayTokenHeader = clear.HeaderAuthToken

	// HookStdinToken is the one value of ROTATOR_HOOK_STDIN: the hook reads the token document.
	HookStdinToken     = "token"
	DefaultHookTimeout = notify.DefaultHookTimeout
)

// The table's types are settings'; config names them for its callers.
type (
	Setting    = settings.Setting
	Scope      = settings.Scope
	LookupFunc = settings.LookupFunc
	Error      = settings.Error
	Warning    = settings.Warning
)

const (
	PerClient  = settings.PerEntry   // a key in a client entry; the variable is the only client's value, or the entries' default
	Global     = settings.Global     // the environment only, for the whole process
	DaemonOnly = settings.DaemonOnly // global, and only `rotator run` (and `rotator gateway`) reads it
	// MaxProblems bounds the problems Load lists; see settings.MaxProblems.
	MaxProblems = settings.MaxProblems
)

// parser and field adapt a typed validator and a typed field (of a Client or
// the Config) to the table.
func parser[T any](f func(string) (T, error)) func(string) (any, error) { return settings.Parser(f) }

func field[X, T any](f func(*X) *T) func(dst, v any) bool { return settings.Field(f) }

// idField stores a validated secret id as the text it was given.
func idField[X any](f func(*X) *string) func(dst, v any) bool {
	return settings.Convert(f, func(id store.ID) string { return id.Raw })
}

// Settings lists every setting the rotator reads, in the order help texts and
// the docs show them. Adding a setting is a row here and a field in Client or
// Config; a rule between settings is a function in rules.go.
var Settings = []Setting{
	{Env: EnvBaseURL, Key: "base_url", Kind: "URL", Limits: "https://HOST[/PATH]; http:// only for loopback hosts",
		Help:     "Clear API base URL",
		Notes:    "India sandbox `https://api-sandbox.clear.in`, production `https://api.clear.in`; other regions (KSA, EU): the full base URL",
		Required: "it must be the Clear API base URL (https://HOST[/PATH])",
		Parse:    parser(checkBaseURL), Set: field(func(c *Client) *string { return &c.BaseURL })},
	{Env: EnvClientSecret, Key: "client_secret", Kind: "secret", Group: "client_secret", Secret: true,
		Help:     "the Clear client secret itself (for development)",
		Notes:    "plain string, or JSON `{\"client_secret\": \"...\"}` as in the secret",
		Required: "set " + EnvClientSecretID + " to the Secrets Manager secret holding the Clear client secret (or " + EnvClientSecret + " to the secret itself, for development)",
		Missing:  ErrNoClientSecret,
		Parse:    parser(secret.ParseClientSecret), Set: field(func(c *Client) *clear.ClientSecret { return &c.ClientSecret })},
	{Env: EnvClientSecretID, Key: "client_secret_id", Kind: "secret id", Group: "client_secret",
		Help:  "or: Secrets Manager name or ARN of the secret holding the Clear client secret",
		Notes: "plain string, or JSON `{\"client_secret\": \"...\"}`",
		Parse: parser(secretID(false)), Set: idField(func(c *Client) *string { return &c.ClientSecretID })},
	{Env: EnvClientSecret2, Key: "client_secret_2", Kind: "secret", Group: "client_secret_2", Secret: true,
		Help:  "optional second API client of the same workspace: its client secret itself (for development)",
		Notes: "needs the first; must differ from it and from every other client's",
		Parse: parser(secret.ParseClientSecret), Set: field(func(c *Client) *clear.ClientSecret { return &c.ClientSecret2 })},
	{Env: EnvClientSecretID2, Key: "client_secret_id_2", Kind: "secret id", Group: "client_secret_2",
		Help:  "or: Secrets Manager name or ARN of the second API client's client secret",
		Notes: "not the same secret as the first client secret's",
		Parse: parser(secretID(false)), Set: idField(func(c *Client) *string { return &c.ClientSecretID2 })},
	{Env: EnvTokenSecretID, Key: "token_secret_id", Kind: "secret id",
		Help:     "Secrets Manager name or ARN of the secret where the token is kept",
		Notes:    "created if missing",
		Required: "it must be the Secrets Manager name or ARN of the secret that holds the token",
		Parse:    parser(secretID(true)), Set: idField(func(c *Client) *string { return &c.TokenSecretID })},
	{Env: EnvDailyLimit, Key: "daily_limit", Kind: "number", Default: DefaultDailyLimit, Limits: fmt.Sprintf("1..%d", MaxDailyLimit),
		Help:  "requests per client secret per UTC day the rotator allows itself",
		Notes: "anything else is refused at start-up",
		Parse: parser(settings.Count(MaxDailyLimit, DefaultDailyLimit)),
		Set:   field(func(c *Client) *int { return &c.DailyLimit })},
	{Env: EnvRenewBefore, Key: "renew_before", Kind: "duration", DefaultDoc: "a third of the lifetime", Limits: "at least CLEAR_TIMEOUT+30s (60s), at most 8784h (366 days)",
		Help:  "renew when this much validity is left",
		Notes: "a Go duration such as `2h`",
		Parse: parser(checkRenewBefore), Set: field(func(c *Client) *time.Duration { return &c.RenewBefore })},
	{Env: EnvMaxAge, Key: "max_age", Kind: "duration", DefaultDoc: "never", Limits: "at least 1m, and at least 24h divided by the daily limit (30m at 48); at most 87840h (ten years)",
		Help:  "rotate tokens that never expire once they are this old",
		Notes: "so that it never needs more requests than the daily limit allows",
		Parse: parser(checkMaxAge), Set: field(func(c *Client) *time.Duration { return &c.MaxAge })},
	{Env: EnvConfig, Scope: Global, Kind: "path",
		Help:  "YAML file with a clients: list; the variables above then give defaults for its entries",
		Notes: "a regular file (a FIFO, device or directory is refused) of at most 256 KiB"},
	{Env: EnvSchedule, Scope: DaemonOnly, Kind: "cron spec", Default: DefaultSchedule,
		Help:  "when the daemon checks every client; must fire at least once in 5 years",
		Notes: "UTC unless it starts with `TZ=Area/City ` (or `CRON_TZ=`), seconds field optional, `@every 5m` style allowed; a spec that never fires (`0 0 30 2 *`) is refused",
		Parse: parser(checkSchedule), Set: field(func(c *Config) *string { return &c.Schedule })},
	{Env: EnvHTTPAddr, Scope: DaemonOnly, Kind: "[HOST]:PORT", Default: DefaultHTTPAddr, DefaultDoc: DefaultHTTPAddr + "; " + DefaultGatewayHTTPAddr + " for rotator gateway", KeepEmpty: true, Limits: "port 0..65535",
		Help:  "ops listener (/healthz, /readyz, /metrics); set but empty disables it",
		Notes: "`rotator run`'s default listens on every interface, right in a container; on a host bind one interface, e.g. `127.0.0.1:9090`; `rotator gateway`'s default is loopback (set `:9480` in a pod, for the probes); port 0 takes any free port, and the `daemon started` (or `gateway started`) log line names the address bound",
		Parse: parser(settings.ListenAddr(`":9090" or "127.0.0.1:9090", or set it empty to disable the listener`)),
		Set:   field(func(c *Config) *string { return &c.HTTPAddr })},
	{Env: EnvShutdownGrace, Scope: DaemonOnly, Kind: "duration", DefaultDoc: "CLEAR_TIMEOUT+30s (60s)", Limits: "at least CLEAR_TIMEOUT+30s",
		Help:  "how long SIGTERM waits for a rotation in progress",
		Notes: "a shorter grace could lose a token Clear has already issued",
		Parse: parser(settings.Duration(0, 0)), Set: field(func(c *Config) *time.Duration { return &c.ShutdownGrace })},
	{Env: EnvClearTimeout, Scope: Global, Kind: "duration", Default: DefaultClearTimeout, Limits: "1s..120s",
		Help:  "time limit of one request to Clear, connection to last byte",
		Parse: parser(settings.Duration(MinClearTimeout, MaxClearTimeout)), Set: field(func(c *Config) *time.Duration { return &c.ClearTimeout })},
	{Env: EnvLogLevel, Scope: Global, Kind: "level", DefaultDoc: "info", Limits: "debug, info, warn, error",
		Help:  "least level logged",
		Parse: parser(logging.ParseLevel), Set: field(func(c *Config) *slog.Level { return &c.LogLevel })},
	{Env: EnvLogFormat, Scope: Global, Kind: "format", DefaultDoc: "text on a terminal, json otherwise", Limits: "text, json",
		Help:  "log format",
		Parse: parser(logging.ParseFormat), Set: field(func(c *Config) *string { return &c.LogFormat })},
	{Env: EnvNoColor, Scope: Global, Kind: "any",
		Help:  "any non-empty value turns off colour in text logs",
		Parse: func(string) (any, error) { return true, nil }, Set: field(func(c *Config) *bool { return &c.NoColor })},

	// The gateway's (issue 17).
	{Env: EnvGatewayTokenHeader, Key: "gateway_token_header", Kind: "header name", Default: DefaultGatewayTokenHeader,
		Limits: "not Host, Content-Length, a hop-by-hop header, or one the gateway removes (x-clear-rotator-*, x-clear-client-secret, forwarding headers)",
		Help:   "the header the gateway puts the token in (x-clear-auth-token for Clear's GLS API)",
		Parse:  parser(checkHeaderName), Set: field(func(c *Client) *string { return &c.GatewayTokenHeader })},
	{Env: EnvGatewayAddr, Scope: DaemonOnly, Kind: "[HOST]:PORT", DefaultDoc: DefaultGatewayAddr + " for rotator gateway; off for rotator run",
		Help:  "the Clear gateway's listener; every path on it goes to Clear",
		Parse: parser(settings.ListenAddr(`"127.0.0.1:8480"`)), Set: field(func(c *Config) *string { return &c.Gateway.Addr })},
	{Env: EnvGatewayKeyID, Scope: DaemonOnly, Kind: "secret id", Group: "gateway_key",
		Help:  "Secrets Manager name or ARN of the secret holding the gateway's inbound key (x-clear-rotator-key); re-read when it changes",
		Notes: "`rotator check` reads it when the gateway is served",
		Parse: parser(secretID(false)), Set: idField(func(c *Config) *string { return &c.Gateway.KeyID })},
	{Env: EnvGatewayKey, Scope: DaemonOnly, Kind: "secret", Group: "gateway_key", Secret: true,
		Help:  "the gateway's inbound key itself (for development); set this or " + EnvGatewayKeyID + "; required unless the gateway listens on loopback",
		Parse: parser(secret.ParseGatewayKey), Set: field(func(c *Config) *secret.GatewayKey { return &c.Gateway.Key })},
	{Env: EnvGatewayKeyGrace, Scope: DaemonOnly, Kind: "duration", Default: 15 * time.Minute, DefaultDoc: "15m", Limits: "0s..168h",
		Help:  "how long the previous key is still accepted after the key's secret changed",
		Parse: parser(checkKeyGrace), Set: field(func(c *Config) *time.Duration { return &c.Gateway.KeyGrace })},
	{Env: EnvGatewayReplayLimit, Scope: DaemonOnly, Kind: "bytes", Default: int64(1 << 20), DefaultDoc: "1048576 (1 MiB)", Limits: "1..67108864",
		Help:  "largest request body buffered so that it can be replayed after a 401; larger bodies are streamed",
		Notes: "all bodies buffered at once take at most 64 MiB (or this limit, if larger); a body that does not fit is streamed too",
		Parse: parser(settings.Count[int64](64<<20, 1<<20)), Set: field(func(c *Config) *int64 { return &c.Gateway.ReplayLimit })},
	{Env: EnvGatewayHold, Scope: DaemonOnly, Kind: "duration", Default: 10 * time.Second, Limits: "1s..60s",
		Help:  "longest a request waits for a (newer) token before the gateway answers",
		Notes: "below about 6s, a call refused for a token revoked outside the rotator gets the 401 before the heal (5 s to judge, then one forced rotation) has a new token for it",
		Parse: parser(settings.Duration(time.Second, time.Minute)), Set: field(func(c *Config) *time.Duration { return &c.Gateway.Hold })},
	{Env: EnvGatewayUpstreamTimeout, Scope: DaemonOnly, Kind: "duration", Default: 120 * time.Second, DefaultDoc: "120s", Limits: "1s..600s",
		Help:  "longest wait for Clear's response headers",
		Parse: parser(settings.Duration(time.Second, 10*time.Minute)), Set: field(func(c *Config) *time.Duration { return &c.Gateway.UpstreamTimeout })},
	{Env: EnvGatewayMaxConns, Scope: DaemonOnly, Kind: "number", Default: DefaultGatewayMaxConns, Limits: "1..1048576",
		Help:  "most connections the gateway holds open at once",
		Parse: parser(settings.Count(1<<20, DefaultGatewayMaxConns)), Set: field(func(c *Config) *int { return &c.Gateway.MaxConns })},
	{Env: EnvGatewayPoll, Scope: DaemonOnly, Kind: "duration", Default: 5 * time.Second, Limits: "1s..300s",
		Help:  "how often the gateway looks at the token secret's version (one DescribeSecret); a 401 looks at once, and again up to every second while a call is held",
		Parse: parser(settings.Duration(time.Second, 5*time.Minute)), Set: field(func(c *Config) *time.Duration { return &c.Gateway.Poll })},
	{Env: EnvGatewayTLSCert, Scope: DaemonOnly, Kind: "path",
		Help:  "PEM certificate for serving the gateway over TLS (with " + EnvGatewayTLSKey + "); re-read when it changes",
		Notes: "each a regular file of at most 1 MiB; `rotator check` loads the pair",
		Parse: parser(settings.Text), Set: field(func(c *Config) *string { return &c.Gateway.TLSCert })},
	{Env: EnvGatewayTLSKey, Scope: DaemonOnly, Kind: "path",
		Help:  "PEM private key of " + EnvGatewayTLSCert,
		Parse: parser(settings.Text), Set: field(func(c *Config) *string { return &c.Gateway.TLSKey })},
	{Env: EnvProbePath, Key: "probe_path", Kind: "path", Limits: "/PATH[?QUERY], at most 1024 characters",
		Help:  "a harmless GET below the base URL that Clear answers with the token (an API of a product the API client has): sent every " + EnvProbeInterval + ", so that a token revoked outside the rotator is found and replaced",
		Notes: "optional; without it nothing notices a revocation outside the rotator but a gateway's callers; see [Tokens revoked outside](gateway.md#probing-for-a-token-revoked-outside)",
		Parse: parser(checkProbePath), Set: field(func(c *Client) *string { return &c.ProbePath })},
	{Env: EnvProbeInterval, Scope: DaemonOnly, Kind: "duration", Default: time.Minute, DefaultDoc: "1m", Limits: "1s..3600s",
		Help:  "how often each client's " + EnvProbePath + " is sent",
		Parse: parser(settings.Duration(time.Second, time.Hour)), Set: field(func(c *Config) *time.Duration { return &c.Gateway.ProbeInterval })},

	// Push delivery's (issue 18): a signed webhook per client and a hook command, both run after
	// every token the rotator stores. See internal/notify.
	{Env: EnvWebhookURL, Key: "webhook_url", Kind: "URL", Limits: "https://HOST[/PATH]; http:// only for loopback hosts",
		Help:  "receives a signed POST (Standard Webhooks) after every token stored; never the token itself",
		Notes: "optional; see [Telling the ERP](consumers.md#telling-the-erp-a-webhook-and-a-hook-command); needs " + EnvWebhookSecretID + " or " + EnvWebhookSecret,
		Parse: parser(checkWebhookURL), Set: field(func(c *Client) *string { return &c.WebhookURL })},
	{Env: EnvWebhookSecretID, Scope: Global, Kind: "secret id", Group: "webhook_secret",
		Help:  "Secrets Manager name or ARN of the webhook signing secret: whsec_<base64>, or two such values separated by a space while it changes",
		Notes: "whsec_ keys of 24 to 64 bytes in standard, padded base64; required with a webhook URL; read again every five minutes; `rotator check` reads and parses it",
		Parse: parser(secretID(false)), Set: idField(func(c *Config) *string { return &c.Notify.WebhookSecretID })},
	{Env: EnvWebhookSecret, Scope: Global, Kind: "secret", Group: "webhook_secret", Secret: true,
		Help:  "the webhook signing secret itself (for development); set this or " + EnvWebhookSecretID,
		Parse: parser(checkWebhookSecret), Set: field(func(c *Config) *notify.Secret { return &c.Notify.WebhookSecret })},
	{Env: EnvHookCommand, Scope: Global, Kind: "command",
		Help:  "runs after every token stored (not in the Lambda); split at white space with '...' and \"...\" quoting, no shell: write sh -c '...' for one",
		Notes: "`rotator check` looks its program up in PATH, without running it",
		Parse: parser(notify.SplitCommand), Set: field(func(c *Config) *[]string { return &c.Notify.HookCommand })},
	{Env: EnvHookStdin, Scope: Global, Kind: "word", DefaultDoc: "empty", Limits: HookStdinToken,
		Help:  "token: the hook command reads the token document on its standard input",
		Parse: parser(checkHookStdin), Set: field(func(c *Config) *bool { return &c.Notify.HookStdin })},
	{Env: EnvHookTimeout, Scope: Global, Kind: "duration", Default: DefaultHookTimeout, Limits: "1s..600s",
		Help:  "time limit of one run of the hook command",
		Notes: "the command is killed with everything it started",
		Parse: parser(settings.Duration(time.Second, 10*time.Minute)), Set: field(func(c *Config) *time.Duration { return &c.Notify.HookTimeout })},
}

// table is Settings as settings reads them.
var table = settings.New(settings.Table{Settings: Settings, Entry: (*Client)(nil), Global: (*Config)(nil),
	FileVar: EnvConfig, ExampleVar: EnvBaseURL,
	Prefixes: []string{"ROTATOR_", "CLEAR_"}, Foreign: foreignEnv})

// SecretEnv returns the variables of the Secret rows: a hook command never inherits them.
func SecretEnv() []string {
	var out []string
	for _, s := range Settings {
		if s.Secret {
			out = append(out, s.Env)
		}
	}
	return out
}
