package config

import (
	"slices"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/notify"
)

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
// does not read; see settings.Table.Unknown.
func Unknown(environ []string) []Warning { return table.Unknown(environ) }

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
