package daemon

import (
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// A reload compares clients by their spec: every setting the engine reads changes the key (the
// client is looked at afresh), while a new webhook URL or gateway header does not (its cache, and
// the delivery of a token stored in the round under way, are kept).
func TestClientKeyIsTheSpecTheEngineReads(t *testing.T) {
	base := config.Client{Name: "erp", BaseURL: "https://api.clear.in", ClientSecret: clear.NewClientSecret("cs1"),
		TokenSecretID: "tok", DailyLimit: 48, WebhookURL: "https://erp.example/hook", GatewayTokenHeader: "x-token"}
	key := func(spec config.Client) clientKey { return keyOf(&rotation.Client{Client: spec}) }
	for name, change := range map[string]func(*config.Client){
		"name":               func(c *config.Client) { c.Name = "other" },
		"base url":           func(c *config.Client) { c.BaseURL = "https://api-sandbox.clear.in" },
		"client secret":      func(c *config.Client) { c.ClientSecret = clear.NewClientSecret("cs2") },
		"client secret id":   func(c *config.Client) { c.ClientSecretID = "cs-id" },
		"client secret 2":    func(c *config.Client) { c.ClientSecret2 = clear.NewClientSecret("cs3") },
		"client secret id 2": func(c *config.Client) { c.ClientSecretID2 = "cs-id-2" },
		"token secret":       func(c *config.Client) { c.TokenSecretID = "tok2" },
		"daily limit":        func(c *config.Client) { c.DailyLimit = 47 },
		"renew before":       func(c *config.Client) { c.RenewBefore = time.Minute },
		"max age":            func(c *config.Client) { c.MaxAge = time.Hour },
	} {
		changed := base
		change(&changed)
		if key(changed) == key(base) {
			t.Errorf("changing the %s leaves the key unchanged", name)
		}
	}
	same := base
	same.WebhookURL, same.GatewayTokenHeader, same.ProbePath = "https://erp.example/other", "x-other", "/v1/probe"
	if key(same) != key(base) {
		t.Error("a new webhook URL, gateway header or probe path changes the key")
	}
}
