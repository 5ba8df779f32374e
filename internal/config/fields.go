package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// The validators below share one shape: they take the trimmed text of a
// setting and where it came from, record a problem if it is invalid, and
// return the typed value and whether it is usable. Messages name the field
// first ("daily_limit 300 is out of range 1..250") and say what is allowed.

// maxEcho bounds how much of an invalid value a message repeats, so that a
// pasted blob does not drown the message.
const maxEcho = 80

// quote renders a value for a message: quoted, so that control characters
// and leading spaces are visible and cannot forge log lines, and shortened.
func quote(s string) string {
	if len(s) > maxEcho {
		s = s[:maxEcho] + "..."
	}
	return strconv.Quote(s)
}

// printable returns s as it is when every character of it prints, and
// quoted with escapes otherwise: names and paths chosen by whoever sets the
// environment must not reach a terminal or a log with control or invisible
// characters that could clear a screen or forge a line.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkName validates a client name; names show up in logs, metrics and
// secret descriptions, hence the conservative alphabet.
func checkName(p *problems, l location, s string) bool {
	if !nameRE.MatchString(s) {
		p.bad(l, nil, "%s is not allowed; use 1 to 64 characters from A-Z a-z 0-9 . _ -", quote(s))
		return false
	}
	return true
}

// checkBaseURL validates a Clear API base URL and returns it without a
// trailing slash. Its messages show the URL only through redactURL: a base
// URL's user info or query may carry a password or a key, and neither may
// reach a log. clear.ParseBaseURL has the final word on what is accepted,
// but its message quotes the whole URL, so its reasons are restated here.
func checkBaseURL(p *problems, l location, s string) (string, bool) {
	shown := quote(redactURL(s))
	const want = " (want https://HOST[/PATH]; http:// only for localhost or a loopback address)"
	fail := func(why string) (string, bool) {
		p.bad(l, nil, "is invalid: %s %s%s", shown, why, want)
		return "", false
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fail("is not a URL")
	case u.User != nil || strings.Contains(s, "@"):
		p.bad(l, nil, "must not contain a user name or password (%s); Clear authenticates with the client secret", shown)
		return "", false
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// "https://host/?" would put the token path after a '?'.
		return fail("must not carry a query or a fragment")
	case u.Scheme == "http" && !clear.IsLoopback(u.Hostname()):
		return fail("uses http, but http is allowed only for loopback hosts; use https")
	case u.Scheme != "https" && u.Scheme != "http":
		return fail("has the wrong scheme: scheme must be https")
	case u.Host == "":
		return fail("has no host")
	}
	v, err := clear.ParseBaseURL(s)
	if err != nil {
		return fail("is not accepted as a Clear base URL")
	}
	return strings.TrimRight(v.String(), "/"), true
}

// redactURL returns s with any user info and any query or fragment replaced
// by a marker, working on the text alone so that it also covers strings that
// do not parse as URLs.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + string(s[i]) + redacted
	}
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	// Everything up to the last '@' may be user info, however malformed
	// the rest is; the host after it stays, since it is what to fix.
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = redacted + rest[i:]
	}
	return scheme + rest
}

// checkClientSecret validates a literal client secret without ever quoting it.
func checkClientSecret(p *problems, l location, s string) (clear.ClientSecret, bool) {
	p.secret(s)
	if s == "" {
		p.bad(l, nil, "is empty")
		return clear.ClientSecret{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			p.bad(l, nil, "contains a control character at position %d; it cannot be sent in an HTTP header (the value is not shown)", i+1)
			return clear.ClientSecret{}, false
		}
	}
	return clear.NewClientSecret(s), true
}

