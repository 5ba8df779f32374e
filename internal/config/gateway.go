package config

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// The gateway's settings (issue 17). They are rows of Settings like every other setting; this file
// holds their names, defaults, limits and parse functions, and LoadGateway, which reads the
// gateway's global settings for `rotator gateway` and for `rotator run` with ROTATOR_GATEWAY_ADDR.
const (
	EnvGatewayAddr            = "ROTATOR_GATEWAY_ADDR"
	EnvGatewayKey             = "ROTATOR_GATEWAY_KEY"
	EnvGatewayKeyID           = "ROTATOR_GATEWAY_KEY_ID"
	EnvGatewayKeyGrace        = "ROTATOR_GATEWAY_KEY_GRACE"
	EnvGatewayReplayLimit     = "ROTATOR_GATEWAY_REPLAY_LIMIT"
	EnvGatewayHold            = "ROTATOR_GATEWAY_HOLD"
	EnvGatewayUpstreamTimeout = "ROTATOR_GATEWAY_UPSTREAM_TIMEOUT"
	EnvGatewayMaxConns        = "ROTATOR_GATEWAY_MAX_CONNS"
	EnvGatewayPoll            = "ROTATOR_GATEWAY_POLL"
	EnvGatewayTLSCert         = "ROTATOR_GATEWAY_TLS_CERT"
	EnvGatewayTLSKey          = "ROTATOR_GATEWAY_TLS_KEY"
	// EnvGatewayTokenHeader is per client (YAML key gateway_token_header): the header the gateway
	// puts the token in, e.g. x-clear-auth-token for Clear's GLS API.
	EnvGatewayTokenHeader = "ROTATOR_GATEWAY_TOKEN_HEADER"
)

// Gateway defaults and limits.
const (
	DefaultGatewayAddr            = "127.0.0.1:8480"
	DefaultGatewayKeyGrace        = 15 * time.Minute
	DefaultGatewayReplayLimit     = 1 << 20
	MaxGatewayReplayLimit         = 64 << 20
	DefaultGatewayHold            = 10 * time.Second
	DefaultGatewayUpstreamTimeout = 120 * time.Second
	DefaultGatewayMaxConns        = 16384
	MaxGatewayMaxConns            = 1 << 20
	DefaultGatewayPoll            = 5 * time.Second
	DefaultGatewayTokenHeader     = clear.HeaderAuthToken
)

// Gateway is the gateway's global configuration.
type Gateway struct {
	Addr            string // "" when the gateway is off (rotator run without ROTATOR_GATEWAY_ADDR)
	Key             string // literal key (development); never logged
	KeyID           string // or the Secrets Manager id of the secret holding it
	KeyGrace        time.Duration
	ReplayLimit     int64
	Hold            time.Duration
	UpstreamTimeout time.Duration
	MaxConns        int
	Poll            time.Duration
	TLSCert         string
	TLSKey          string
}

// gatewaySettings are the gateway's rows of Settings.
var gatewaySettings = []Setting{
	{Env: EnvGatewayTokenHeader, Key: "gateway_token_header", Kind: "header name", Default: DefaultGatewayTokenHeader,
		Help:  "the header the gateway puts the token in (x-clear-auth-token for Clear's GLS API)",
		parse: parser(checkHeaderName), client: clientField(func(c *Client) *string { return &c.GatewayTokenHeader })},
	{Env: EnvGatewayAddr, Scope: DaemonOnly, Kind: "[HOST]:PORT", DefaultDoc: DefaultGatewayAddr + " for rotator gateway; off for rotator run",
		Help: "the Clear gateway's listener; every path on it goes to Clear"},
	{Env: EnvGatewayKeyID, Scope: DaemonOnly, Kind: "secret id",
		Help: "Secrets Manager name or ARN of the secret holding the gateway's inbound key (x-clear-rotator-key); re-read when it changes"},
	{Env: EnvGatewayKey, Scope: DaemonOnly, Kind: "secret",
		Help: "the gateway's inbound key itself (for development); set this or " + EnvGatewayKeyID + "; required unless the gateway listens on loopback"},
	{Env: EnvGatewayKeyGrace, Scope: DaemonOnly, Kind: "duration", DefaultDoc: "15m", Limits: "0s..168h",
		Help: "how long the previous key is still accepted after the key's secret changed"},
	{Env: EnvGatewayReplayLimit, Scope: DaemonOnly, Kind: "bytes", DefaultDoc: "1048576 (1 MiB)", Limits: "1..67108864",
		Help: "largest request body buffered so that it can be replayed after a 401; larger bodies are streamed"},
	{Env: EnvGatewayHold, Scope: DaemonOnly, Kind: "duration", DefaultDoc: "10s", Limits: "1s..60s",
		Help: "longest a request waits for a (newer) token before the gateway answers"},
	{Env: EnvGatewayUpstreamTimeout, Scope: DaemonOnly, Kind: "duration", DefaultDoc: "120s", Limits: "1s..600s",
		Help: "longest wait for Clear's response headers"},
	{Env: EnvGatewayMaxConns, Scope: DaemonOnly, Kind: "number", DefaultDoc: "16384", Limits: "1..1048576",
		Help: "most connections the gateway holds open at once"},
	{Env: EnvGatewayPoll, Scope: DaemonOnly, Kind: "duration", DefaultDoc: "5s", Limits: "1s..5m",
		Help: "how often the gateway looks at the token secret's version (one DescribeSecret); a 401 looks at once"},
	{Env: EnvGatewayTLSCert, Scope: DaemonOnly, Kind: "path",
		Help: "PEM certificate for serving the gateway over TLS (with " + EnvGatewayTLSKey + "); re-read when it changes"},
	{Env: EnvGatewayTLSKey, Scope: DaemonOnly, Kind: "path",
		Help: "PEM private key of " + EnvGatewayTLSCert},
}

