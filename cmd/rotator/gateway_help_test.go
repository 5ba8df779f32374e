package main

import (
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/config"
)

// `rotator gateway --help` lists what the gateway reads: its own variables, the ops listener,
// the clients' and the global ones; not the daemon's schedule or shutdown grace, which it ignores.
func TestGatewayHelpListsOnlyWhatItReads(t *testing.T) {
	c, err := findCommand("gateway")
	if err != nil {
		t.Fatal(err)
	}
	h := c.help()
	for _, want := range []string{config.EnvGatewayAddr, config.EnvGatewayKeyID, config.EnvGatewayTokenHeader,
		config.EnvHTTPAddr, config.EnvTokenSecretID, config.EnvBaseURL, config.EnvLogLevel} {
		if !strings.Contains(h, "  "+want) {
			t.Errorf("the gateway's help lacks %s", want)
		}
	}
	for _, unwanted := range []string{config.EnvSchedule, config.EnvShutdownGrace} {
		if strings.Contains(h, "\n  "+unwanted+" ") {
			t.Errorf("the gateway's help lists %s, which it does not read", unwanted)
		}
	}
}

// Every variable that is set is checked by every command that loads the configuration, so an
// invalid ROTATOR_SCHEDULE stops `rotator status` (exit 2): each command's help names every
// variable, those it does not use on a line of their own.
func TestHelpNamesEveryVariableItChecks(t *testing.T) {
	for _, c := range commands {
		h := c.help()
		for _, s := range config.Settings {
			if !strings.Contains(h, s.Env) {
				t.Errorf("rotator %s --help does not name %s, which it checks when it is set", c.name, s.Env)
			}
		}
	}
}
