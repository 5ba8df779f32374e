package config

import (
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) LookupFunc {
	m := map[string]string{}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

func TestLoadGateway(t *testing.T) {
	const key = "a-key-of-at-least-16-chars"
	for name, tc := range map[string]struct {
		env        []string
		standalone bool
		want       func(g *Gateway) bool
		err        string
	}{
		"standalone defaults": {standalone: true, want: func(g *Gateway) bool {
			return g.Addr == DefaultGatewayAddr && g.ReplayLimit == 1<<20 && g.Hold == 10*time.Second && g.KeyGrace == 15*time.Minute
		}},
		"embedded is off by default":   {want: func(g *Gateway) bool { return g.Addr == "" }},
		"all interfaces without a key": {env: []string{EnvGatewayAddr + "=:8480"}, err: "not a loopback address, and no key"},
		"all interfaces with a key": {env: []string{EnvGatewayAddr + "=0.0.0.0:8480", EnvGatewayKey + "=" + key},
			want: func(g *Gateway) bool { return g.Key == key }},
		"key id":        {env: []string{EnvGatewayAddr + "=:8480", EnvGatewayKeyID + "=gateway/key"}, want: func(g *Gateway) bool { return g.KeyID == "gateway/key" }},
		"both keys":     {env: []string{EnvGatewayKey + "=" + key, EnvGatewayKeyID + "=k"}, err: "both set"},
		"short key":     {env: []string{EnvGatewayKey + "=xyz12"}, err: "too short"},
		"replay limit":  {env: []string{EnvGatewayReplayLimit + "=0"}, err: "1..67108864"},
		"hold too long": {env: []string{EnvGatewayHold + "=5m"}, err: "out of range"},
		"tls half":      {env: []string{EnvGatewayTLSCert + "=/c.pem"}, err: "must be set together"},
		"bad addr":      {env: []string{EnvGatewayAddr + "=nope"}, err: "not a listen address"},
		"localhost":     {env: []string{EnvGatewayAddr + "=localhost:1"}, want: func(g *Gateway) bool { return g.Addr == "localhost:1" }},
	} {
		g, err := LoadGateway(envOf(tc.env...), tc.standalone)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", name, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.err == "" && !tc.want(g):
			t.Errorf("%s: got %+v", name, g)
		}
		if err != nil && strings.Contains(err.Error(), key) {
			t.Errorf("%s: the key leaked into the message", name)
		}
	}
}

func TestLoadForGatewayNeedsNoClientSecret(t *testing.T) {
	env := envOf(EnvBaseURL+"=https://api.clear.in", EnvTokenSecretID+"=tokens/erp", EnvGatewayTokenHeader+"=X-Clear-Auth-Token")
	cfg, err := LoadForGateway(env)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clients[0]
	if !c.ClientSecret.IsZero() || c.ClientSecretID != "" || c.GatewayTokenHeader != "x-clear-auth-token" {
		t.Fatalf("got %+v", c)
	}
	if _, err := Load(env); err == nil {
		t.Fatal("Load accepted a configuration without a client secret")
	}
	if _, err := LoadForGateway(envOf(EnvBaseURL+"=https://api.clear.in", EnvTokenSecretID+"=t", EnvGatewayTokenHeader+"=bad header")); err == nil {
		t.Fatal("a bad header name was accepted")
	}
}
