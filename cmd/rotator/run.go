package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/daemon"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Env is the process environment as run sees it: single variables for the configuration, and the
// whole list for the unknown-variable warnings. Tests pass an envList instead of the real one.
type Env interface {
	Lookup(name string) (string, bool)
	Environ() []string
}

// osEnv is the real environment.
type osEnv struct{}

func (osEnv) Lookup(name string) (string, bool) { return os.LookupEnv(name) }
func (osEnv) Environ() []string                 { return os.Environ() }

// envList is an Env over KEY=VALUE entries; a later entry wins, as in exec.Cmd.Env.
type envList []string

func (e envList) Lookup(name string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func (e envList) Environ() []string { return e }

// usageError is a mistake in the command line or the configuration: exit status 2. hint, when set,
// is printed on a line of its own after the error, e.g. where to find the help.
type usageError struct {
	err  error
	hint string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef is a command-line mistake that points at the command's help.
func usagef(cmd, format string, args ...any) error {
	hint := "Run 'rotator --help' for the commands."
	if cmd != "" {
		hint = "Run 'rotator " + cmd + " --help' for usage."
	}
	return &usageError{err: fmt.Errorf(format, args...), hint: hint}
}

// errReported means the failure was already printed in full: alone, nothing more is printed;
// wrapped, the wrapping message is printed as a summary on stderr.
var errReported = errors.New("failed")

// exitCode prints err once, on stderr, and returns the exit status it stands for.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "rotator: %v\n", err)
		if ue.hint != "" {
			fmt.Fprintln(stderr, ue.hint)
		}
		return 2
	}
	if err != errReported {
		fmt.Fprintf(stderr, "rotator: %s\n", strings.TrimSuffix(err.Error(), ": "+errReported.Error()))
	}
	if errors.Is(err, app.ErrNotDelivered) {
		return exitNotDelivered
	}
	return 1
}

// options are the parsed flags; each command defines only the ones it takes.
type options struct {
	client                    string
	force, asJSON, yes, check bool
	// gateway, for check, checks the configuration of a host that serves `rotator gateway`.
	gateway bool
	// apiClient, with --force, names the API client to ask (1 or 2); 0 lets the decision choose.
	apiClient int
}

func run(ctx context.Context, args []string, env Env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, overview())
		return &usageError{err: errors.New("no command given")}
	}
	name, args := args[0], args[1:]
	if handled, err := builtin(name, args, stdout); handled {
		return err
	}
	cmd, err := findCommand(name)
	if err != nil {
		return err
	}
	o, help, err := cmd.parse(args)
	switch {
	case err != nil:
		return err
	case help:
		fmt.Fprint(stdout, cmd.help())
		return nil
	}

	// Warnings about unknown variables come first, through a logger set up from the logging
	// variables alone, so that they are seen even when the configuration is refused: a typo in a
	// variable's name is often why it is.
	early := earlyLogger(env, stderr)
	warnings := config.Unknown(env.Environ())
	for _, w := range warnings {
		early.Warn(w.String(), "variable", w.Name)
	}

	if cmd.name == "gateway" {
		return runGateway(ctx, env, stderr)
	}
	if cmd.name == "check" && o.gateway {
		return checkGatewayHost(ctx, env, warnings, stdout, stderr)
	}
	if cmd.name == "run" {
		return runDaemon(ctx, env, stderr)
	}
	a, err := build(ctx, env.Lookup, stderr)
	if err != nil {
		return err
	}
	clients, err := a.Select(o.client)
	if err != nil {
		return &usageError{err: err}
	}
	for _, c := range clients {
		if o.apiClient > c.Slots() {
			return usagef(cmd.name, "--api-client %d: API client %d is not configured for client %q (it has %d)", o.apiClient, o.apiClient, c.Name, c.Slots())
		}
	}
	// Deliver: rotate and revoke tell the ERP of each token stored, retried within the run, each
	// final failure logged by the notifier and recorded on the token secret for status. Resume:
	// rotate (from cron, say) tries once more what a run before it recorded as not delivered.
	rec := a.Recorder(nil, a.Log)
	f := &fleet.Fleet{Engine: a.Engine, Guard: a.Guard, Deliver: a.Deliver(a.Log, rec), Resume: a.Resume(a.Log, rec),
		Undelivered: a.Undelivered}
	switch cmd.name {
	case "rotate":
		return rotate(ctx, f, clients, rotation.Request{Force: o.force, Slot: o.apiClient}, o.asJSON, stdout)
	case "status":
		return status(ctx, f, clients, o.asJSON, o.check, stdout)
	case "revoke":
		if !o.yes {
			if err := confirm(stdin, isTerminal(stdin), stderr, clientNames(clients)); err != nil {
				return err
			}
		}
		return revoke(ctx, f, clients, o.asJSON, stdout)
	default:
		return check(ctx, a, clients, warnings, config.IdleGateway(a.Config, env.Lookup), false, stdout)
	}
}

