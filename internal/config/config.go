// Package config loads and validates the rotator's configuration.
//
// The rotator is configured by environment variables, which is enough for the
// common case of one Clear client secret and one token secret. An operator who
// rotates tokens for several clients points ROTATOR_CONFIG at a YAML file with
// a clients: list instead; the per-client environment variables then only give
// defaults for whatever an entry leaves out. The variable and key names below
// are the operator contract, so they must not change:
//
//	CLEAR_BASE_URL            base_url            Clear API base URL; https, or http only for loopback hosts
//	CLEAR_CLIENT_SECRET       client_secret       the client secret itself (for development)
//	CLEAR_CLIENT_SECRET_ID    client_secret_id    or the Secrets Manager name/ARN of a secret holding it
//	CLEAR_CLIENT_SECRET_2     client_secret_2     optional second API client's secret itself
//	CLEAR_CLIENT_SECRET_ID_2  client_secret_id_2  or the Secrets Manager name/ARN of a secret holding it
//	ROTATOR_TOKEN_SECRET_ID   token_secret_id     Secrets Manager name/ARN where the token is kept
//	ROTATOR_DAILY_LIMIT       daily_limit         requests per client secret per UTC day, 1..250, default 48
//	ROTATOR_RENEW_BEFORE      renew_before        renew when this much validity is left; default a third of the lifetime
//	ROTATOR_MAX_AGE           max_age             rotate never-expiring tokens this old (at least 1m); default never
//	ROTATOR_CONFIG                                path of the YAML file (a regular file)
//	ROTATOR_SCHEDULE                              cron spec for the daemon, default "@every 5m"; must fire
//	ROTATOR_HTTP_ADDR                             ops listener, default ":9090"; set but empty disables it
//	ROTATOR_SHUTDOWN_GRACE                        default timing.Lease(CLEAR_TIMEOUT); at least CLEAR_TIMEOUT+30s
//	CLEAR_TIMEOUT                                 one Clear request, default 30s, 1s..120s
//	LOG_LEVEL, LOG_FORMAT                         debug/info/warn/error; text/json (default: text on a terminal)
//	NO_COLOR                                      any non-empty value: no colour in text logs
//
// The table Settings describes the same settings for code: the environment
// path, the YAML path, the unknown-variable warnings (Unknown) and the help
// texts all read it.
//
// Variables are read through a LookupFunc rather than a getenv-style function
// because ROTATOR_HTTP_ADDR has to tell "set but empty" (disable the listener)
// from "unset" (use the default); os.LookupEnv fits directly. For every other
// variable an empty value means unset, which is what shells and container
// runtimes produce when a template variable is missing. Values are trimmed of
// surrounding white space, because a trailing newline copied from a file is a
// common mistake that would otherwise surface as a baffling authentication
// failure much later.
//
// Validation reports every problem at once, each as a *Error joined with
// errors.Join, so that an operator fixes the whole configuration in one go
// rather than one restart per mistake. No message ever contains a client
// secret: literal secrets are never echoed, and as a safety net every message
// is scrubbed of the literal secrets found in the configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// Limits and defaults. They are exported so that help texts and other
// packages quote the same numbers the validation enforces.
const (
	// DefaultDailyLimit allows one request every half hour on average: far
	// more than rotation needs, yet a runaway schedule or a crash loop
	// cannot hammer Clear with one client secret all day.
	DefaultDailyLimit = 48
	// MaxDailyLimit is the most requests per client secret per UTC day the
	// rotator may be configured to allow itself.
	MaxDailyLimit = 250

	DefaultSchedule     = "@every 5m"
	DefaultHTTPAddr     = ":9090"
	DefaultClearTimeout = 30 * time.Second
	// DefaultShutdownGrace is timing.Lease(DefaultClearTimeout): long enough
	// for a rotation claimed just before a SIGTERM to finish. With another
	// CLEAR_TIMEOUT the default is timing.Lease of that timeout.
	DefaultShutdownGrace = 60 * time.Second
	MinClearTimeout      = time.Second
	MaxClearTimeout      = 120 * time.Second

	// MaxFileSize bounds the YAML file, because a configuration is a few
	// kilobytes and anything much larger is a wrong path, not a config.
	MaxFileSize = 1 << 20

	// DefaultClientName names the only client in single-client mode.
	DefaultClientName = "default"
	// SourceEnvironment is Config.Source and Error.Source for settings that
	// come from environment variables.
	SourceEnvironment = "environment"
)

