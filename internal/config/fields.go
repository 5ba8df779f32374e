package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/secret"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// The validators are pure functions of the trimmed text of a setting: they
// return the typed value, or an error that reads after the setting's name
// ("300 is out of range 1..250") and says what is allowed; read records it.
// An error never quotes a value that may be a secret, and one that wraps a
// cause keeps it for errors.Is.

// errMaybeSecret marks a refusal of a value that may be a secret pasted into
// the wrong field: read scrubs the value from every message.
type errMaybeSecret struct{ error }

// quote renders a value for a message: quoted, so that control characters
// cannot forge log lines, and cut at 80 bytes so that a pasted blob does not
// drown the message.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

// printable returns s as it is when every character prints, else quoted with
// escapes: a name or path chosen by whoever sets the environment must not
// reach a terminal or a log with characters that clear a screen or forge a line.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidName reports whether s can be a client name. What cannot be one is never quoted back by a
// caller looking a name up: it may be a secret pasted into the wrong field.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// checkName validates a client name, which shows up in logs, metrics and
// secret descriptions.
func checkName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s is not allowed; use 1 to 64 characters from A-Z a-z 0-9 . _ -", quote(s))
	}
	return nil
}

// checkBaseURL validates a Clear API base URL by clear's rule and returns it
// without a trailing slash. Messages show it only through secret.RedactURL: its user
// info or query may carry a password or a key. A value without a scheme is not
// shown at all: it may be the client secret, pasted into the variable beside its
// own, whose value configuration cannot know when it is in Secrets Manager.
func checkBaseURL(s string) (string, error) {
	u, err := clear.ParseBaseURL(s)
	if err != nil && !strings.Contains(s, "://") {
		return "", errMaybeSecret{errors.New("is invalid: it does not start with https:// (the value is not shown, in case it is a secret)")}
	}
	if err != nil {
		why := &clear.BaseURLError{Reason: "is not accepted as a Clear base URL"}
		errors.As(err, &why)
		return "", fmt.Errorf("is invalid: %s %s (want https://HOST[/PATH]; http:// only for localhost or a loopback address)", quote(secret.RedactURL(s)), why.Reason)
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
			err = fmt.Errorf("%s %s", quote(s), err)
		case err != nil && s != "":
			err = errMaybeSecret{fmt.Errorf("%s (the value is not shown in case it is a secret)", err)}
		}
		return ref, err
	}
}

// count returns a validator of a whole number in 1..hi.
func count[T int | int64](hi, def T) func(string) (T, error) {
	return func(s string) (T, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			return 0, fmt.Errorf("%s is not a whole number; allowed 1..%d (default %d)", quote(s), hi, def)
		case err != nil || n < 1 || n > int64(hi):
			return 0, fmt.Errorf("%s is out of range 1..%d", s, hi)
		}
		return T(n), nil
	}
}

// duration returns a validator of a Go duration greater than zero and within
// lo..hi (hi 0: no bound). why, when given, is two texts that explain the low
// and the high bound instead of the plain "out of range".
func duration(lo, hi time.Duration, why ...string) func(string) (time.Duration, error) {
	return func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			return 0, fmt.Errorf("%s is not a Go duration such as \"90s\", \"30m\" or \"2h\"", quote(s))
		case d <= 0:
			return 0, fmt.Errorf("%s must be greater than zero", s)
		case (d < lo || hi > 0 && d > hi) && len(why) < 2:
			return 0, fmt.Errorf("%s is out of range %s..%s", s, seconds(lo), seconds(hi))
		case d < lo:
			return 0, fmt.Errorf("%s is below %s, %s", s, lo, why[0])
		case hi > 0 && d > hi:
			return 0, fmt.Errorf("%s is absurdly long; at most %s %s", s, hi, why[1])
		}
		return d, nil
	}
}

// Every rotation revokes the token an ERP holds, so a max_age below
// timing.MinInterval is refused at start-up rather than left to the engine's
// floor; the upper bounds keep the arithmetic far from overflow and catch a
// unit mistake that would silently mean "never".
var (
	checkRenewBefore = duration(0, 366*24*time.Hour, "", "(366 days) is allowed")
	checkMaxAge      = duration(timing.MinInterval, 10*366*24*time.Hour,
		"the least time between two rotations of a client; every rotation revokes the token in use",
		"(ten years) is allowed, or leave it unset for never")
)

// checkKeyGrace accepts 0 too: the previous gateway key then dies at once.
func checkKeyGrace(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 168*time.Hour {
		return 0, fmt.Errorf("%s is not a duration in 0s..168h", quote(s))
	}
	return d, nil
}

// seconds formats a whole number of seconds as "120s", as the limits are
// documented, rather than "2m0s".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// listenAddr returns a validator of a listen address [HOST]:PORT: HOST empty
// (every interface), an IP address or a host name; PORT 0..65535 in decimal
// digits, 0 asking for any free port (the daemon logs the one bound). Set but
// empty (ROTATOR_HTTP_ADDR only) means no listener.
func listenAddr(examples string) func(string) (string, error) {
	return func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || len(port) > 5 || strings.Trim(port, "0123456789") != "" || n > 65535 || !isHost(host) {
			return "", fmt.Errorf("%s is not a listen address; want [HOST]:PORT with a port of 0..65535, such as %s", quote(s), examples)
		}
		return s, nil
	}
}

// isHost reports whether s is empty, an IP address (with a zone, for a
// link-local IPv6 address) or a host name.
func isHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil || s == "" {
		return true
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return false
		}
	}
	return len(s) <= 253
}

func checkSchedule(s string) (string, error) {
	if _, err := timing.ParseSchedule(s, time.Now()); err != nil {
		return "", fmt.Errorf("%s is not a valid schedule: %s; use a cron spec with 5 fields, or 6 with leading seconds, or a descriptor such as \"@every 5m\" or \"@hourly\"", quote(s), clear.Sanitize(err.Error()))
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
		return "", fmt.Errorf("%s is not an HTTP header name", quote(s))
	}
	if h := strings.ToLower(s); slices.Contains(notTokenHeaders, h) {
		return "", fmt.Errorf("%s cannot carry the token: the gateway or Go's HTTP client sets or removes it on every request", quote(s))
	}
	return strings.ToLower(s), nil
}

// checkProbePath validates a probe's path and query by clear.CheckProbePath, the rule the gateway
// checks again when it sends the probe (so a path refused there would be dropped at every probe
// without a word).
func checkProbePath(s string) (string, error) {
	switch err := clear.CheckProbePath(s); {
	case errors.Is(err, clear.ErrProbeTokenAPI):
		return "", fmt.Errorf("%s is Clear's token API: each probe would ask for a token and revoke the one in use", quote(s))
	case err != nil:
		return "", fmt.Errorf("%s is not a path; want /PATH[?QUERY] of at most %d printable characters, below the base URL, without \".\" or \"..\" segments", quote(s), clear.MaxProbePath)
	}
	return s, nil
}

// text accepts any value (a path, read by whoever uses it).
func text(s string) (string, error) { return s, nil }

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
		return false, fmt.Errorf("%s is not allowed; the one value is %q (unset: the hook's input is empty)", quote(s), HookStdinToken)
	}
	return true, nil
}
