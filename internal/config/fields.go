package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/settings"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// The validators of the rotator's own kinds of value, written as
// internal/settings' generic ones are: a pure function of the trimmed text
// that returns the typed value or an error that reads after the setting's
// name and never quotes a value that may be a secret.

// checkBaseURL validates a Clear API base URL by clear's rule and returns it
// without a trailing slash. Messages show it only through secret.RedactURL: its user
// info or query may carry a password or a key. A value without a scheme is not
// shown at all: it may be the client secret, pasted into the variable beside its
// own, whose value configuration cannot know when it is in Secrets Manager.
func checkBaseURL(s string) (string, error) {
	u, err := clear.ParseBaseURL(s)
	if err != nil && !strings.Contains(s, "://") {
		return "", settings.HideValue(errors.New("is invalid: it does not start with https:// (the value is not shown, in case it is a secret)"))
	}
	if err != nil {
		why := &clear.BaseURLError{Reason: "is not accepted as a Clear base URL"}
		errors.As(err, &why)
		return "", fmt.Errorf("is invalid: %s %s (want https://HOST[/PATH]; http:// only for localhost or a loopback address)", settings.Quote(secret.RedactURL(s)), why.Reason)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// secretID returns a validator of a Secrets Manager id. Only the token's
// (quoted) is shown in messages: an operator who confused the fields pasted
// the client secret itself, so any other invalid id is scrubbed like one. A
// valid id is not: "token" would blank that word in every message.
func secretID(quoted bool) func(string) (store.ID, error) {
	return func(s string) (store.ID, error) {
		ref, err := store.ParseID(s)
		switch {
		case err != nil && quoted:
			err = fmt.Errorf("%s %s", settings.Quote(s), err)
		case err != nil && s != "":
			err = settings.HideValue(fmt.Errorf("%s (the value is not shown in case it is a secret)", err))
		}
		return ref, err
	}
}

// Every rotation revokes the token an ERP holds, so a max_age below
// timing.MinInterval is refused at start-up rather than left to the engine's
// floor; the upper bounds keep the arithmetic far from overflow and catch a
// unit mistake that would silently mean "never".
var (
	checkRenewBefore = settings.Duration(0, 366*24*time.Hour, "", "(366 days) is allowed")
	checkMaxAge      = settings.Duration(timing.MinInterval, 10*366*24*time.Hour,
		"the least time between two rotations of a client; every rotation revokes the token in use",
		"(ten years) is allowed, or leave it unset for never")
)

// checkKeyGrace accepts 0 too: the previous gateway key then dies at once.
func checkKeyGrace(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 168*time.Hour {
		return 0, fmt.Errorf("%s is not a duration in 0s..168h", settings.Quote(s))
	}
	return d, nil
}

func checkSchedule(s string) (string, error) {
	if _, err := timing.ParseSchedule(s, time.Now()); err != nil {
		return "", fmt.Errorf("%s is not a valid schedule: %s; use a cron spec with 5 fields, or 6 with leading seconds, or a descriptor such as \"@every 5m\" or \"@hourly\"", settings.Quote(s), clear.Sanitize(err.Error()))
	}
	return s, nil
}

var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,64}$`)

// notTokenHeaders cannot carry the gateway's token to Clear: Go's HTTP client writes the first
// itself, and the gateway removes the others from every request (hop-by-hop headers, Expect, its
// own, a client secret, forwarding headers). The gateway's tests keep this list in step with its
// own (TestTokenHeaderRefusesWhatTheGatewayRemoves).
var notTokenHeaders = []string{"host", "content-length", "transfer-encoding",
	"connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade", "expect",
	"x-clear-rotator-key", "x-clear-rotator-client", clear.HeaderClientSecret,
	"forwarded", "x-forwarded-host", "x-forwarded-for", "x-forwarded-proto"}

// checkHeaderName validates the gateway's token header: an HTTP header name (an RFC 9110 token)
// that can carry the token.
func checkHeaderName(s string) (string, error) {
	if !headerNameRE.MatchString(s) {
		return "", fmt.Errorf("%s is not an HTTP header name", settings.Quote(s))
	}
	if h := strings.ToLower(s); slices.Contains(notTokenHeaders, h) {
		return "", fmt.Errorf("%s cannot carry the token: the gateway or Go's HTTP client sets or removes it on every request", settings.Quote(s))
	}
	return strings.ToLower(s), nil
}

// checkProbePath validates a probe's path and query by clear.CheckProbePath, the rule the gateway
// checks again when it sends the probe (so a path refused there would be dropped at every probe
// without a word).
func checkProbePath(s string) (string, error) {
	switch err := clear.CheckProbePath(s); {
	case errors.Is(err, clear.ErrProbeTokenAPI):
		return "", fmt.Errorf("%s is Clear's token API: each probe would ask for a token and revoke the one in use", settings.Quote(s))
	case err != nil:
		return "", fmt.Errorf("%s is not a path; want /PATH[?QUERY] of at most %d printable characters, below the base URL, without \".\" or \"..\" segments", settings.Quote(s), clear.MaxProbePath)
	}
	return s, nil
}

// checkWebhookURL validates a webhook URL by notify's rule; its messages never
// quote the URL, whose path or query may carry a receiver's key.
func checkWebhookURL(s string) (string, error) {
	if _, err := notify.CheckURL(s); err != nil {
		return "", fmt.Errorf("%s (the URL is not shown, in case it carries a key)", err)
	}
	return s, nil
}

// checkWebhookSecret validates a literal signing secret (one or two whsec_
// values) without quoting it; read scrubs each value from every message, not
// only the whole.
func checkWebhookSecret(s string) (notify.Secret, error) {
	sec := notify.NewSecret(s)
	if _, err := notify.ParseKeys(sec); err != nil {
		return notify.Secret{}, err
	}
	return sec, nil
}

func checkHookStdin(s string) (bool, error) {
	if s != HookStdinToken {
		return false, fmt.Errorf("%s is not allowed; the one value is %q (unset: the hook's input is empty)", settings.Quote(s), HookStdinToken)
	}
	return true, nil
}