// checkClientSecretID validates the id of a client secret's secret without
// echoing it: an operator who confused the two fields would have pasted the
// client secret itself, so an invalid id is also scrubbed as if it were one.
// Valid ids are not scrubbed: an id such as "token" would blank that word in
// every message.
func checkClientSecretID(p *problems, l location, s string) (secretRef, bool) {
	ref, err := parseSecretID(s)
	switch {
	case err == nil:
		return ref, true
	case s == "":
		p.bad(l, nil, "%s", err)
	default:
		p.secret(s)
		p.bad(l, nil, "%s (the value is not shown in case it is a secret)", err)
	}
	return ref, false
}

// checkTokenSecretID validates the id of the token's secret, which may be
// quoted.
func checkTokenSecretID(p *problems, l location, s string) (secretRef, bool) {
	ref, err := parseSecretID(s)
	if err != nil {
		p.bad(l, nil, "%s %s", quote(s), err)
		return ref, false
	}
	return ref, true
}

// checkDailyLimit validates a requests-per-UTC-day limit.
func checkDailyLimit(p *problems, l location, s string) (int, bool) {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		p.bad(l, nil, "%s is not a whole number; allowed 1..%d (default %d)", quote(s), MaxDailyLimit, DefaultDailyLimit)
		return 0, false
	case err != nil || n < 1 || n > MaxDailyLimit:
		p.bad(l, nil, "%s is out of range 1..%d", s, MaxDailyLimit)
		return 0, false
	}
	return n, true
}

// checkDuration validates a Go duration that must be greater than zero and,
// when hi > 0, within lo..hi.
func checkDuration(p *problems, l location, s string, lo, hi time.Duration) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		p.bad(l, nil, "%s is not a Go duration such as \"90s\", \"30m\" or \"2h\"", quote(s))
		return 0, false
	}
	if d <= 0 {
		p.bad(l, nil, "%s must be greater than zero", s)
		return 0, false
	}
	if hi > 0 && (d < lo || d > hi) {
		p.bad(l, nil, "%s is out of range %s..%s", s, seconds(lo), seconds(hi))
		return 0, false
	}
	return d, true
}

// Renewal limits. Every rotation revokes the token an ERP holds, so a
// setting that would rotate more often than timing.MinInterval is refused at
// start-up rather than left to the engine's floor; the upper bounds keep the
// arithmetic far from overflow and catch a unit mistake (8760 meant as hours
// but written as "8760h0m" minutes, say) that would silently mean "never".
const (
	MaxRenewBefore = 366 * 24 * time.Hour
	MaxMaxAge      = 10 * 366 * 24 * time.Hour
)

// checkPositive validates a duration greater than zero.
func checkPositive(p *problems, l location, s string) (time.Duration, bool) {
	return checkDuration(p, l, s, 0, 0)
}

// checkClearTimeout validates CLEAR_TIMEOUT.
func checkClearTimeout(p *problems, l location, s string) (time.Duration, bool) {
	return checkDuration(p, l, s, MinClearTimeout, MaxClearTimeout)
}

// checkRenewBefore validates renew_before: more than zero and at most a year.
func checkRenewBefore(p *problems, l location, s string) (time.Duration, bool) {
	d, ok := checkDuration(p, l, s, 0, 0)
	if ok && d > MaxRenewBefore {
		p.bad(l, nil, "%s is absurdly long; at most %s (366 days) is allowed", s, MaxRenewBefore)
		return 0, false
	}
	return d, ok
}

// checkMaxAge validates max_age: at least timing.MinInterval, at most ten
// years.
func checkMaxAge(p *problems, l location, s string) (time.Duration, bool) {
	d, ok := checkDuration(p, l, s, 0, 0)
	switch {
	case !ok:
	case d < timing.MinInterval:
		p.bad(l, nil, "%s is below %s, the least time between two rotations of a client; every rotation revokes the token in use", s, timing.MinInterval)
		return 0, false
	case d > MaxMaxAge:
		p.bad(l, nil, "%s is absurdly long; at most %s (ten years) is allowed, or leave it unset for never", s, MaxMaxAge)
		return 0, false
	}
	return d, ok
}

