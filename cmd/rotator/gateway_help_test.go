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
		if strings.Contains(h, unwanted) {
			t.Errorf("the gateway's help lists %s, which it does not read", unwanted)
		}
	}
}
