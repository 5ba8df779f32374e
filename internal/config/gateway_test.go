package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// TestLoadGateway: the gateway's global settings are rows of the table like any other, read by
// Load (the gateway `rotator run` embeds, off unless ROTATOR_GATEWAY_ADDR is set) and by
// LoadForGateway (`rotator gateway`, whose listener defaults to DefaultGatewayAddr).
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
			want: func(g *Gateway) bool { return g.Key.Reveal() == key }},
		"key id":        {env: []string{EnvGatewayAddr + "=:8480", EnvGatewayKeyID + "=gateway/key"}, want: func(g *Gateway) bool { return g.KeyID == "gateway/key" }},
		"both keys":     {env: []string{EnvGatewayKey + "=" + key, EnvGatewayKeyID + "=k"}, err: "both set"},
		"short key":     {env: []string{EnvGatewayKey + "=xyz12"}, err: "too short"},
		"replay limit":  {env: []string{EnvGatewayReplayLimit + "=0"}, err: "1..67108864"},
		"hold too long": {env: []string{EnvGatewayHold + "=5m"}, err: "out of range"},
		"tls half":      {env: []string{EnvGatewayTLSCert + "=/c.pem"}, err: "must be set together"},
		"bad addr":      {env: []string{EnvGatewayAddr + "=nope"}, err: "not a listen address"},
		"localhost":     {env: []string{EnvGatewayAddr + "=localhost:1"}, want: func(g *Gateway) bool { return g.Addr == "localhost:1" }},
	} {
		load := Load
		if tc.standalone {
			load = LoadForGateway
		}
		var g *Gateway
		cfg, err := load(envOf(append([]string{EnvBaseURL + "=https://api.example.com", EnvClientSecretID + "=clear/cs",
			EnvTokenSecretID + "=clear/tok"}, tc.env...)...))
		if err == nil {
			g = &cfg.Gateway
		}
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

// A standalone gateway runs beside the ERP, often on its host, next to a daemon: its ops listener
// defaults to loopback, on a port of its own, as its gateway listener does (an audit's walk-through
// found /metrics on every interface at :9090, and a second process refused the port). Set, it is
// what it says, empty included (off).
func TestLoadForGatewayOpsListenerOnLoopback(t *testing.T) {
	base := []string{EnvBaseURL + "=https://api.clear.in", EnvTokenSecretID + "=tokens/erp"}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, DefaultGatewayHTTPAddr},
		{[]string{EnvHTTPAddr + "=:9191"}, ":9191"},
		{[]string{EnvHTTPAddr + "="}, ""},
	} {
		cfg, err := LoadForGateway(envOf(append(base, tc.env...)...))
		if err != nil || cfg.HTTPAddr != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.env, cfg.HTTPAddr, err, tc.want)
		}
	}
	if DefaultGatewayHTTPAddr != "127.0.0.1:9480" {
		t.Errorf("the default is %s", DefaultGatewayHTTPAddr)
	}
	if cfg, err := Load(envOf(append(base, EnvClientSecretID+"=clear/cs")...)); err != nil || cfg.HTTPAddr != DefaultHTTPAddr {
		t.Errorf("rotator run's listener: %v", err)
	}
}

// A standalone gateway for several clients of a YAML file needs only their base URLs and token
// secrets: no entry needs a client secret, and their missing secrets are not one shared secret.
// An entry that has one keeps it (that client's revocations are healed).
func TestLoadForGatewaySeveralClientsWithoutClientSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.yaml")
	yaml := "clients:\n" +
		"  - name: erp-a\n    base_url: https://api.clear.in\n    token_secret_id: tokens/a\n" +
		"  - name: erp-b\n    base_url: https://api.clear.in\n    token_secret_id: tokens/b\n    gateway_token_header: X-Clear-Auth-Token\n" +
		"  - name: erp-c\n    base_url: https://api.clear.in\n    token_secret_id: tokens/c\n    client_secret_id: clear/c\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadForGateway(envOf(EnvConfig + "=" + path))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients) != 3 {
		t.Fatalf("%d clients", len(cfg.Clients))
	}
	for _, c := range cfg.Clients[:2] {
		if !c.ClientSecret.IsZero() || c.ClientSecretID != "" {
			t.Errorf("%s: a client secret appeared: %+v", c.Name, c)
		}
	}
	if c := cfg.Clients[2]; c.ClientSecretID != "clear/c" {
		t.Errorf("erp-c lost its client secret id: %+v", c)
	}
	if cfg.Clients[1].GatewayTokenHeader != "x-clear-auth-token" {
		t.Errorf("erp-b's header: %q", cfg.Clients[1].GatewayTokenHeader)
	}
	// Two literal client secrets that are the same are still refused.
	dup := "clients:\n" +
		"  - name: erp-a\n    base_url: https://api.clear.in\n    token_secret_id: tokens/a\n    client_secret: same-secret-0123456789\n" +
		"  - name: erp-b\n    base_url: https://api.clear.in\n    token_secret_id: tokens/b\n    client_secret: same-secret-0123456789\n"
	if err := os.WriteFile(path, []byte(dup), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadForGateway(envOf(EnvConfig + "=" + path)); err == nil || !strings.Contains(err.Error(), "same client secret") {
		t.Fatalf("a shared client secret was accepted: %v", err)
	}
}