var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,64}$`)

// checkHeaderName validates an HTTP header name (an RFC 9110 token).
func checkHeaderName(p *problems, l location, s string) (string, bool) {
	if !headerNameRE.MatchString(s) {
		p.bad(l, nil, "%s is not an HTTP header name", quote(s))
		return "", false
	}
	return strings.ToLower(s), true
}

// LoadGateway reads the gateway's global settings. standalone is true for `rotator gateway`,
// whose listener defaults to DefaultGatewayAddr; for `rotator run` the gateway is off unless
// ROTATOR_GATEWAY_ADDR is set. A listener on anything but loopback without a key is refused.
func LoadGateway(lookup LookupFunc, standalone bool) (*Gateway, error) {
	var p problems
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }
	val := func(name string) (string, bool) {
		v, _ := lookupTrimmed(lookup, name)
		return v, v != ""
	}
	g := &Gateway{KeyGrace: DefaultGatewayKeyGrace, ReplayLimit: DefaultGatewayReplayLimit, Hold: DefaultGatewayHold,
		UpstreamTimeout: DefaultGatewayUpstreamTimeout, MaxConns: DefaultGatewayMaxConns, Poll: DefaultGatewayPoll}
	if s, ok := val(EnvGatewayAddr); ok {
		if checkListenAddr(&p, at(EnvGatewayAddr), s) {
			g.Addr = s
		}
	} else if standalone {
		g.Addr = DefaultGatewayAddr
	}
	hasKey := gatewayKey(&p, g, val)
	gatewayLimits(&p, g, val)
	g.TLSCert, _ = val(EnvGatewayTLSCert)
	g.TLSKey, _ = val(EnvGatewayTLSKey)
	if (g.TLSCert == "") != (g.TLSKey == "") {
		p.add(at(EnvGatewayTLSCert), nil, EnvGatewayTLSCert+" and "+EnvGatewayTLSKey+" must be set together")
	}
	if g.Addr != "" && !hasKey && !loopbackAddr(g.Addr) {
		p.bad(at(EnvGatewayAddr), nil, "%s is not a loopback address, and no key is set: anyone who reaches it could call Clear with the token; set %s (or %s), or listen on 127.0.0.1",
			quote(g.Addr), EnvGatewayKeyID, EnvGatewayKey)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return g, nil
}

// gatewayKey reads the inbound key's settings into g and reports whether a key is set.
func gatewayKey(p *problems, g *Gateway, val func(string) (string, bool)) bool {
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }
	key, hasKey := val(EnvGatewayKey)
	id, hasID := val(EnvGatewayKeyID)
	p.secret(key)
	switch {
	case hasKey && hasID:
		p.add(at(EnvGatewayKey), nil, EnvGatewayKey+" and "+EnvGatewayKeyID+" are both set; set exactly one")
	case hasKey && len(key) < 16:
		p.bad(at(EnvGatewayKey), nil, "is too short (the value is not shown); use at least 16 characters")
	case hasKey:
		g.Key = key
	case hasID:
		if ref, ok := checkClientSecretID(p, at(EnvGatewayKeyID), id); ok {
			g.KeyID = ref.raw
		}
	}
	return hasKey || hasID
}

// gatewayLimits reads the gateway's durations and sizes into g.
func gatewayLimits(p *problems, g *Gateway, val func(string) (string, bool)) {
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }
	durations := []struct {
		env    string
		lo, hi time.Duration
		dst    *time.Duration
	}{
		{EnvGatewayHold, time.Second, time.Minute, &g.Hold},
		{EnvGatewayUpstreamTimeout, time.Second, 10 * time.Minute, &g.UpstreamTimeout},
		{EnvGatewayPoll, time.Second, 5 * time.Minute, &g.Poll},
	}
	for _, d := range durations {
		if s, ok := val(d.env); ok {
			if v, ok := duration(d.lo, d.hi, "", "")(p, at(d.env), s); ok {
				*d.dst = v
			}
		}
	}
	if s, ok := val(EnvGatewayKeyGrace); ok {
		if v, err := time.ParseDuration(s); err != nil || v < 0 || v > 168*time.Hour {
			p.bad(at(EnvGatewayKeyGrace), nil, "%s is not a duration in 0s..168h", quote(s))
		} else {
			g.KeyGrace = v
		}
	}
	if s, ok := val(EnvGatewayReplayLimit); ok {
		if n, ok := checkCount(p, at(EnvGatewayReplayLimit), s, MaxGatewayReplayLimit); ok {
			g.ReplayLimit = int64(n)
		}
	}
	if s, ok := val(EnvGatewayMaxConns); ok {
		if n, ok := checkCount(p, at(EnvGatewayMaxConns), s, MaxGatewayMaxConns); ok {
			g.MaxConns = n
		}
	}
}

// checkListenAddr validates [HOST]:PORT; unlike ROTATOR_HTTP_ADDR the gateway cannot be turned off
// by an empty value, since `rotator gateway` has nothing else to do.
func checkListenAddr(p *problems, l location, s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var n int
		if n, err = strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
			err = strconv.ErrRange
		}
	}
	if err != nil {
		p.bad(l, nil, "%s is not a listen address; want [HOST]:PORT such as \"127.0.0.1:8480\"", quote(s))
		return false
	}
	return true
}

// checkCount validates a whole number in 1..hi.
func checkCount(p *problems, l location, s string, hi int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > hi {
		p.bad(l, nil, "%s is not a whole number in 1..%d", quote(s), hi)
		return 0, false
	}
	return n, true
}

// loopbackAddr reports whether a listen address binds loopback only. An empty host binds every
// interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// gatewayPlaceholder stands for the client secret a standalone gateway does not have: it reads the
// token secret only. It is never sent anywhere: LoadForGateway clears it from the clients.
const gatewayPlaceholder = "clear-rotator-gateway-has-no-client-secret"

// LoadForGateway is Load for `rotator gateway`, which needs no client secret: without
// CLEAR_CLIENT_SECRET and CLEAR_CLIENT_SECRET_ID the clients (the one of the environment, or every
// entry of ROTATOR_CONFIG's file) need only a base URL and a token secret, and those without a
// client secret are loaded without one (the gateway then reports their revocations without
// healing them). An entry with its own client secret keeps it. With either variable set, it is
// Load. The placeholder every entry without a secret inherits is no shared secret: crossCheck
// skips it.
func LoadForGateway(lookup LookupFunc) (*Config, error) {
	_, hasLit := lookupTrimmed(lookup, EnvClientSecret)
	_, hasID := lookupTrimmed(lookup, EnvClientSecretID)
	if v, _ := lookupTrimmed(lookup, EnvClientSecret); hasLit && v != "" {
		return Load(lookup)
	}
	if v, _ := lookupTrimmed(lookup, EnvClientSecretID); hasID && v != "" {
		return Load(lookup)
	}
	cfg, err := Load(func(name string) (string, bool) {
		if name == EnvClientSecret {
			return gatewayPlaceholder, true
		}
		if lookup == nil {
			return "", false
		}
		return lookup(name)
	})
	if err != nil {
		return nil, err
	}
	for i := range cfg.Clients {
		if cfg.Clients[i].ClientSecret.Reveal() == gatewayPlaceholder {
			cfg.Clients[i].ClientSecret = clear.ClientSecret{}
		}
	}
	return cfg, nil
}

// lookupTrimmed reads one variable as the table's environment path does: trimmed, nil lookup empty.
func lookupTrimmed(lookup LookupFunc, name string) (string, bool) {
	if lookup == nil {
		return "", false
	}
	v, ok := lookup(name)
	return strings.TrimSpace(v), ok
}
