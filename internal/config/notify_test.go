package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	whsecA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	whsecB = "whsec_c2Vjb25kLXNpZ25pbmcta2V5LWZvci10ZXN0cy0xMjM0NQ=="
)

func TestPushDeliverySettings(t *testing.T) {
	cfg, err := Load(env(with(minimalEnv,
		EnvWebhookURL, "https://erp.example.com/hooks/clear",
		EnvWebhookSecret, whsecA+" "+whsecB,
		EnvHookCommand, `sh -c 'reload-erp "$CLEAR_ROTATOR_VERSION_ID"'`,
		EnvHookStdin, "token",
		EnvHookTimeout, "45s")))
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if cfg.Clients[0].WebhookURL != "https://erp.example.com/hooks/clear" || n.WebhookSecret.Reveal() != whsecA+" "+whsecB ||
		!reflect.DeepEqual(n.HookCommand, []string{"sh", "-c", `reload-erp "$CLEAR_ROTATOR_VERSION_ID"`}) || !n.HookStdin || n.HookTimeout != 45*time.Second {
		t.Fatalf("got %+v, client %+v", n, cfg.Clients[0])
	}
	cfg, err = Load(env(minimalEnv))
	if err != nil || cfg.Notify.HookTimeout != DefaultHookTimeout || cfg.Notify.HookCommand != nil || cfg.Clients[0].WebhookURL != "" {
		t.Fatalf("defaults: %+v, %v", cfg.Notify, err)
	}
}

func TestPushDeliveryPerClientURL(t *testing.T) {
	cfg, err := Parse([]byte(`
clients:
  - {name: a, client_secret: s-a, token_secret_id: t-a, webhook_url: "https://a.example.com/h"}
  - {name: b, client_secret: s-b, token_secret_id: t-b}
`), "f.yaml", env(map[string]string{EnvBaseURL: "https://api.clear.in", EnvWebhookSecretID: "webhook/signing",
		EnvWebhookURL: "https://default.example.com/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clients[0].WebhookURL != "https://a.example.com/h" || cfg.Clients[1].WebhookURL != "https://default.example.com/h" ||
		cfg.Notify.WebhookSecretID != "webhook/signing" {
		t.Fatalf("clients %+v notify %+v", cfg.Clients, cfg.Notify)
	}
}

func TestPushDeliveryRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"url without secret": {with(minimalEnv, EnvWebhookURL, "https://erp.example.com/h"), EnvWebhookURL + " is set, but no signing secret"},
		"http remote":        {with(minimalEnv, EnvWebhookURL, "http://erp.example.com/h?key=k3y", EnvWebhookSecret, whsecA), "http is allowed only for loopback"},
		"both secrets":       {with(minimalEnv, EnvWebhookSecret, whsecA, EnvWebhookSecretID, "x"), "are both set"},
		"malformed secret":   {with(minimalEnv, EnvWebhookSecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "does not start with"},
		"three keys":         {with(minimalEnv, EnvWebhookSecret, whsecA+" "+whsecB+" "+whsecA), "at most 2"},
		"stdin without hook": {with(minimalEnv, EnvHookStdin, "token"), "is set, but " + EnvHookCommand},
		"stdin other":        {with(minimalEnv, EnvHookCommand, "x", EnvHookStdin, "yes"), `"yes" is not allowed`},
		"unbalanced quote":   {with(minimalEnv, EnvHookCommand, "sh -c 'x"), "unterminated"},
		"timeout too long":   {with(minimalEnv, EnvHookCommand, "x", EnvHookTimeout, "1h"), EnvHookTimeout},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			for _, secret := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "k3y"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the message quotes a secret: %v", err)
				}
			}
		})
	}
}

// A signing secret that is set but invalid is reported as invalid, not as missing as well: "no
// signing secret is set" sent the operator looking for a variable that was there (an audit's
// walk-through).
func TestAnInvalidSigningSecretIsNotAlsoMissing(t *testing.T) {
	for _, v := range []string{EnvWebhookSecret, EnvWebhookSecretID} {
		_, err := Load(env(with(minimalEnv, EnvWebhookURL, "https://erp.example.com/h", v, "plain value\x01")))
		if err == nil || strings.Contains(err.Error(), "no signing secret is") || !strings.Contains(err.Error(), v) {
			t.Errorf("%s set but invalid: %v", v, err)
		}
	}
}

func TestPushDeliveryInTheTable(t *testing.T) {
	seen := map[string]Setting{}
	for _, s := range Settings {
		seen[s.Env] = s
	}
	for _, name := range []string{EnvWebhookURL, EnvWebhookSecretID, EnvWebhookSecret, EnvHookCommand, EnvHookStdin, EnvHookTimeout} {
		if _, ok := seen[name]; !ok {
			t.Errorf("%s is not in the table", name)
		}
	}
	if seen[EnvWebhookURL].Key != "webhook_url" || !slices.Contains(table.Keys(), "webhook_url") {
		t.Errorf("webhook_url is not a client key")
	}
	if len(Unknown([]string{EnvHookCommand + "=x", EnvWebhookURL + "=y"})) != 0 {
		t.Errorf("the new variables are reported unknown")
	}
}
