// Package config loads and validates the rotator's configuration.
//
// The rotator is configured by environment variables, which is enough for the
// common case of one Clear client secret and one token secret. An operator who
// rotates tokens for several clients points ROTATOR_CONFIG at a YAML file with
// a clients: list instead; the per-client environment variables then only give
// defaults for whatever an entry leaves out. Settings is the table of every
// variable and key, which are the operator contract: the environment path, the
// YAML path, the help texts and docs/configuration.md's table all come from it.
//
// Variables are read through a LookupFunc, like os.LookupEnv, because
// ROTATOR_HTTP_ADDR has to tell "set but empty" (disable the listener) from
// "unset" (use the default). For every other variable an empty value means
// unset, which is what shells and container runtimes produce when a template
// variable is missing. Values are trimmed of surrounding white space: a
// trailing newline copied from a file would otherwise surface as a baffling
// authentication failure much later.
//
// Validation reports every problem at once (up to MaxProblems), each as an
// *Error joined with errors.Join, so that an operator fixes the whole
// configuration in one go. No message ever contains a client secret: literal
// secrets are never echoed, and as a safety net every message is scrubbed of
// the literal secrets found in the configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/timing"
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
	MaxClearTimeout      = 120 * time.Second
	DefaultShutdownGrace = 60 * time.Second // timing.Lease(DefaultClearTimeout)
	// MaxFileSize bounds the YAML file, and with it the memory a reload may
	// take: a configuration is a few kilobytes (a thousand clients fit), and
	// anything much larger is a wrong path or an attack.
	MaxFileSize       = 256 << 10
	DefaultClientName = "default" // the only client in single-client mode
	SourceEnvironment = "environment"
)

// Environment variable names; Settings says what each one does.
const (
	EnvBaseURL         = "CLEAR_BASE_URL"
	EnvClientSecret    = "CLEAR_CLIENT_SECRET"
	EnvClientSecretID  = "CLEAR_CLIENT_SECRET_ID"
	EnvClientSecret2   = "CLEAR_CLIENT_SECRET_2"
	EnvClientSecretID2 = "CLEAR_CLIENT_SECRET_ID_2"
	EnvTokenSecretID   = "ROTATOR_TOKEN_SECRET_ID"
	EnvDailyLimit      = "ROTATOR_DAILY_LIMIT"
	EnvRenewBefore     = "ROTATOR_RENEW_BEFORE"
	EnvMaxAge          = "ROTATOR_MAX_AGE"
	EnvConfig          = "ROTATOR_CONFIG"
	EnvSchedule        = "ROTATOR_SCHEDULE"
	EnvHTTPAddr        = "ROTATOR_HTTP_ADDR"
	EnvShutdownGrace   = "ROTATOR_SHUTDOWN_GRACE"
	EnvClearTimeout    = "CLEAR_TIMEOUT"
	EnvLogLevel        = "LOG_LEVEL"
	EnvLogFormat       = "LOG_FORMAT"
	EnvNoColor         = "NO_COLOR" // https://no-color.org
)

// LookupFunc reads one environment variable the way os.LookupEnv does. A nil
// LookupFunc is an empty environment, which keeps tests off the real one.
type LookupFunc func(name string) (value string, ok bool)

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
	WebhookURL         string // push delivery's webhook; "" for none (see notify.go)
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
	Notify        Notify // push delivery (see notify.go)
}

// Client returns the client with the given name.
func (c *Config) Client(name string) (Client, bool) {
	for _, cl := range c.Clients {
		if cl.Name == name {
			return cl, true
		}
	}
	return Client{}, false
}

// ErrNoClients is the cause, for errors.Is, of a YAML file that lists no
// clients: a daemon with nothing to do is a mistake, not a choice.
var ErrNoClients = errors.New("no clients configured")

// Load reads the configuration from the environment (pass os.LookupEnv), and
// from the YAML file named by ROTATOR_CONFIG when that is set. On failure the
// error joins one *Error per problem, those of the environment included.
func Load(lookup LookupFunc) (*Config, error) {
	var path string
	if lookup != nil {
		path, _ = lookup(EnvConfig)
		path = strings.TrimSpace(path)
	}
	if path == "" {
		return build(lookup, nil)
	}
	data, err := readFile(path)
	return build(lookup, &fileInput{source: printable(path), data: data, readErr: err})
}

// Parse validates yamlData as the file's content, as Load does, without
// reading ROTATOR_CONFIG or the file system; source names it in messages.
func Parse(yamlData []byte, source string, lookup LookupFunc) (*Config, error) {
	if source == "" {
		source = "config"
	}
	return build(lookup, &fileInput{source: printable(source), data: yamlData})
}

