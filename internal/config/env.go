package config

import (
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/timing"
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

// secretSlot is one API client's secret as configured: a literal, or the
// Secrets Manager id of the secret holding it.
type secretSlot struct {
	set     bool // a value was given
	ok      bool // and it is valid
	literal clear.ClientSecret
	id      secretRef
}

// slotVars are the variables and keys of the two API client slots.
var slotVars = [2]struct{ lit, id, litKey, idKey string }{
	{EnvClientSecret, EnvClientSecretID, "client_secret", "client_secret_id"},
	{EnvClientSecret2, EnvClientSecretID2, "client_secret_2", "client_secret_id_2"},
}

// envDefaults are the per-client settings from the environment: the only
// client in single-client mode, the defaults for entries in a file.
type envDefaults struct {
	// values holds the settings that Setting.parse handles, by YAML key.
	values  map[string]opt[any]
	secrets [2]secretSlot
	token   opt[secretRef]
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
	d := &envDefaults{values: map[string]opt[any]{}}

	for _, st := range valueSettings() {
		if s, ok := val(st.Env); ok {
			var o opt[any]
			o.set = true
			o.v, o.ok = st.parse(p, at(st.Env), s)
			d.values[st.Key] = o
		}
	}

	for i, sv := range slotVars {
		lit, hasLit := val(sv.lit)
		id, hasID := val(sv.id)
		p.secret(lit)
		slot := &d.secrets[i]
		switch {
		case hasLit && hasID:
			slot.set = true
			p.add(at(sv.lit), nil, sv.lit+" and "+sv.id+" are both set; set exactly one")
		case hasLit:
			slot.set = true
			slot.literal, slot.ok = checkClientSecret(p, at(sv.lit), lit)
		case hasID:
			slot.set = true
			slot.id, slot.ok = checkSecretID(p, at(sv.id), id, false)
		}
	}

	if s, ok := val(EnvTokenSecretID); ok {
		d.token.set = true
		d.token.v, d.token.ok = checkSecretID(p, at(EnvTokenSecretID), s, true)
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
	cfg.ClearTimeout = DefaultClearTimeout
	if s, ok := val(EnvClearTimeout); ok {
		if v, ok := checkDuration(p, at(EnvClearTimeout), s, MinClearTimeout, MaxClearTimeout); ok {
			cfg.ClearTimeout = v
		}
	}
	// The grace depends on the Clear timeout: a SIGTERM must leave time for
	// a request already sent and the write of its answer, or a token that
	// Clear has issued (revoking the ERP's) is lost.
	cfg.ShutdownGrace = timing.Lease(cfg.ClearTimeout)
	if s, ok := val(EnvShutdownGrace); ok {
		if v, ok := checkDuration(p, at(EnvShutdownGrace), s, 0, 0); ok {
			if least := timing.MinShutdownGrace(cfg.ClearTimeout); v < least {
				p.bad(at(EnvShutdownGrace), nil, "%s is below %s (%s %s plus %s to store the token): stopping a rotation sooner could lose a token that Clear has issued, and with it the token in use; leave it unset for the default %s",
					s, least, EnvClearTimeout, cfg.ClearTimeout, timing.WriteWindow, timing.Lease(cfg.ClearTimeout))
			} else {
				cfg.ShutdownGrace = v
			}
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
	// NO_COLOR is not trimmed: any non-empty value counts, as no-color.org
	// asks.
	if v, _ := lookup0(lookup, EnvNoColor); v != "" {
		cfg.NoColor = true
	}
	parseNotify(lookup, p, cfg)
	return d
}

func lookup0(lookup LookupFunc, name string) (string, bool) {
	if lookup == nil {
		return "", false
	}
	return lookup(name)
}

// envClient builds the single client of environment-only mode. Its problems
// name the variables, since that is what the operator has to change.
func envClient(d *envDefaults, p *problems) []*candidate {
	c := &candidate{loc: location{source: SourceEnvironment}, nameOK: true}
	c.client.Name = DefaultClientName
	c.client.DailyLimit = DefaultDailyLimit
	at := func(name string) location { return location{source: SourceEnvironment, field: name} }

	for _, st := range valueSettings() {
		o, given := d.values[st.Key]
		switch {
		case !given && st.missing != "":
			p.bad(at(st.Env), nil, "is not set; %s", st.missing)
		case given && o.ok:
			st.set(&c.client, o.v)
			c.setLoc(st.Key, at(st.Env))
		}
	}

	if !d.secrets[0].set {
		p.add(at(EnvClientSecret), nil, "neither "+EnvClientSecret+" nor "+EnvClientSecretID+
			" is set; set "+EnvClientSecretID+" to the Secrets Manager secret holding the Clear client secret (or "+
			EnvClientSecret+" to the secret itself, for development)")
	}
	for i, sv := range slotVars {
		slot := d.secrets[i]
		switch {
		case !slot.set || !slot.ok:
		case !slot.literal.IsZero():
			c.useLiteral(i, slot.literal, at(sv.lit))
		default:
			c.useID(i, slot.id, at(sv.id))
		}
	}

	switch {
	case !d.token.set:
		p.bad(at(EnvTokenSecretID), nil, "is not set; it must be the Secrets Manager name or ARN of the secret that holds the token")
	case d.token.ok:
		c.client.TokenSecretID = d.token.v.raw
		c.tokenUse = &idUse{ref: d.token.v, loc: at(EnvTokenSecretID), owner: c, token: true}
	}
	c.checkBudget(p)
	return []*candidate{c}
}