// builtin runs the commands that need neither flags nor configuration (version, help), and reports
// whether name was one of them.
func builtin(name string, args []string, stdout io.Writer) (bool, error) {
	switch name {
	case "version", "--version", "-v":
		switch {
		case len(args) == 1 && isHelpFlag(args[0]):
			fmt.Fprint(stdout, builtinHelp["version"])
			return true, nil
		case len(args) == 1 && args[0] == "--json":
			v, goVersion := versionInfo()
			return true, writeJSON(stdout, struct {
				Version string `json:"version"`
				Go      string `json:"go"`
			}{v, goVersion})
		case len(args) > 0:
			return true, usagef("version", "version takes no arguments but --json")
		}
		fmt.Fprintln(stdout, versionString())
		return true, nil
	case "help", "-h", "--help", "-help":
		switch {
		case len(args) == 0:
			fmt.Fprint(stdout, overview())
			return true, nil
		case len(args) > 1:
			return true, usagef("help", "help takes at most one command")
		case isHelpFlag(args[0]):
			fmt.Fprint(stdout, builtinHelp["help"])
			return true, nil
		}
		// version and help take no configuration, so they are not in the commands table.
		if h, ok := builtinHelp[args[0]]; ok {
			fmt.Fprint(stdout, h)
			return true, nil
		}
		cmd, err := findCommand(args[0])
		if err != nil {
			return true, err
		}
		fmt.Fprint(stdout, cmd.help())
		return true, nil
	}
	return false, nil
}

// runDaemon is `rotator run`. The configuration is loaded once, here, so that a broken one is
// refused before anything starts; the daemon loads it again only on SIGHUP. SIGHUP is caught from
// the start, so that one sent while the daemon starts cannot kill it.
func runDaemon(ctx context.Context, env Env, stderr io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := buildDaemon(ctx, env.Lookup, stderr)
	if err != nil {
		return err
	}
	if idle := config.IdleGateway(a.Config, env.Lookup); len(idle) > 0 {
		a.Log.Warn(config.IdleGatewayText(idle))
	}
	opts := daemon.Options{
		App:  a,
		Load: func(ctx context.Context) (*app.App, error) { return buildDaemon(ctx, env.Lookup, stderr) },
		Log:  a.Log, Reload: hup, Version: versionString(),
	}
	// Push delivery (issue 18): each token a check stores is told to the ERP in the background.
	push := daemon.NewPush(a)
	push.Wire(&opts)
	// With ROTATOR_GATEWAY_ADDR the daemon serves the gateway too, and hands it each token the
	// moment a check stores it; a token the gateway's heal stores is push-delivered as a check's.
	gw, err := startEmbedded(ctx, a, env.Lookup, stderr, push.OnResult)
	if err != nil {
		return err
	}
	if gw != nil {
		opts.OnResult = append(opts.OnResult, func(_ context.Context, c *rotation.Client, r rotation.Result) {
			gw.Stored(c.Name, r.Stored)
		})
		opts.Metrics = append(opts.Metrics, writeMetricsTo(gw))
		opts.Services = append(opts.Services, embeddedGateway{gw})
		opts.OnReload = append(opts.OnReload, reloadEmbedded(gw, a.Config.Gateway,
			func(*app.App) func(context.Context, *rotation.Client, rotation.Result) { return push.OnResult }))
	}
	return daemon.Run(ctx, opts)
}

// earlyLogger logs before the configuration is loaded, with LOG_LEVEL, LOG_FORMAT and NO_COLOR as
// far as they are valid; config.Load reports them when they are not.
func earlyLogger(env Env, stderr io.Writer) *slog.Logger {
	o := logging.Options{}
	if v, ok := env.Lookup(config.EnvLogLevel); ok {
		o.Level, _ = logging.ParseLevel(v)
	}
	if v, ok := env.Lookup(config.EnvLogFormat); ok {
		o.Format, _ = logging.ParseFormat(v)
	}
	v, _ := env.Lookup(config.EnvNoColor)
	o.NoColor = v != ""
	return logging.NewWith(stderr, o)
}