// Environment variable names; see the package documentation.
const (
	EnvBaseURL        = "CLEAR_BASE_URL"
	EnvClientSecret   = "CLEAR_CLIENT_SECRET"
	EnvClientSecretID = "CLEAR_CLIENT_SECRET_ID"
	// The optional second API client of the same Clear workspace, used in
	// turn with the first so that a rotation revokes no token in use.
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
	// EnvNoColor follows https://no-color.org: any non-empty value turns
	// colour off.
	EnvNoColor = "NO_COLOR"
)

// LookupFunc reads one environment variable the way os.LookupEnv does: the
// boolean reports whether the variable is set at all. A nil LookupFunc is an
// empty environment, which keeps tests from depending on the real one.
type LookupFunc func(name string) (value string, ok bool)

// Client is one Clear client secret whose token the rotator keeps fresh.
type Client struct {
	Name           string
	BaseURL        string             // validated, no trailing slash
	ClientSecret   clear.ClientSecret // literal secret, or zero
	ClientSecretID string             // or the Secrets Manager id/ARN holding it
	// ClientSecret2 and ClientSecretID2 are the optional second API client,
	// set like the first (at most one of the two); both zero when there is
	// only one API client.
	ClientSecret2   clear.ClientSecret
	ClientSecretID2 string
	TokenSecretID   string
	DailyLimit      int
	RenewBefore     time.Duration // 0 = a third of lifetime
	MaxAge          time.Duration // 0 = never rotate never-expiring tokens
	WebhookURL      string        // push delivery's webhook; "" for none (see notify.go)
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
	NoColor       bool   // NO_COLOR is set and not empty
	Source        string // "environment" or the YAML path, for messages
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

// Load reads the configuration from the environment, and from the YAML file
// named by ROTATOR_CONFIG when that is set. Pass os.LookupEnv in production.
// On failure the error joins one *Error per problem, including problems with
// the environment when the file cannot be read, so that nothing is hidden
// behind the first mistake.
func Load(lookup LookupFunc) (*Config, error) {
	path, _ := get(lookup, EnvConfig)
	if path == "" {
		return build(lookup, nil)
	}
	data, err := readFile(path)
	if err != nil {
		return build(lookup, &fileInput{source: path, readErr: err})
	}
	return build(lookup, &fileInput{source: path, data: data})
}

// Parse validates yamlData as the YAML file's content, with lookup giving the
// global settings and the defaults for client entries. source names the data
// in messages, usually the file's path. It never reads ROTATOR_CONFIG or the
// file system; it exists so that tests and the fuzzer can exercise exactly
// what Load does with a file.
func Parse(yamlData []byte, source string, lookup LookupFunc) (*Config, error) {
	if source == "" {
		source = "config"
	}
	return build(lookup, &fileInput{source: source, data: yamlData})
}

// readFile reads at most MaxFileSize+1 bytes of a regular file, so that a
// wrong path such as a device or a huge log file is refused quickly instead
// of filling memory the way os.ReadFile would. A named pipe, a device, a
// socket or a directory is refused before anything is read: reading a FIFO
// would block until some other process writes to it, and `check` would hang.
// The file is opened with O_NONBLOCK, which makes opening a FIFO return at
// once, and the type is taken from the open descriptor, so that swapping the
// path for a FIFO between a stat and the open cannot reopen the hang.
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
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: it is %s, not a regular file", errNotRegular, fileKind(fi.Mode()))}
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errNotRegular is the cause when ROTATOR_CONFIG names something other than
// a regular file.
var errNotRegular = errors.New("not a regular file")

// fileKind names the type of a non-regular file for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// fileInput is the YAML side of a build: either the data or why it could not
// be read.
type fileInput struct {
	source  string
	data    []byte
	readErr error
}

// build is the common core of Load and Parse. It collects every problem before
// deciding, so that an error in the environment does not hide one in the file.
func build(lookup LookupFunc, file *fileInput) (*Config, error) {
	var p problems
	cfg := &Config{Source: SourceEnvironment}
	env := parseEnv(lookup, &p, cfg)

	var cands []*candidate
	if file == nil {
		cands = envClient(env, &p)
	} else {
		cfg.Source = file.source
		cands = fileClients(file, env, &p)
	}
	crossCheck(cands, &p)
	checkNotify(cfg, cands, &p)

	if err := p.err(); err != nil {
		return nil, err
	}
	cfg.Clients = make([]Client, len(cands))
	for i, c := range cands {
		cfg.Clients[i] = c.client
	}
	return cfg, nil
}

// ErrNoClients is the cause, for errors.Is, of the problem that a YAML file
// lists no clients; a daemon with nothing to do is a mistake, not a choice.
var ErrNoClients = errors.New("no clients configured")

// location describes where a setting came from, for messages.
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
