package config

import (
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/logging"
)

// get reads and trims one variable; see the package documentation for why
// values are trimmed.
func get(lookup LookupFunc, name string) (string, bool) {
	if lookup == nil {
		return "", false
	}
	v, ok := lookup(name)
	return strings.TrimSpace(v), ok
}

// opt is a setting that may be absent, present and valid, or present and
// invalid. An invalid one has already been reported, so a client that would
// inherit it stays quiet instead of repeating the problem as "missing".
type opt[T any] struct {
	v   T
	set bool // a value was given
	ok  bool // and it is valid
}

// envDefaults are the per-client settings from the environment: the only
// client in single-client mode, the defaults for entries in a file.
type envDefaults struct {
	baseURL opt[string]
	// secret is set when CLEAR_CLIENT_SECRET or CLEAR_CLIENT_SECRET_ID is;
	// exactly one of literal and id is meaningful when it is ok.
	secret      opt[struct{}]
	literal     clear.ClientSecret
	secretID    secretRef
	token       opt[secretRef]
	dailyLimit  opt[int]
	renewBefore opt[time.Duration]
	maxAge      opt[time.Duration]
}

// parseEnv validates every variable that is set, in both modes, and fills in
// cfg's global settings. An invalid default is an error even if every entry
// of a file overrides it, because the operator evidently meant something by
// it and it would bite as soon as an entry stopped overriding it.
func parseEnv(lookup LookupFunc, p *problems, cfg *Config) *envDefaults {
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }
	val := func(name string) (string, bool) {
		v, _ := get(lookup, name)
		return v, v != ""
	}
	d := &envDefaults{}

	if s, ok := val(EnvBaseURL); ok {
		d.baseURL.set = true
		d.baseURL.v, d.baseURL.ok = checkBaseURL(p, at(EnvBaseURL), s)
	}

	lit, hasLit := val(EnvClientSecret)
	id, hasID := val(EnvClientSecretID)
	p.secret(lit)
	switch {
	case hasLit && hasID:
		d.secret.set = true
		p.add(at(EnvClientSecret), nil, EnvClientSecret+" and "+EnvClientSecretID+" are both set; set exactly one")
	case hasLit:
		d.secret.set = true
		d.literal, d.secret.ok = checkClientSecret(p, at(EnvClientSecret), lit)
	case hasID:
		d.secret.set = true
		d.secretID, d.secret.ok = checkSecretID(p, at(EnvClientSecretID), id, false)
	}

	if s, ok := val(EnvTokenSecretID); ok {
		d.token.set = true
		d.token.v, d.token.ok = checkSecretID(p, at(EnvTokenSecretID), s, true)
	}
	if s, ok := val(EnvDailyLimit); ok {
		d.dailyLimit.set = true
		d.dailyLimit.v, d.dailyLimit.ok = checkDailyLimit(p, at(EnvDailyLimit), s)
	}
	if s, ok := val(EnvRenewBefore); ok {
		d.renewBefore.set = true
		d.renewBefore.v, d.renewBefore.ok = checkDuration(p, at(EnvRenewBefore), s, 0, 0)
	}
	if s, ok := val(EnvMaxAge); ok {
		d.maxAge.set = true
		d.maxAge.v, d.maxAge.ok = checkDuration(p, at(EnvMaxAge), s, 0, 0)
	}

	// Global settings.
	cfg.Schedule = DefaultSchedule
	if s, ok := val(EnvSchedule); ok && checkSchedule(p, at(EnvSchedule), s) {
		cfg.Schedule = s
	}
	// Only here does "set but empty" differ from "unset": it turns the ops
	// listener off.
	cfg.HTTPAddr = DefaultHTTPAddr
	if s, set := get(lookup, EnvHTTPAddr); set && (s == "" || checkHTTPAddr(p, at(EnvHTTPAddr), s)) {
		cfg.HTTPAddr = s
	}
	cfg.ShutdownGrace = DefaultShutdownGrace
	if s, ok := val(EnvShutdownGrace); ok {
		if v, ok := checkDuration(p, at(EnvShutdownGrace), s, 0, 0); ok {
			cfg.ShutdownGrace = v
		}
	}
	cfg.ClearTimeout = DefaultClearTimeout
	if s, ok := val(EnvClearTimeout); ok {
		if v, ok := checkDuration(p, at(EnvClearTimeout), s, MinClearTimeout, MaxClearTimeout); ok {
			cfg.ClearTimeout = v
		}
	}
	level, _ := val(EnvLogLevel)
	if v, err := logging.ParseLevel(level); err != nil {
		p.bad(at(EnvLogLevel), err, "%s", err)
	} else {
		cfg.LogLevel = v
	}
	format, _ := val(EnvLogFormat)
	if v, err := logging.ParseFormat(format); err != nil {
		p.bad(at(EnvLogFormat), err, "%s", err)
	} else {
		cfg.LogFormat = v
	}
	return d
}

// envClient builds the single client of environment-only mode. Its problems
// name the variables, since that is what the operator has to change.
func envClient(d *envDefaults, p *problems) []*candidate {
	c := &candidate{loc: location{source: SourceEnvironment}, nameOK: true}
	c.client.Name = DefaultClientName
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }

	switch {
	case !d.baseURL.set:
		p.bad(at(EnvBaseURL), nil, "is not set; it must be the Clear API base URL (https://HOST[/PATH])")
	case d.baseURL.ok:
		c.client.BaseURL = d.baseURL.v
	}

	switch {
	case !d.secret.set:
		p.add(at(EnvClientSecret), nil, "neither "+EnvClientSecret+" nor "+EnvClientSecretID+
			" is set; set "+EnvClientSecretID+" to the Secrets Manager secret holding the Clear client secret (or "+
			EnvClientSecret+" to the secret itself, for development)")
	case d.secret.ok && !d.literal.IsZero():
		c.client.ClientSecret = d.literal
		c.literal = d.literal.Reveal()
		c.literalLoc = at(EnvClientSecret)
	case d.secret.ok:
		c.client.ClientSecretID = d.secretID.raw
		c.secretUse = &idUse{ref: d.secretID, loc: at(EnvClientSecretID), owner: c}
	}

	switch {
	case !d.token.set:
		p.bad(at(EnvTokenSecretID), nil, "is not set; it must be the Secrets Manager name or ARN of the secret that holds the token")
	case d.token.ok:
		c.client.TokenSecretID = d.token.v.raw
		c.tokenUse = &idUse{ref: d.token.v, loc: at(EnvTokenSecretID), owner: c, token: true}
	}

	c.client.DailyLimit = DefaultDailyLimit
	if d.dailyLimit.ok {
		c.client.DailyLimit = d.dailyLimit.v
	}
	c.client.RenewBefore = d.renewBefore.v
	c.client.MaxAge = d.maxAge.v
	return []*candidate{c}
}
