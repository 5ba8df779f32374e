package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

// command describes one subcommand: its flags and everything its help shows.
type command struct {
	name     string
	synopsis string // what follows the name in the usage line
	summary  string // one line, for the overview
	about    string // what it does, in full sentences
	flags    func(fs *flag.FlagSet, o *options)
	daemon   bool // it also reads the daemon-only variables
	// reads, when set, says which variables the command reads, in place of daemon.
	reads   func(s config.Setting) bool
	example string
	exits   string
}

const exitsCommon = `  0  success, or nothing to do
  1  failure (including a refusal by the daily limit)
  2  usage or configuration error`

// exitsNotDelivered is the exit status of a command that stores tokens, when push delivery failed.
const exitsNotDelivered = `
  3  rotated, not delivered: every token was stored, but the webhook or the hook
     command failed after its retries, or the command was stopped while it
     delivered (the log says which); the token in Secrets Manager is good, and
     ERPs that re-read it get it`

// exitsResumed is rotate's other exit status 3: it tells the ERP of a token an earlier run did not.
const exitsResumed = `. It also exits 3 when it tried once more a delivery
     recorded as failed by an earlier run, and it failed again`

func clientFlag(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.client, "client", "", "only the client with this `NAME` (default: every configured client)")
}

func jsonFlag(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.asJSON, "json", false, "print JSON instead of text")
}

