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

// The validators take the trimmed text of a setting and where it came from,
// record any problem (the field's name first, then what is allowed) and
// return the typed value and whether it is usable.

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

// checkName validates a client name, which shows up in logs, metrics and
// secret descriptions.
func checkName(p *problems, l location, s string) bool {
	ok := nameRE.MatchString(s)
	if !ok {
		p.bad(l, nil, "%s is not allowed; use 1 to 64 characters from A-Z a-z 0-9 . _ -", quote(s))
	}
	return ok
}

// checkBaseURL validates a Clear API base URL and returns it without a
// trailing slash. Messages show it only through redactURL: its user info or
// query may carry a password or a key. clear.ParseBaseURL has the final word,
// but its message quotes the whole URL, so its reasons are restated here.
func checkBaseURL(p *problems, l location, s string) (string, bool) {
	shown := quote(redactURL(s))
	why := ""
	u, err := url.Parse(s)
	switch {
	case err != nil:
		why = "is not a URL"
	case u.User != nil || strings.Contains(s, "@"):
		p.bad(l, nil, "must not contain a user name or password (%s); Clear authenticates with the client secret", shown)
		return "", false
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "": // "https://host/?" would put the token path after a '?'
		why = "must not carry a query or a fragment"
	case u.Scheme == "http" && !clear.IsLoopback(u.Hostname()):
		why = "uses http, but http is allowed only for loopback hosts; use https"
	case u.Scheme != "https" && u.Scheme != "http":
		why = "has the wrong scheme: scheme must be https"
	case u.Host == "":
		why = "has no host"
	}
	v, err := clear.ParseBaseURL(s)
	if why == "" && err != nil {
		why = "is not accepted as a Clear base URL"
	}
	if why != "" {
		p.bad(l, nil, "is invalid: %s %s (want https://HOST[/PATH]; http:// only for localhost or a loopback address)", shown, why)
		return "", false
	}
	return strings.TrimRight(v.String(), "/"), true
}

// redactURL replaces any user info, query or fragment of s by a marker,
// working on the text alone so that it also covers what does not parse.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i+1] + redacted
	}
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	// Everything up to the last '@' may be user info; the host stays.
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
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		p.bad(l, nil, "contains a control character at position %d; it cannot be sent in an HTTP header (the value is not shown)", i+1)
		return clear.ClientSecret{}, false
	}
	return clear.NewClientSecret(s), true
}

// checkClientSecretID validates the id of a client secret's secret without
// echoing it: an operator who confused the fields pasted the secret itself, so
// an invalid id is scrubbed like one. A valid id is not: "token" would blank
// that word in every message.
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

// checkTokenSecretID validates the id of the token's secret, which is quoted.
func checkTokenSecretID(p *problems, l location, s string) (secretRef, bool) {
	ref, err := parseSecretID(s)
	if err != nil {
		p.bad(l, nil, "%s %s", quote(s), err)
	}
	return ref, err == nil
}

func checkDailyLimit(p *problems, l location, s string) (int, bool) {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		p.bad(l, nil, "%s is not a whole number; allowed 1..%d (default %d)", quote(s), MaxDailyLimit, DefaultDailyLimit)
	case err != nil || n < 1 || n > MaxDailyLimit:
		p.bad(l, nil, "%s is out of range 1..%d", s, MaxDailyLimit)
	default:
		return n, true
	}
	return 0, false
}

// Every rotation revokes the token an ERP holds, so a max_age below
// timing.MinInterval is refused at start-up rather than left to the engine's
// floor; the upper bounds keep the arithmetic far from overflow and catch a
// unit mistake that would silently mean "never".
const (
	MaxRenewBefore = 366 * 24 * time.Hour
	MaxMaxAge      = 10 * 366 * 24 * time.Hour
)

// duration returns a validator of a Go duration greater than zero and within
// lo..hi (hi 0: no bound); lowWhy and highWhy, when given, explain the bounds
// instead of the plain "out of range".
func duration(lo, hi time.Duration, lowWhy, highWhy string) func(*problems, location, string) (time.Duration, bool) {
	return func(p *problems, l location, s string) (time.Duration, bool) {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			p.bad(l, nil, "%s is not a Go duration such as \"90s\", \"30m\" or \"2h\"", quote(s))
		case d <= 0:
			p.bad(l, nil, "%s must be greater than zero", s)
		case (d < lo || hi > 0 && d > hi) && highWhy == "":
			p.bad(l, nil, "%s is out of range %s..%s", s, seconds(lo), seconds(hi))
		case d < lo:
			p.bad(l, nil, "%s is below %s, %s", s, lo, lowWhy)
		case hi > 0 && d > hi:
			p.bad(l, nil, "%s is absurdly long; at most %s %s", s, hi, highWhy)
		default:
			return d, true
		}
		return 0, false
	}
}

var (
	checkPositive     = duration(0, 0, "", "")
	checkClearTimeout = duration(MinClearTimeout, MaxClearTimeout, "", "")
	checkRenewBefore  = duration(0, MaxRenewBefore, "", "(366 days) is allowed")
	checkMaxAge       = duration(timing.MinInterval, MaxMaxAge,
		"the least time between two rotations of a client; every rotation revokes the token in use",
		"(ten years) is allowed, or leave it unset for never")
)

// checkBudget refuses a max_age that needs more rotations per UTC day than
// the daily limit allows: the client would spend each day refusing to rotate.
func checkBudget(p *problems, l location, maxAge time.Duration, dailyLimit int) {
	if maxAge <= 0 || dailyLimit <= 0 || int64(24*time.Hour/maxAge) <= int64(dailyLimit) {
		return
	}
	least := (24*time.Hour + time.Duration(dailyLimit) - 1) / time.Duration(dailyLimit)
	least = (least + time.Minute - 1).Truncate(time.Minute)
	p.bad(l, nil, "%s means %d rotations a day, more than the daily limit of %d requests allows; set it to at least %s or raise the daily limit",
		maxAge, int64(24*time.Hour/maxAge), dailyLimit, least)
}

// seconds formats a whole number of seconds as "120s", as the limits are
// documented, rather than "2m0s".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// checkHTTPAddr validates a listen address [HOST]:PORT: HOST empty (every
// interface), an IP address or a host name; PORT 0..65535 in decimal digits,
// 0 asking for any free port (the daemon logs the one bound). Set but empty
// means no listener.
func checkHTTPAddr(p *problems, l location, s string) (string, bool) {
	if s == "" {
		return "", true
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
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return false
		}
	}
	return len(s) <= 253
}

// scheduleParser accepts five fields, six with leading seconds, and
// descriptors such as "@hourly" and "@every 5m".
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a ROTATOR_SCHEDULE spec exactly as Load validates it,
// so that the daemon and the validation cannot disagree. It guards against
// robfig/cron v3.0.1's traps: a "TZ=..." prefix without a space panics;
// "@every" with less than a second silently becomes every second; and a spec
// that never fires ("0 0 30 2 *") makes Next return the zero time, so a
// daemon would rotate once and never again.
func ParseSchedule(spec string) (cron.Schedule, error) {
	return parseSchedule(spec, time.Now())
}

// scheduleReference is an instant from which every schedule must fire, so
// that acceptance does not depend on the day (now is checked as well).
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
		if d, perr := time.ParseDuration(strings.TrimSpace(rest)); perr == nil && d < time.Second {
			return nil, fmt.Errorf("@every needs at least 1s, not %s", d)
		}
	}
	if sched, err = scheduleParser.Parse(spec); err != nil {
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