func newLogger(cfg *config.Config, stderr io.Writer) *slog.Logger {
	return logging.NewWith(stderr, logging.Options{Level: cfg.LogLevel, Format: cfg.LogFormat, NoColor: cfg.NoColor})
}

// build loads the configuration and wires the rotator: once for every command, and again on each
// SIGHUP to `rotator run`.
func build(ctx context.Context, lookup config.LookupFunc, stderr io.Writer) (*app.App, error) {
	cfg, err := config.Load(lookup)
	if err != nil {
		return nil, &usageError{err: fmt.Errorf("configuration:\n%w", err), hint: readOnlyGatewayHint(lookup, err)}
	}
	sm, err := app.SecretsManager(ctx)
	if err != nil {
		return nil, &usageError{err: err}
	}
	a, err := app.New(cfg, sm, nil, newLogger(cfg, stderr))
	if err != nil {
		return nil, &usageError{err: err}
	}
	return a, nil
}

// buildDaemon is build for `rotator run`. A daemon that rotated two clients sharing a client secret
// would revoke each one's token with the other's rotation, all day: it refuses to start, and a
// reload keeps the old set. The other commands refuse those clients one by one (the fleet's
// Guard, exit 1), and check reports them with the rest of what it finds.
func buildDaemon(ctx context.Context, lookup config.LookupFunc, stderr io.Writer) (*app.App, error) {
	a, err := build(ctx, lookup, stderr)
	if err != nil {
		return nil, err
	}
	if err := a.SharedSecrets(ctx); err != nil {
		return nil, &usageError{err: fmt.Errorf("configuration:\n%w", err)}
	}
	return a, nil
}

// check validates what can be validated without calling Clear. Unknown variables are listed
// too, since a misspelt one leaves its setting at the default while everything else looks fine.
// Beside each client's secrets it reads what the daemon reads: the gateway's key and TLS pair when
// it serves a gateway, and what push delivery needs (the signing secret, the hook's program).
// gatewayHost is `check --gateway`: a loaded as `rotator gateway` loads it (checkGatewayHost),
// which always serves the gateway. idle are the gateway listener's settings given to a `rotator
// run` that serves none (config.IdleGateway).
func check(ctx context.Context, a *app.App, clients []*rotation.Client, warnings []config.Warning, idle []string, gatewayHost bool, stdout io.Writer) error {
	cfg := a.Config
	if gatewayHost {
		fmt.Fprintf(stdout, "configuration from %s, as rotator gateway loads it: %d client(s), gateway on %s\n", cfg.Source, len(cfg.Clients), cfg.Gateway.Addr)
	} else {
		fmt.Fprintf(stdout, "configuration from %s: %d client(s), schedule %q\n", cfg.Source, len(cfg.Clients), cfg.Schedule)
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if len(idle) > 0 && !gatewayHost {
		fmt.Fprintf(stdout, "warning: %s\n", config.IdleGatewayText(idle))
	}
	failed := checkClients(ctx, a.Engine, clients, stdout)
	failed += checkGateway(ctx, a, gatewayHost || cfg.StartsGateway(), stdout)
	failed += checkDelivery(ctx, a, stdout)
	// Secrets named differently may still hold one value; only reading them tells.
	for _, err := range a.Engine.SharedSecrets(ctx, clients) {
		failed++
		fmt.Fprintf(stdout, "FAIL: %v\n", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d problem(s) found by the check: %w", failed, errReported)
	}
	return nil
}

// checkClients reads each client's secrets, a line each, and returns how many could not be read.
func checkClients(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, stdout io.Writer) int {
	failed := 0
	for _, c := range clients {
		note, err := e.Check(ctx, c)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: FAIL: %v\n", c.Name, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok: %s\n", c.Name, note)
	}
	return failed
}

func clientNames(clients []*rotation.Client) []string {
	names := make([]string, len(clients))
	for i, c := range clients {
		names[i] = c.Name
	}
	return names
}

func versionString() string {
	v, goVersion := versionInfo()
	return fmt.Sprintf("clear-rotator %s (%s)", v, goVersion)
}

// versionInfo is the rotator's version ("dev" when the build did not say) and the Go version it
// was built with ("unknown" when the binary does not say).
func versionInfo() (string, string) {
	v := version
	if v == "" {
		v = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	bi, _ := debug.ReadBuildInfo()
	goVersion := "unknown"
	if bi != nil {
		goVersion = bi.GoVersion
	}
	return v, goVersion
}

// flagSet returns a flag set that prints nothing: run prints every error itself, once.
func flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("rotator "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}