// errNotRegular is the cause when ROTATOR_CONFIG names something other than
// a regular file.
var errNotRegular = errors.New("not a regular file")

// readFile reads at most MaxFileSize+1 bytes of a regular file. A FIFO, a
// device, a socket or a directory is refused before anything is read (a FIFO
// would block `check` until someone writes to it); O_NONBLOCK makes opening a
// FIFO return at once, and the type comes from the open descriptor, so that
// swapping the path between a stat and the open cannot reopen the hang.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if m := fi.Mode(); !m.IsRegular() {
		kind := "a special file"
		for _, k := range []struct {
			mode fs.FileMode
			name string
		}{{fs.ModeDir, "a directory"}, {fs.ModeNamedPipe, "a named pipe (FIFO)"}, {fs.ModeSocket, "a socket"}, {fs.ModeDevice, "a device"}} {
			if m&k.mode != 0 {
				kind = k.name
				break
			}
		}
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: it is %s, not a regular file", errNotRegular, kind)}
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, io.LimitReader(f, MaxFileSize+1))
	return buf.Bytes(), err
}

// fileInput is the YAML side of a build: the data, or why it could not be read.
type fileInput struct {
	source  string
	data    []byte
	readErr error
}

// build is the core of Load and Parse. It collects every problem before
// deciding, so that an error in the environment does not hide one in the file.
func build(lookup LookupFunc, file *fileInput) (*Config, error) {
	var p problems
	cfg := &Config{Source: SourceEnvironment}
	env := parseEnv(lookup, &p, cfg)
	var cands []*candidate
	if file == nil {
		c := &candidate{loc: location{source: SourceEnvironment}, nameOK: true}
		c.client.Name = DefaultClientName
		c.assemble(&p, nil, env)
		cands = []*candidate{c}
	} else {
		cfg.Source = file.source
		cands = fileClients(file, env, &p)
	}
	crossCheck(cands, &p)
	checkNotify(cfg, cands, &p)
	if err := p.err(); err != nil {
		return nil, err
	}
	for _, c := range cands {
		cfg.Clients = append(cfg.Clients, c.client)
	}
	return cfg, nil
}

// parseEnv validates every variable that is set, in both modes (an invalid
// default is an error even if every entry overrides it: the operator meant
// something by it), fills in cfg's global settings, and returns the values by
// variable for the clients.
func parseEnv(lookup LookupFunc, p *problems, cfg *Config) map[string]value {
	vals := map[string]value{}
	for i := range Settings {
		s := &Settings[i]
		var raw string
		set := false
		if lookup != nil {
			raw, set = lookup(s.Env)
		}
		v := strings.TrimSpace(raw)
		if s.Secret {
			p.secret(v)
		}
		if s.parse != nil && (v != "" || set && s.KeepEmpty) {
			l := location{source: SourceEnvironment, field: s.Env}
			x, ok := s.parse(p, l, v)
			vals[s.Env] = value{x, ok, l, ""}
		}
		if x := vals[s.Env]; s.config != nil && x.ok {
			s.config(cfg, x.v)
		} else if s.config != nil && s.Default != nil {
			s.config(cfg, s.Default)
		}
	}
	for _, g := range settingGroups {
		var given []*Setting
		for _, s := range g {
			if _, ok := vals[s.Env]; ok {
				given = append(given, s)
			}
		}
		if len(given) > 1 {
			p.add(vals[given[0].Env].loc, nil, given[0].Env+" and "+given[1].Env+" are both set; set exactly one")
			for _, s := range given {
				vals[s.Env] = value{loc: vals[s.Env].loc} // used by no client
			}
		}
	}
	// A SIGTERM must leave time for a request already sent and the write of
	// its answer, or a token that Clear has issued (revoking the ERP's) is lost.
	switch grace, least := vals[EnvShutdownGrace], timing.MinShutdownGrace(cfg.ClearTimeout); {
	case !grace.ok:
		cfg.ShutdownGrace = timing.Lease(cfg.ClearTimeout)
	case cfg.ShutdownGrace < least:
		p.bad(grace.loc, nil, "%s is below %s (%s %s plus %s to store the token): stopping a rotation sooner could lose a token that Clear has issued, and with it the token in use; leave it unset for the default %s",
			cfg.ShutdownGrace, least, EnvClearTimeout, cfg.ClearTimeout, timing.WriteWindow, timing.Lease(cfg.ClearTimeout))
	}
	checkNotifyEnv(p, cfg, vals)
	return vals
}

// location says where a setting came from, for messages.
type location struct {
	source string
	line   int
	client string
	entry  int
	field  string
}

func (l location) with(field string, line int) location {
	l.field = field
	if line > 0 {
		l.line = line
	}
	return l
}
