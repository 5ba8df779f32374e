package config

import (
	"slices"
	"sort"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

// Warning is a problem that does not stop the rotator but that an operator
// should hear about: an environment variable it does not know.
type Warning struct {
	Name       string // the variable
	Suggestion string // the known variable it is probably a typo of; "" when none is close
}

// String renders the warning as one line, the name escaped if it does not print.
func (w Warning) String() string {
	msg := "unknown environment variable " + printable(w.Name) + " is ignored"
	if w.Suggestion != "" {
		msg += "; did you mean " + w.Suggestion + "?"
	}
	return msg
}

// foreignEnv are variables with the rotator's prefixes that belong to other
// programs of this project, so that a shared environment does not warn.
var foreignEnv = map[string]bool{
	"ROTATOR_BIN":            true, // the Makefile's path of the binary under test
	"ROTATOR_TEST_BIN":       true, // and of its test build
	"CLEAR_EMULATOR_SECRETS": true, // cmd/clear-emulator
	// What the rotator gives its hook command, which may run rotator itself.
	notify.EnvClient: true, notify.EnvSecretID: true, notify.EnvVersionID: true, notify.EnvValidTill: true,
	notify.EnvAPIClient: true, notify.EnvIssuedAt: true, notify.EnvReason: true, notify.EnvEventID: true,
}

// Unknown returns a warning for every ROTATOR_* or CLEAR_* variable in
// environ (KEY=VALUE entries, as os.Environ returns them) that the rotator
// does not read, sorted by name, each with the closest known name when one is
// close enough to be a likely typo (ROTATOR_DAILY_LIMT), which would otherwise
// pass in silence while its setting keeps the default. Values are never looked
// at, so a warning cannot carry a secret.
func Unknown(environ []string) []Warning {
	var known []string // sorted, so that ties in suggest.Closest do not depend on the table's order
	seen := map[string]bool{}
	for _, s := range Settings {
		known, seen[s.Env] = append(known, s.Env), true
	}
	sort.Strings(known)
	var out []Warning
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] || foreignEnv[name] || !strings.HasPrefix(name, "ROTATOR_") && !strings.HasPrefix(name, "CLEAR_") {
			continue
		}
		seen[name] = true
		out = append(out, Warning{Name: name, Suggestion: suggest.Closest(name, known)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// gatewayListenerOnly are the settings only the gateway's listener reads.
var gatewayListenerOnly = []string{EnvGatewayKey, EnvGatewayKeyGrace, EnvGatewayKeyID, EnvGatewayMaxConns,
	EnvGatewayReplayLimit, EnvGatewayTLSCert, EnvGatewayTLSKey}

// StartsGateway reports whether `rotator run` starts the gateway with c: to serve it on
// ROTATOR_GATEWAY_ADDR, or to send the probes of clients with a ROTATOR_PROBE_PATH. Either way it
// reads the key's secret at start-up.
func (c *Config) StartsGateway() bool {
	return c.Gateway.Addr != "" || slices.ContainsFunc(c.Clients, func(cl Client) bool { return cl.ProbePath != "" })
}

// IdleGateway returns, sorted, the variables set that only the gateway reads when `rotator run`
// starts none with cfg (StartsGateway): they do nothing, which a forgotten address would otherwise
// hide.
func IdleGateway(cfg *Config, lookup LookupFunc) []string {
	if cfg == nil || cfg.StartsGateway() || lookup == nil {
		return nil
	}
	var out []string
	for _, name := range gatewayListenerOnly {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			out = append(out, name)
		}
	}
	return out
}

// IdleGatewayText says what IdleGateway found, naming the variables, never their values.
func IdleGatewayText(names []string) string {
	return strings.Join(names, ", ") + ": set, but " + EnvGatewayAddr + " is not: rotator run serves no gateway, and ignores them"
}
