// Package config is the rotator's configuration: the table of its settings
// (Settings), the types they fill, and the rules between settings and between
// clients. Package settings reads the table and reports its problems.
//
// The rotator is configured by environment variables, which is enough for the
// common case of one Clear client secret and one token secret. An operator who
// rotates tokens for several clients points ROTATOR_CONFIG at a YAML file with
// a clients: list instead; the per-client environment variables then only give
// defaults for whatever an entry leaves out. Settings is the table of every
// variable and key.
//
// Validation reports every problem at once (see Error), so that an operator
// fixes the whole configuration in one go, and never echoes a client secret.
package config

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/safefile"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/settings"
)

// Client is one Clear client secret whose token the rotator keeps fresh.
type Client struct {
	Name           string
	BaseURL        string             // validated, no trailing slash
	ClientSecret   clear.ClientSecret // literal secret, or zero
	ClientSecretID string             // or the Secrets Manager id/ARN holding it
	// The optional second API client, set like the first; both zero without.
	ClientSecret2   clear.ClientSecret
	ClientSecretID2 string
	TokenSecretID   string
	DailyLimit      int
	RenewBefore     time.Duration // 0 = a third of lifetime
	MaxAge          time.Duration // 0 = never rotate never-expiring tokens
	// GatewayTokenHeader is the header the gateway puts the token in; "" means
	// x-cleartax-auth-token.
	GatewayTokenHeader string
	WebhookURL         string // push delivery's webhook; "" for none
	// ProbePath is a GET below BaseURL sent with the token now and then, so that a token
	// revoked outside the rotator is found; "" for none.
	ProbePath string
}

// Config is the validated configuration.
type Config struct {
	Clients       []Client
	Schedule      string
	HTTPAddr      string // "" disables the ops listener
	ShutdownGrace time.Duration
	ClearTimeout  time.Duration
	LogLevel      slog.Level
	LogFormat     string // "text", "json" or "" (auto)
	NoColor       bool
	Source        string // "environment" or the YAML path, for messages (escaped if it does not print)
	Notify        Notify
	Gateway       Gateway
}

// Notify is the push delivery configuration shared by every client; each
// client's webhook URL is Client.WebhookURL.
type Notify struct {
	// WebhookSecretID names the Secrets Manager secret holding the signing
	// secret; WebhookSecret is the secret itself (for development). At most
	// one is set; one is required when any client has a webhook URL.
	WebhookSecretID string
	WebhookSecret   notify.Secret
	HookCommand     []string // ROTATOR_HOOK_COMMAND split into arguments (notify.SplitCommand); nil for none
	HookStdin       bool     // the hook reads the token document on its standard input
	HookTimeout     time.Duration
}

// Gateway is the gateway's configuration, global to its clients.
type Gateway struct {
	Addr            string            // "" when the gateway is off (rotator run without ROTATOR_GATEWAY_ADDR)
	Key             secret.GatewayKey // literal key (development)
	KeyID           string            // or the Secrets Manager id of the secret holding it
	KeyGrace        time.Duration
	ReplayLimit     int64
	Hold            time.Duration
	UpstreamTimeout time.Duration
	MaxConns        int
	Poll            time.Duration
	ProbeInterval   time.Duration // how often each client's ProbePath is sent
	TLSCert         string
	TLSKey          string
}

// Literals returns the secret values the configuration holds itself (client secrets, the signing
// secret's keys, the gateway key), for redacting what the rotator passes on from elsewhere, such as
// a hook command's output. The ones in Secrets Manager are read where they are used.
func (c *Config) Literals() []string {
	var out []string
	for _, cl := range c.Clients {
		out = append(out, cl.ClientSecret.Reveal(), cl.ClientSecret2.Reveal())
	}
	out = append(out, strings.Fields(c.Notify.WebhookSecret.Reveal())...)
	return append(out, c.Notify.WebhookSecret.Reveal(), c.Gateway.Key.Reveal())
}

