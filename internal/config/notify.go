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

// checkWebhookURL validates a webhook URL; its messages never quote the URL, whose path or query
// may carry a receiver's key.
func checkWebhookURL(p *problems, l location, s string) (string, bool) {
	if _, err := notify.CheckURL(s); err != nil {
		p.bad(l, nil, "%s (the URL is not shown, in case it carries a key)", err)
		return "", false
	}
	return s, true
}

// parseNotify reads the global push delivery settings into cfg.Notify.
func parseNotify(lookup LookupFunc, p *problems, cfg *Config) {
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }
	val := func(name string) (string, bool) {
		v, _ := get(lookup, name)
		return v, v != ""
	}
	n := &cfg.Notify
	n.HookTimeout = DefaultHookTimeout

	lit, hasLit := val(EnvWebhookSecret)
	id, hasID := val(EnvWebhookSecretID)
	p.secret(lit)
	for _, f := range strings.Fields(lit) {
		p.secret(f)
	}
	switch {
	case hasLit && hasID:
		p.add(at(EnvWebhookSecret), nil, EnvWebhookSecret+" and "+EnvWebhookSecretID+" are both set; set exactly one")
	case hasLit:
		if _, err := notify.ParseKeys(notify.NewSecret(lit)); err != nil {
			p.bad(at(EnvWebhookSecret), err, "%s", err)
		} else {
			n.WebhookSecret = notify.NewSecret(lit)
		}
	case hasID:
		if ref, ok := checkSecretID(p, at(EnvWebhookSecretID), id, false); ok {
			n.WebhookSecretID = ref.raw
		}
	}

	if s, ok := val(EnvHookCommand); ok {
		if args, err := notify.SplitCommand(s); err != nil {
			p.bad(at(EnvHookCommand), nil, "%s", err)
		} else {
			n.HookCommand = args
		}
	}
	if s, ok := val(EnvHookStdin); ok {
		switch {
		case s != HookStdinToken:
			p.bad(at(EnvHookStdin), nil, "%s is not allowed; the one value is %q (unset: the hook's input is empty)", quote(s), HookStdinToken)
		case n.HookCommand == nil:
			p.bad(at(EnvHookStdin), nil, "is set, but %s is not", EnvHookCommand)
		default:
			n.HookStdin = true
		}
	}
	if s, ok := val(EnvHookTimeout); ok {
		if v, ok := checkDuration(p, at(EnvHookTimeout), s, MinHookTimeout, MaxHookTimeout); ok {
			n.HookTimeout = v
		}
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
		l, ok := c.locs["webhook_url"]
		if !ok {
			l = c.loc.with("webhook_url", 0)
		}
		p.bad(l, nil, "is set, but no signing secret is: set %s (or %s, for development)", EnvWebhookSecretID, EnvWebhookSecret)
		return
	}
}