// TestGatewayProblemsWithTheRest: the gateway's settings are read by the one Load, so that a broken
// one is reported with every other problem at once (LoadGateway used to run only after Load had
// passed, and only for the commands that serve the gateway), and a literal key is never echoed.
func TestGatewayProblemsWithTheRest(t *testing.T) {
	const key = "gw-key-0123456789abcdef"
	_, err := LoadForGateway(envOf(EnvBaseURL+"=ftp://x", EnvTokenSecretID+"=tok", EnvGatewayHold+"=1h",
		EnvGatewayKey+"="+key, EnvGatewayKeyID+"=gw/key", EnvGatewayMaxConns+"=lots", EnvGatewayTLSKey+"=/k.pem"))
	probs := wantErrors(t, err, "CLEAR_BASE_URL is invalid", "ROTATOR_GATEWAY_HOLD 1h is out of range 1s..60s",
		"ROTATOR_GATEWAY_KEY_ID and ROTATOR_GATEWAY_KEY are both set", `ROTATOR_GATEWAY_MAX_CONNS "lots" is not a whole number; allowed 1..1048576`,
		"must be set together")
	if len(probs) != 5 || strings.Contains(err.Error(), key) {
		t.Errorf("%d problems:\n%v", len(probs), err)
	}
}

// TestGatewayKeyNeverPrints: the gateway's literal key is a confidential value like a client
// secret, so a loaded configuration printed by mistake (%v, %+v, %#v, JSON) does not show it.
func TestGatewayKeyNeverPrints(t *testing.T) {
	const key = "gw-literal-key-0123456789"
	cfg, err := Load(envOf(EnvBaseURL+"=https://api.example.com", EnvClientSecretID+"=clear/cs", EnvTokenSecretID+"=clear/tok",
		EnvGatewayAddr+"=0.0.0.0:8480", EnvGatewayKey+"="+key))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(cfg)
	if s := fmt.Sprintf("%v %+v %#v %s", cfg, *cfg, *cfg, j); strings.Contains(s, key) {
		t.Errorf("the gateway key prints: %s", s)
	}
}

// TestProbePath: a probe is an origin-form GET below the base URL, never Clear's token API (each
// probe would revoke the token it probes), set per client like any per-client setting.
func TestProbePath(t *testing.T) {
	base := []string{EnvBaseURL + "=https://api.clear.in", EnvClientSecretID + "=clear/cs", EnvTokenSecretID + "=clear/tok"}
	for path, want := range map[string]string{
		"/integration/v1/gstins?page=1":    "",
		"https://api.clear.in/v1/x":        "is not a path",
		"v1/x":                             "is not a path",
		"//evil.example/x":                 "is not a path",
		"/v1/x y":                          "is not a path",
		"/v1/x#frag":                       "is not a path",
		"/" + strings.Repeat("a", 1024):    "is not a path",
		"/integration/v1/authz/token":      "token API",
		"/Integration/V1/authz/token/?x=1": "token API",
		// What the gateway's probe refuses at run time, silently, is refused here too (an audit).
		"/a/../b":                         "is not a path",
		"/integration/v1/authz/./token":   "is not a path",
		"/integration/v1/authz//token":    "token API",
		"/integration/v1/authz/%74oken":   "token API",
		"/integration/v1/authz/token;x=1": "token API",
		"/bad%zzescape":                   "is not a path",
	} {
		cfg, err := Load(envOf(append(base, EnvProbePath+"="+path, EnvProbeInterval+"=10s")...))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", path, err)
		case want == "" && (cfg.Clients[0].ProbePath != path || cfg.Gateway.ProbeInterval != 10*time.Second):
			t.Errorf("%q: got %q every %s", path, cfg.Clients[0].ProbePath, cfg.Gateway.ProbeInterval)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want %q", path, err, want)
		}
	}
	cfg, err := Load(envOf(base...))
	if err != nil || cfg.Clients[0].ProbePath != "" || cfg.Gateway.ProbeInterval != time.Minute {
		t.Fatalf("defaults: %v %+v", err, cfg)
	}
	if _, err := Load(envOf(append(base, EnvProbeInterval+"=500ms")...)); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("a 500ms interval: %v", err)
	}
}

// TestErrNoClientSecret: Load's refusal of a client without a client secret, which LoadForGateway
// accepts, is found with errors.Is, in the environment and in a file, and no other refusal is.
func TestErrNoClientSecret(t *testing.T) {
	readOnly := []string{EnvBaseURL + "=https://api.example.com", EnvTokenSecretID + "=clear/tok"}
	if _, err := Load(envOf(readOnly...)); !errors.Is(err, ErrNoClientSecret) {
		t.Errorf("Load without a client secret: %v", err)
	}
	if _, err := LoadForGateway(envOf(readOnly...)); err != nil {
		t.Errorf("LoadForGateway without a client secret: %v", err)
	}
	path := filepath.Join(t.TempDir(), "clients.yaml")
	yaml := "clients:\n  - name: a\n    base_url: https://api.example.com\n    token_secret_id: clear/a\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(envOf(EnvConfig + "=" + path)); !errors.Is(err, ErrNoClientSecret) {
		t.Errorf("Load of a file without a client secret: %v", err)
	}
	if _, err := Load(envOf(EnvClientSecretID+"=clear/cs", EnvTokenSecretID+"=clear/tok")); err == nil || errors.Is(err, ErrNoClientSecret) {
		t.Errorf("Load without a base URL: %v", err)
	}
}
