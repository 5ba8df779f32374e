package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/daemon"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `usage: rotator <command> [flags]

Commands:
  run                               run the daemon: check every client on ROTATOR_SCHEDULE
  rotate [--client NAME] [--force] [--json]
                                    rotate now if due (always with --force)
  status [--client NAME] [--json]   show each client's token, budget and errors
  check                             validate the configuration and read each secret; never calls Clear
  version                           print the version

Configuration comes from the environment (see README.md). Exit status: 0 success or nothing to do,
1 failure (including a refusal by the daily limit), 2 usage or configuration error.
`

// usageError is a mistake in the command line or the configuration: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// errReported means the failure was already printed in full.
var errReported = errors.New("failed")

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "rotator: %v\n", err)
		return 2
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "rotator: %v\n", err)
	}
	return 1
}

func run(ctx context.Context, args []string, lookup config.LookupFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{errors.New("no command given")}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "run", "rotate", "status", "check":
	default:
		fmt.Fprint(stderr, usage)
		return &usageError{fmt.Errorf("unknown command %q", cmd)}
	}

	fs := flag.NewFlagSet("rotator "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Each command takes only its own flags, so that a misplaced one (status --force) is a usage
	// error rather than silently ignored.
	var client string
	var force, asJSON bool
	if cmd == "rotate" || cmd == "status" {
		fs.StringVar(&client, "client", "", "only this client (by name)")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	if cmd == "rotate" {
		fs.BoolVar(&force, "force", false, "rotate even if not due; also lifts a 401 block and a backoff")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{err}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	cfg, err := config.Load(lookup)
	if err != nil {
		return &usageError{fmt.Errorf("configuration:\n%w", err)}
	}
	log := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if cmd == "run" {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		return daemon.Run(ctx, daemon.Options{
			Load: func(ctx context.Context) (*app.App, error) { return build(ctx, lookup, stderr) },
			Log:  log, Reload: hup, Version: versionString(),
		})
	}
	sm, err := app.SecretsManager(ctx)
	if err != nil {
		return &usageError{err}
	}
	a, err := app.New(cfg, sm, nil, log)
	if err != nil {
		return &usageError{err}
	}
	clients, err := a.Select(client)
	if err != nil {
		return &usageError{err}
	}
	switch cmd {
	case "rotate":
		return rotate(ctx, a.Engine, clients, force, asJSON, stdout)
	case "status":
		return status(ctx, a.Engine, clients, asJSON, stdout)
	default:
		return check(ctx, a.Engine, clients, cfg, stdout)
	}
}

// build loads the configuration and wires the rotator; the daemon calls it at start and on SIGHUP.
func build(ctx context.Context, lookup config.LookupFunc, stderr io.Writer) (*app.App, error) {
	cfg, err := config.Load(lookup)
	if err != nil {
		return nil, &usageError{fmt.Errorf("configuration:\n%w", err)}
	}
	sm, err := app.SecretsManager(ctx)
	if err != nil {
		return nil, &usageError{err}
	}
	return app.New(cfg, sm, nil, logging.New(stderr, cfg.LogLevel, cfg.LogFormat))
}

func rotate(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, force, asJSON bool, stdout io.Writer) error {
	failed := 0
	var results []rotation.Result
	for _, c := range clients {
		r := e.Rotate(ctx, c, force)
		results = append(results, r)
		if !r.Outcome.OK() {
			failed++
		}
		if !asJSON {
			fmt.Fprintf(stdout, "%s: %s: %s\n", r.Client, r.Outcome, r.Message)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"results": results}); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d client(s) not rotated as asked: %w", failed, len(clients), errReported)
	}
	return nil
}

func status(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, asJSON bool, stdout io.Writer) error {
	statuses := make([]rotation.Status, 0, len(clients))
	var errs []error
	for _, c := range clients {
		s, err := e.Status(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %q: %w", c.Name, err))
			msg := err.Error()
			s.LastError = &msg
		}
		statuses = append(statuses, s)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"clients": statuses}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVALID_TILL\tRENEW_AT\tREQUESTS_TODAY\tBLOCKED_UNTIL\tLAST_ERROR")
		for _, s := range statuses {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", s.Name, timeOr(s.ValidTill, validTillNone(s)), timeOr(s.RenewAt, "never"),
				derefInt(s.RequestsToday), s.DailyLimit, timeOr(s.BlockedUntil, "-"), strOr(s.LastError, "-"))
		}
		tw.Flush()
	}
	return errors.Join(errs...)
}

func validTillNone(s rotation.Status) string {
	if s.HasToken {
		return "never"
	}
	return "no token"
}

func check(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, cfg *config.Config, stdout io.Writer) error {
	fmt.Fprintf(stdout, "configuration from %s: %d client(s), schedule %q\n", cfg.Source, len(cfg.Clients), cfg.Schedule)
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
	if failed > 0 {
		return fmt.Errorf("%d client(s) failed the check: %w", failed, errReported)
	}
	return nil
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

func strOr(s *string, none string) string {
	if s == nil {
		return none
	}
	return strings.ReplaceAll(*s, "\t", " ")
}

func versionString() string {
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
	return fmt.Sprintf("clear-rotator %s (%s)", v, goVersion)
}

func derefInt(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}