var commands = []*command{
	{
		name:     "run",
		summary:  "run the daemon: check every client on ROTATOR_SCHEDULE",
		about:    "Runs until SIGTERM or SIGINT, checking every client on ROTATOR_SCHEDULE and rotating each token that is due. It serves /healthz, /readyz and /metrics on ROTATOR_HTTP_ADDR. SIGHUP reloads the configuration. With ROTATOR_GATEWAY_ADDR set it also serves the Clear gateway (see rotator gateway --help), handing it each token the moment it is stored; a SIGHUP gives the gateway the reloaded clients too (its own ROTATOR_GATEWAY_* settings change at a restart).",
		flags:    func(*flag.FlagSet, *options) {},
		daemon:   true,
		example:  "  ROTATOR_HTTP_ADDR=127.0.0.1:9090 rotator run",
		exits:    "  0  stopped by a signal after finishing any rotation in progress\n  1  failure\n  2  configuration error",
		synopsis: "",
	},
	{
		name:     "rotate",
		synopsis: "[--client NAME] [--force [--api-client N]] [--json]",
		summary:  "rotate now if due (always with --force)",
		about:    "Checks each client once and asks Clear for a new token when it is due. Every new token revokes the previous token of the same client secret.",
		flags: func(fs *flag.FlagSet, o *options) {
			clientFlag(fs, o)
			fs.BoolVar(&o.force, "force", false, "rotate even if not due; also lifts a 401 block and a backoff")
			fs.IntVar(&o.apiClient, "api-client", 0, "with --force and two API clients: ask this one (1 or 2), even one whose token consumers may still hold (a force otherwise refuses to)")
			jsonFlag(fs, o)
		},
		example: "  rotator rotate --client erp-a --force",
		exits:   exitsCommon + exitsNotDelivered + exitsResumed,
	},
	{
		name:     "status",
		synopsis: "[--client NAME] [--json] [--check]",
		summary:  "show each client's state, token, budget and errors",
		about: "Reads each client's token and state from Secrets Manager and shows the decision a rotation would make, without calling Clear or writing anything. " +
			"STATE is one of ok, expiring (due now), in-flight, degraded (one of two API clients unusable), expired, no-token, token-lost, blocked, limited, backing-off, or unknown (could not be read). " +
			"What could not be read is ? in the table and null in --json; times in the table are relative, in --json RFC 3339.",
		flags: func(fs *flag.FlagSet, o *options) {
			clientFlag(fs, o)
			jsonFlag(fs, o)
			fs.BoolVar(&o.check, "check", false, "exit 1 when any client's state is not ok, expiring or in-flight, or its token's push delivery is pending (for cron or Nagios)")
		},
		example: "  rotator status --json\n  rotator status --check || page-someone",
		exits:   "  0  every client could be read (and, with --check, is ok)\n  1  some client could not be read (or, with --check, is not ok, or not delivered)\n  2  usage or configuration error",
	},
	{
		name:     "revoke",
		synopsis: "[--client NAME] [--yes] [--json]",
		summary:  "revoke every token issued, for an incident such as a leaked token",
		about:    "Asks every configured API client of each client for a new token, which revokes at Clear every token the rotator stored, and stores the last one as AWSCURRENT. An API client that cannot be asked does not stop the others; the command then fails naming every API client whose tokens may still be live. ERP systems holding an old token lose access until they re-read the secret. On a terminal it asks for confirmation; elsewhere it needs --yes.",
		flags: func(fs *flag.FlagSet, o *options) {
			clientFlag(fs, o)
			fs.BoolVar(&o.yes, "yes", false, "do not ask for confirmation (needed when stdin is not a terminal)")
			jsonFlag(fs, o)
		},
		example: "  rotator revoke --client erp-a --yes",
		exits:   "  0  every token revoked and a new one stored\n  1  failure (an API client whose tokens may still be live), or not confirmed\n  2  usage or configuration error, or --yes missing without a terminal" + exitsNotDelivered,
	},
	{
		name:    "gateway",
		summary: "serve the Clear gateway: ERPs call Clear through it and hold no token",
		about: "Serves the Clear gateway on ROTATOR_GATEWAY_ADDR until SIGTERM or SIGINT: every request (any method but TRACE, TRACK and CONNECT, any path, query and body) goes to the client's CLEAR_BASE_URL with the live token from the token secret in x-cleartax-auth-token (or ROTATOR_GATEWAY_TOKEN_HEADER). " +
			"After a 401 from Clear it waits for a newer token and sends the request once more, when its body was buffered whole (ROTATOR_GATEWAY_REPLAY_LIMIT). " +
			"With no live token it answers 503 with Retry-After. It needs read access to the token secret only (and to ROTATOR_GATEWAY_KEY_ID's secret); with a client secret configured it also asks for one forced rotation when a token is revoked outside the rotator. " +
			"Callers send the key in x-clear-rotator-key, and with several clients the client's name in x-clear-rotator-client. Listening on anything but loopback without a key is refused. " +
			"/healthz, /readyz and /metrics are served on ROTATOR_HTTP_ADDR. SIGHUP reloads the clients (its own ROTATOR_GATEWAY_* settings change at a restart). " +
			"It runs Go on one processor unless GOMAXPROCS is set.",
		flags:   func(*flag.FlagSet, *options) {},
		reads:   gatewayReads,
		example: "  ROTATOR_GATEWAY_ADDR=127.0.0.1:8480 ROTATOR_TOKEN_SECRET_ID=tokens/erp CLEAR_BASE_URL=https://api.clear.in rotator gateway\n  curl -H 'x-clear-rotator-key: ...' http://127.0.0.1:8480/integration/v1/...",
		exits:   "  0  stopped by a signal after the requests in flight\n  1  failure (the key's secret unreadable, the TLS certificate or key, the listener)\n  2  configuration error, including a non-loopback listener without a key",
	},
	{
		name:     "check",
		synopsis: "[--gateway]",
		summary:  "validate the configuration and read each secret; never calls Clear",
		about: "Validates the configuration, names environment variables the rotator does not know, and reads each client's secrets from Secrets Manager. " +
			"It reads the webhook signing secret (ROTATOR_WEBHOOK_SECRET_ID) and parses it as a webhook's delivery does, looks the hook command's program (ROTATOR_HOOK_COMMAND) up in PATH without running it, " +
			"reads the gateway's key secret (ROTATOR_GATEWAY_KEY_ID) when rotator run would serve the gateway (ROTATOR_GATEWAY_ADDR, or a client's ROTATOR_PROBE_PATH), and loads the gateway's TLS certificate and key when they are set. " +
			"Each is a line, ok or FAIL; no line shows a secret's value. It never calls Clear, so it spends no requests. " +
			"With --gateway it checks a host that serves rotator gateway instead: it loads the configuration as rotator gateway does, where a client secret is optional (a gateway without one only reads the token secret, and cannot force a rotation), " +
			"and reads each token secret, each client secret that is configured, the gateway's key secret, the TLS pair, and what push delivery reads.",
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.gateway, "gateway", false, "check a host that serves rotator gateway, as it loads the configuration (a client secret is optional)")
		},
		daemon:  true, // it checks every setting, and loads the gateway's TLS pair (with --gateway, what rotator gateway reads)
		example: "  ROTATOR_CONFIG=clients.yaml rotator check\n  ROTATOR_TOKEN_SECRET_ID=tokens/erp CLEAR_BASE_URL=https://api.clear.in ROTATOR_GATEWAY_KEY_ID=gateway/key rotator check --gateway",
		exits: "  0  the configuration is valid and every secret could be read\n" +
			"  1  some secret could not be read or holds no usable value (a client's, the signing secret,\n     the gateway's key), the gateway's TLS certificate and key do not load, or the hook\n     command's program cannot be found or run\n" +
			"  2  usage or configuration error",
	},
}

// builtinHelp is the help of the commands that read no configuration and take no flags, version
// and help, which are not in the commands table.
var builtinHelp = map[string]string{
	"version": `usage: rotator version [--json]

Prints the rotator's version and the Go version it was built with. It reads no configuration and
calls nothing.

Flags:
  -h, --help  show this help
  --json      print {"version": ..., "go": ...}

Example:
  rotator version
  rotator version --json

Exit status:
  0  success
  2  usage error
`,
	"help": `usage: rotator help [COMMAND]

Prints the overview of the commands, or COMMAND's help (the same as rotator COMMAND --help), on
stdout. It reads no configuration and calls nothing.

Flags:
  -h, --help  show this help

Example:
  rotator help rotate

Exit status:
  0  success
  2  usage error (an unknown command)
`,
}

