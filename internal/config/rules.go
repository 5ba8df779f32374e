package config

import (
	"net"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/settings"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// rules are the checks between settings, run once every setting is parsed
// and applied, in this order. Each reads the parsed configuration, reports
// what is wrong where the operator would fix it, and may settle a default
// that depends on another setting.
var rules = []func(p *settings.Problems, cfg *Config, env []settings.Value, cands []*candidate){
	maxAgeWithinBudget,
	renewBeforeFloor,
	shutdownGrace,
	hookStdinNeedsHook,
	gatewayTLSPair,
	gatewayKeyOffLoopback,
	webhookNeedsSecret,
}

// shutdownGrace defaults the grace to timing.Lease(CLEAR_TIMEOUT) and refuses
// one below its floor: a SIGTERM must leave time for a request already sent
// and the write of its answer, or a token that Clear has issued (revoking
// the ERP's) is lost.
func shutdownGrace(p *settings.Problems, cfg *Config, _ []settings.Value, _ []*candidate) {
	switch least := timing.MinShutdownGrace(cfg.ClearTimeout); {
	case cfg.ShutdownGrace == 0: // not set, or invalid and reported
		cfg.ShutdownGrace = timing.Lease(cfg.ClearTimeout)
	case cfg.ShutdownGrace < least:
		p.Bad(settings.EnvAt(EnvShutdownGrace), nil, "%s is below %s (%s %s plus %s to store the token): stopping a rotation sooner could lose a token that Clear has issued, and with it the token in use; leave it unset for the default %s",
			cfg.ShutdownGrace, least, EnvClearTimeout, cfg.ClearTimeout, timing.WriteWindow, timing.Lease(cfg.ClearTimeout))
	}
}

func hookStdinNeedsHook(p *settings.Problems, cfg *Config, _ []settings.Value, _ []*candidate) {
	if cfg.Notify.HookStdin && cfg.Notify.HookCommand == nil {
		p.Bad(settings.EnvAt(EnvHookStdin), nil, "is set, but %s is not", EnvHookCommand)
		cfg.Notify.HookStdin = false
	}
}

// gatewayTLSPair refuses a certificate without its key, or a key without its
// certificate: either alone would serve plain HTTP by mistake.
func gatewayTLSPair(p *settings.Problems, cfg *Config, _ []settings.Value, _ []*candidate) {
	if (cfg.Gateway.TLSCert == "") != (cfg.Gateway.TLSKey == "") {
		p.Add(settings.EnvAt(EnvGatewayTLSCert), nil, EnvGatewayTLSCert+" and "+EnvGatewayTLSKey+" must be set together")
	}
}

// gatewayKeyOffLoopback refuses a gateway that anyone who reaches it could
// use to call Clear with the token: one listening beyond loopback without a
// key. A key given but invalid is reported as such, not as missing.
func gatewayKeyOffLoopback(p *settings.Problems, cfg *Config, env []settings.Value, _ []*candidate) {
	addr := cfg.Gateway.Addr
	_, hasKey := settings.Get(env, EnvGatewayKey)
	_, hasID := settings.Get(env, EnvGatewayKeyID)
	// An empty host binds every interface.
	if host, _, err := net.SplitHostPort(addr); addr == "" || hasKey || hasID || err == nil && host != "" && clear.IsLoopback(host) {
		return
	}
	p.Bad(settings.EnvAt(EnvGatewayAddr), nil, "%s is not a loopback address, and no key is set: anyone who reaches it could call Clear with the token; set %s (or %s), or listen on 127.0.0.1",
		settings.Quote(addr), EnvGatewayKeyID, EnvGatewayKey)
}

// webhookNeedsSecret refuses a webhook URL without a signing secret: an
// unsigned message would tell the receiver nothing it could trust. It is
// reported once, at the first client with a URL; a secret given but invalid is
// reported as such, not as missing (as gatewayKeyOffLoopback does).
func webhookNeedsSecret(p *settings.Problems, cfg *Config, env []settings.Value, cands []*candidate) {
	_, hasSecret := settings.Get(env, EnvWebhookSecret)
	_, hasID := settings.Get(env, EnvWebhookSecretID)
	if hasSecret || hasID { // given, and valid or reported as invalid: not missing
		return
	}
	for _, c := range cands {
		if v, ok := settings.Get(c.Values, EnvWebhookURL); ok && v.OK {
			p.Bad(v.At, nil, "is set, but no signing secret is: set %s (or %s, for development)", EnvWebhookSecretID, EnvWebhookSecret)
			return
		}
	}
}

// maxAgeWithinBudget refuses a max_age that needs more rotations per UTC day
// than the client's daily limit allows: the client would spend each day
// refusing to rotate.
func maxAgeWithinBudget(p *settings.Problems, _ *Config, _ []settings.Value, cands []*candidate) {
	for _, c := range cands {
		v, ok := settings.Get(c.Values, EnvMaxAge)
		maxAge, limit := c.client.MaxAge, time.Duration(c.client.DailyLimit)
		if !ok || !v.OK || limit <= 0 || maxAge <= 0 {
			continue
		}
		// Rounded up: a day that does not divide evenly still has its last rotation to make.
		if n := (24*time.Hour + maxAge - 1) / maxAge; n > limit {
			least := ((24*time.Hour+limit-1)/limit + time.Minute - 1).Truncate(time.Minute)
			p.Bad(v.At, nil, "%s means %d rotations a day, more than the daily limit of %d requests allows; set it to at least %s or raise the daily limit",
				maxAge, n, limit, least)
		}
	}
}

// renewBeforeFloor refuses a renew_before below timing.MinRenewBefore(CLEAR_TIMEOUT): each renewal
// would start too late to store a new token before the one in use expires.
func renewBeforeFloor(p *settings.Problems, cfg *Config, _ []settings.Value, cands []*candidate) {
	least := timing.MinRenewBefore(cfg.ClearTimeout)
	for _, c := range cands {
		if v, ok := settings.Get(c.Values, EnvRenewBefore); ok && v.OK && c.client.RenewBefore < least {
			p.Bad(v.At, nil, "%s is below %s (%s %s plus %s to store the token): ERP systems would hold an expired token while each renewal is under way, and one that failed could not be retried in time; leave it unset for a third of the lifetime",
				c.client.RenewBefore, least, EnvClearTimeout, cfg.ClearTimeout, timing.WriteWindow)
		}
	}
}
