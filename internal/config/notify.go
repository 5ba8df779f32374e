package config

import (
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/notify"
)

// Push delivery's settings (issue 18): a signed webhook per client and a hook command, both run
// after every token the rotator stores. See internal/notify.
const (
	EnvWebhookURL      = "ROTATOR_WEBHOOK_URL"
	EnvWebhookSecretID = "ROTATOR_WEBHOOK_SECRET_ID"
	EnvWebhookSecret   = "ROTATOR_WEBHOOK_SECRET"
	EnvHookCommand     = "ROTATOR_HOOK_COMMAND"
	EnvHookStdin       = "ROTATOR_HOOK_STDIN"
	EnvHookTimeout     = "ROTATOR_HOOK_TIMEOUT"

	// HookStdinToken is the one value of ROTATOR_HOOK_STDIN: the hook reads the token document.
	HookStdinToken = "token"

	DefaultHookTimeout = notify.DefaultHookTimeout
	MinHookTimeout     = time.Second
	MaxHookTimeout     = 10 * time.Minute
)

// Notify is the push delivery configuration shared by every client; each client's webhook URL is
// Client.WebhookURL.
type Notify struct {
	// WebhookSecretID names the Secrets Manager secret holding the signing secret; WebhookSecret is
	// the secret itself (for development). At most one is set; one is required when any client has a
	// webhook URL.
	WebhookSecretID string
	WebhookSecret   notify.Secret
	// HookCommand is ROTATOR_HOOK_COMMAND split into arguments (notify.SplitCommand); nil for none.
	HookCommand []string
	// HookStdin is true when the hook reads the token document on its standard input.
	HookStdin   bool
	HookTimeout time.Duration
}

// notifySettings are push delivery's rows of Settings.
var notifySettings = []Setting{
	{Env: EnvWebhookURL, Key: "webhook_url", Kind: "URL", Limits: "https://HOST[/PATH]; http:// only for loopback hosts",
		Help:  "receives a signed POST (Standard Webhooks) after every token stored; never the token itself",
		Notes: "optional; see [Telling the ERP](consumers.md#telling-the-erp-a-webhook-and-a-hook-command); needs " + EnvWebhookSecretID + " or " + EnvWebhookSecret,
		parse: parser(checkWebhookURL), client: clientField(func(c *Client) *string { return &c.WebhookURL })},
	{Env: EnvWebhookSecretID, Scope: Global, Kind: "secret id", Group: "webhook_secret",
		Help:  "Secrets Manager name or ARN of the webhook signing secret: whsec_<base64>, or two such values separated by a space while it changes",
		Notes: "whsec_ keys of 24 to 64 bytes; required with a webhook URL; read again every five minutes",
		parse: parser(checkClientSecretID), config: func(c *Config, v any) { c.Notify.WebhookSecretID = v.(secretRef).raw }},
	{Env: EnvWebhookSecret, Scope: Global, Kind: "secret", Group: "webhook_secret", Secret: true,
		Help:  "the webhook signing secret itself (for development); set this or " + EnvWebhookSecretID,
		parse: parser(checkWebhookSecret), config: configField(func(c *Config) *notify.Secret { return &c.Notify.WebhookSecret })},
	{Env: EnvHookCommand, Scope: Global, Kind: "command",
		Help:  "runs after every token stored (not in the Lambda); split at white space with '...' and \"...\" quoting, no shell: write sh -c '...' for one",
		parse: parser(checkHookCommand), config: configField(func(c *Config) *[]string { return &c.Notify.HookCommand })},
	{Env: EnvHookStdin, Scope: Global, Kind: "word", DefaultDoc: "empty", Limits: HookStdinToken,
		Help:  "token: the hook command reads the token document on its standard input",
		parse: parser(checkHookStdin), config: configField(func(c *Config) *bool { return &c.Notify.HookStdin })},
	{Env: EnvHookTimeout, Scope: Global, Kind: "duration", Default: DefaultHookTimeout, Limits: "1s..10m",
		Help:  "time limit of one run of the hook command",
		Notes: "the command is killed with everything it started",
		parse: parser(checkHookTimeout), config: configField(func(c *Config) *time.Duration { return &c.Notify.HookTimeout })},
}

var checkHookTimeout = duration(MinHookTimeout, MaxHookTimeout, "", "")

// checkWebhookURL validates a webhook URL; its messages never quote the URL, whose path or query
// may carry a receiver's key.
func checkWebhookURL(p *problems, l location, s string) (string, bool) {
	if _, err := notify.CheckURL(s); err != nil {
		p.bad(l, nil, "%s (the URL is not shown, in case it carries a key)", err)
		return "", false
	}
	return s, true
}

// checkWebhookSecret validates a literal signing secret (one or two whsec_ values) without quoting
// it; each value is scrubbed from every message, not only the whole.
func checkWebhookSecret(p *problems, l location, s string) (notify.Secret, bool) {
	p.secret(s)
	for _, f := range strings.Fields(s) {
		p.secret(f)
	}
	sec := notify.NewSecret(s)
	if _, err := notify.ParseKeys(sec); err != nil {
		p.bad(l, err, "%s", err)
		return notify.Secret{}, false
	}
	return sec, true
}

// checkHookCommand splits ROTATOR_HOOK_COMMAND into arguments (notify.SplitCommand).
func checkHookCommand(p *problems, l location, s string) ([]string, bool) {
	args, err := notify.SplitCommand(s)
	if err != nil {
		p.bad(l, nil, "%s", err)
		return nil, false
	}
	return args, true
}

// checkHookStdin accepts the one value of ROTATOR_HOOK_STDIN.
func checkHookStdin(p *problems, l location, s string) (bool, bool) {
	if s != HookStdinToken {
		p.bad(l, nil, "%s is not allowed; the one value is %q (unset: the hook's input is empty)", quote(s), HookStdinToken)
		return false, false
	}
	return true, true
}

// checkNotifyEnv holds the rule between the global push settings: a hook's standard input without
// a hook.
func checkNotifyEnv(p *problems, cfg *Config, vals map[string]value) {
	if v, ok := vals[EnvHookStdin]; ok && v.ok && cfg.Notify.HookCommand == nil {
		p.bad(v.loc, nil, "is set, but %s is not", EnvHookCommand)
		cfg.Notify.HookStdin = false
	}
}

// checkNotify refuses a webhook URL without a signing secret: an unsigned message would tell the
// receiver nothing it could trust.
func checkNotify(cfg *Config, cands []*candidate, p *problems) {
	if cfg.Notify.WebhookSecretID != "" || !cfg.Notify.WebhookSecret.IsZero() {
		return
	}
	for _, c := range cands {
		if c.client.WebhookURL == "" {
			continue
		}
		l := c.loc.with("webhook_url", 0)
		if v, ok := c.get("webhook_url"); ok {
			l = v.loc
		}
		p.bad(l, nil, "is set, but no signing secret is: set %s (or %s, for development)", EnvWebhookSecretID, EnvWebhookSecret)
		return
	}
}