// checkBudget refuses a max_age that needs more rotations per UTC day than
// the daily limit allows: such a client would run out of requests every day
// and spend the rest of it refusing to rotate.
func checkBudget(p *problems, l location, maxAge time.Duration, dailyLimit int) {
	if maxAge <= 0 || dailyLimit <= 0 {
		return
	}
	perDay := int64(24 * time.Hour / maxAge)
	if perDay <= int64(dailyLimit) {
		return
	}
	least := (24*time.Hour + time.Duration(dailyLimit) - 1) / time.Duration(dailyLimit)
	least = (least + time.Minute - 1).Truncate(time.Minute)
	p.bad(l, nil, "%s means %d rotations a day, more than the daily limit of %d requests allows; set it to at least %s or raise the daily limit",
		maxAge, perDay, dailyLimit, least)
}

// seconds formats a whole number of seconds as "120s" rather than "2m0s",
// matching how the limits are documented.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// checkHTTPAddr validates a listen address of the form [HOST]:PORT: HOST is
// empty (every interface), an IP address or a host name; PORT is 0..65535 in
// decimal digits, 0 asking the kernel for a free port (the daemon logs the
// port bound). net.Listen would refuse most of the rest only at start-up of
// the daemon, after `check` had called the configuration valid.
func checkHTTPAddr(p *problems, l location, s string) (string, bool) {
	if s == "" {
		return "", true // set but empty: no listener
	}
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil || len(port) > 5 || strings.Trim(port, "0123456789") != "" || n > 65535 || !isHost(host) {
		p.bad(l, nil, "%s is not a listen address; want [HOST]:PORT with a port of 0..65535, such as \":9090\" or \"127.0.0.1:9090\", or set it empty to disable the listener", quote(s))
		return "", false
	}
	return s, true
}

// isHost reports whether s is empty, an IP address (with a zone, for a
// link-local IPv6 address) or a host name.
func isHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil || s == "" {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return false
		}
	}
	return true
}

// scheduleParser accepts five-field cron specs, six with leading seconds,
// and descriptors such as "@hourly" and "@every 5m".
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a ROTATOR_SCHEDULE spec exactly as Load validates it,
// so that the daemon and the validation cannot disagree. It guards against
// two traps in robfig/cron v3.0.1: a "TZ=..." prefix without a following
// space panics, and "@every" with less than a second (including a negative
// duration) silently becomes every second. It also refuses a schedule that
// never fires, such as "0 0 30 2 *" (February 30th): robfig/cron's Next
// returns the zero time when it finds no activation within five years, and a
// daemon on such a schedule would rotate once at start and never again.
func ParseSchedule(spec string) (cron.Schedule, error) {
	return parseSchedule(spec, time.Now())
}

// scheduleReference is a fixed instant from which every schedule must fire,
// so that whether a spec is accepted does not depend on the day it is
// checked; now is checked as well, in case a spec fires only in some years.
var scheduleReference = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

func parseSchedule(spec string, now time.Time) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("malformed schedule: %v", r)
		}
	}()
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, errors.New("a TZ= or CRON_TZ= prefix must be followed by a space and the schedule")
	}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, perr := time.ParseDuration(strings.TrimSpace(rest))
		if perr == nil && d < time.Second {
			return nil, fmt.Errorf("@every needs at least 1s, not %s", d)
		}
	}
	sched, err = scheduleParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	for _, from := range []time.Time{scheduleReference, now} {
		if sched.Next(from).IsZero() {
			return nil, errors.New("it never fires (no activation within five years, e.g. a day that does not exist in that month)")
		}
	}
	return sched, nil
}

func checkSchedule(p *problems, l location, s string) (string, bool) {
	if _, err := ParseSchedule(s); err != nil {
		p.bad(l, err, "%s is not a valid schedule: %s; use a cron spec with 5 fields, or 6 with leading seconds, or a descriptor such as \"@every 5m\" or \"@hourly\"", quote(s), clear.Sanitize(err.Error()))
		return "", false
	}
	return s, true
}