// isHelpFlag reports whether arg asks for help: -h, --help or -help.
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// overview is the help of `rotator --help`.
func overview() string {
	var b strings.Builder
	b.WriteString("usage: rotator <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  version\tprint the version\n")
	fmt.Fprintf(tw, "  help [COMMAND]\tshow this help, or a command's\n")
	tw.Flush()
	b.WriteString("\nRun 'rotator COMMAND --help' for a command's flags, variables and exit codes.\n")
	b.WriteString("Configuration comes from the environment (see docs/configuration.md). Exit status: 0 success or nothing to do,\n" +
		"1 failure (including a refusal by the daily limit), 2 usage or configuration error, 3 from rotate and revoke:\n" +
		"every token stored, but its webhook or hook command failed (rotated, not delivered).\n")
	return b.String()
}

func commandNames() []string {
	names := []string{"version", "help"}
	for _, c := range commands {
		names = append(names, c.name)
	}
	return names
}

// findCommand returns the command called name, or a usage error that suggests the closest one.
func findCommand(name string) (*command, error) {
	for _, c := range commands {
		if c.name == name {
			return c, nil
		}
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if s := suggest.Closest(name, commandNames()); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return nil, usagef("", "%s", msg)
}

// parse parses the command's flags. It finds unknown and incomplete flags itself, before the
// flag package does, so that the error names the flag as the help shows it (--force, not
// -force) and suggests the closest flag; help reports -h, --help or -help.
func (c *command) parse(args []string) (o options, help bool, err error) {
	fs := flagSet(c.name)
	c.flags(fs, &o)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break // the flag package stops here too
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			return o, true, nil
		}
		f := fs.Lookup(name)
		if f == nil {
			msg := fmt.Sprintf("%s does not take the flag --%s", c.name, name)
			switch s := suggest.Closest("--"+name, names); {
			case s != "":
				msg += "; did you mean " + s + "?"
			case len(names) == 0:
				msg += "; it takes no flags"
			}
			return o, false, usagef(c.name, "%s", msg)
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return o, false, usagef(c.name, "flag --%s needs a value", name)
			}
			i++
		}
	}
	if err := fs.Parse(args); err != nil {
		return o, false, usagef(c.name, "%s", strings.ReplaceAll(err.Error(), " -", " --"))
	}
	if fs.NArg() > 0 {
		return o, false, usagef(c.name, "%s takes no arguments, but got %q", c.name, fs.Arg(0))
	}
	return o, false, c.check(fs, o)
}

// check refuses flags that parsed but do not go together.
func (c *command) check(fs *flag.FlagSet, o options) error {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "client" })
	switch {
	case given && strings.TrimSpace(o.client) == "":
		// As a script's --client "$NAME" with NAME unset: "" selects every client, and revoke --yes
		// or rotate --force would act on all of them.
		return usagef(c.name, "--client needs a client's name; leave the flag out for every client")
	case o.apiClient != 0 && !o.force:
		return usagef(c.name, "--api-client goes with --force")
	case o.apiClient < 0 || o.apiClient > 2:
		return usagef(c.name, "--api-client is 1 or 2, not %d", o.apiClient)
	}
	return nil
}

// help renders the command's help: usage, what it does, flags, the variables it reads, an
// example and the exit codes.
func (c *command) help() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: rotator %s", c.name)
	if c.synopsis != "" {
		fmt.Fprintf(&b, " %s", c.synopsis)
	}
	fmt.Fprintf(&b, "\n\n%s\n", wrap(c.about, 96))

	var o options
	fs := flagSet(c.name)
	c.flags(fs, &o)
	b.WriteString("\nFlags:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, arg, usage)
	})
	fmt.Fprintf(tw, "  -h, --help\tshow this help\n")
	tw.Flush()

	b.WriteString("\nEnvironment:\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	var unused []string
	for _, s := range config.Settings {
		if c.reads != nil && !c.reads(s) || c.reads == nil && s.Scope == config.DaemonOnly && !c.daemon {
			unused = append(unused, s.Env)
			continue
		}
		var notes []string
		if d := s.DefaultText(); d != "" {
			notes = append(notes, "default "+d)
		}
		if s.Limits != "" {
			notes = append(notes, s.Limits)
		}
		line := s.Help
		if len(notes) > 0 {
			line += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s.Env, line)
	}
	tw.Flush()
	if len(unused) > 0 {
		// Every variable that is set is validated by every command that loads the configuration.
		fmt.Fprintf(&b, "%s\n", indent(wrap("Not used by this command, but checked when set (an invalid value is a configuration error): "+
			strings.Join(unused, ", ")+".", 94), "  "))
	}
	b.WriteString("  Any other ROTATOR_* or CLEAR_* variable is reported as unknown at start-up.\n")

	fmt.Fprintf(&b, "\nExample:\n%s\n\nExit status:\n%s\n", c.example, c.exits)
	return b.String()
}

// indent puts prefix before every line of text.
func indent(text, prefix string) string {
	return prefix + strings.ReplaceAll(text, "\n", "\n"+prefix)
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