// ErrNoClients is the cause, for errors.Is, of a YAML file that lists no
// clients: a daemon with nothing to do is a mistake, not a choice.
var ErrNoClients = settings.ErrNoEntries

// ErrNoClientSecret is the cause of the problem Load reports for a client
// without a client secret (errors.Is finds it in Load's joined error), which
// LoadForGateway accepts: a caller can tell an operator who set up a
// read-only gateway where to turn.
var ErrNoClientSecret = errors.New("no client secret")

// Load reads the configuration from the environment (pass os.LookupEnv), and
// from the YAML file named by ROTATOR_CONFIG when that is set. On failure the
// error joins one *Error per problem, those of the environment included.
func Load(lookup LookupFunc) (*Config, error) { return load(lookup, false) }

// LoadForGateway is Load for `rotator gateway`, which needs no client secret:
// it reads the token secrets only. A client without one is loaded without
// one (the gateway then reports its revocations without healing them); a
// client that has one keeps it, and heals. Its listener defaults to
// DefaultGatewayAddr, where `rotator run` serves no gateway unless told, and its ops listener to
// DefaultGatewayHTTPAddr: it runs beside the ERP, often on its host and next to a daemon.
func LoadForGateway(lookup LookupFunc) (*Config, error) {
	cfg, err := load(lookup, true)
	if err != nil {
		return cfg, err
	}
	if cfg.Gateway.Addr == "" {
		cfg.Gateway.Addr = DefaultGatewayAddr
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	if _, set := lookup(EnvHTTPAddr); !set {
		cfg.HTTPAddr = DefaultGatewayHTTPAddr
	}
	return cfg, nil
}

func load(lookup LookupFunc, noClientSecret bool) (*Config, error) {
	var path string
	if lookup != nil {
		path, _ = lookup(EnvConfig)
		path = strings.TrimSpace(path)
	}
	if path == "" {
		return build(lookup, nil, noClientSecret)
	}
	data, err := safefile.Read(path, MaxFileSize)
	return build(lookup, &settings.File{Source: settings.Printable(path), Data: data, ReadErr: err}, noClientSecret)
}

// Parse validates yamlData as the file's content, as Load does, without
// reading ROTATOR_CONFIG or the file system; source names it in messages.
func Parse(yamlData []byte, source string, lookup LookupFunc) (*Config, error) {
	if source == "" {
		source = "config"
	}
	return build(lookup, &settings.File{Source: settings.Printable(source), Data: yamlData}, false)
}

// candidate is a client under validation: what was read for it, and the
// client made of it.
type candidate struct {
	*settings.Entry
	client Client
}

// build is the core of Load, LoadForGateway and Parse: it reads the table,
// then runs the checks between clients and the rules between settings, so
// that every problem shows at once.
func build(lookup LookupFunc, file *settings.File, noClientSecret bool) (*Config, error) {
	var p settings.Problems
	in := settings.Input{Lookup: lookup, File: file, Single: DefaultClientName}
	if noClientSecret {
		in.Optional = "client_secret"
	}
	env, entries := table.Read(&p, in)
	cfg := &Config{Source: SourceEnvironment}
	if file != nil {
		cfg.Source = file.Source
	}
	table.Apply(cfg, env)
	cands := make([]*candidate, len(entries))
	for i, e := range entries {
		cands[i] = &candidate{Entry: e, client: Client{Name: e.Name}}
		table.Apply(&cands[i].client, e.Values)
	}
	crossCheck(cands, &p)
	for _, rule := range rules {
		rule(&p, cfg, env, cands)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	for _, c := range cands {
		cfg.Clients = append(cfg.Clients, c.client)
	}
	return cfg, nil
}

// ValidName reports whether s can be a client name. What cannot be one is never quoted back by a
// caller looking a name up: it may be a secret pasted into the wrong field.
func ValidName(s string) bool { return settings.ValidName(s) }
