package settings

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The validators are pure functions of the trimmed text of a setting: they
// return the typed value, or an error that reads after the setting's name
// ("300 is out of range 1..250") and says what is allowed; a read records it.
// An error never quotes a value that may be a secret, and one that wraps a
// cause keeps it for errors.Is. These are the generic ones; a table's owner
// writes those of its own kinds the same way.

// maybeSecret marks a refusal of a value that may be a secret pasted into the
// wrong field: the read scrubs the value from every message.
type maybeSecret struct{ error }

// HideValue returns err marked so that the read scrubs the value refused
// from every message: it may be a secret pasted into the wrong field.
func HideValue(err error) error { return maybeSecret{err} }

// Quote renders a value for a message: quoted, so that control characters
// cannot forge log lines, and cut at 80 bytes so that a pasted blob does not
// drown the message.
func Quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

// Printable returns s as it is when every character prints, else quoted with
// escapes: a name or path chosen by whoever sets the environment must not
// reach a terminal or a log with characters that clear a screen or forge a line.
func Printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidName reports whether s can be an entry's name. What cannot be one is never quoted back by a
// caller looking a name up: it may be a secret pasted into the wrong field.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// checkName validates an entry's name, which shows up in logs, metrics and
// secret descriptions.
func checkName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s is not allowed; use 1 to 64 characters from A-Z a-z 0-9 . _ -", Quote(s))
	}
	return nil
}

// Text accepts any value (a path, read by whoever uses it).
func Text(s string) (string, error) { return s, nil }

// Count returns a validator of a whole number in 1..hi.
func Count[T int | int64](hi, def T) func(string) (T, error) {
	return func(s string) (T, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			return 0, fmt.Errorf("%s is not a whole number; allowed 1..%d (default %d)", Quote(s), hi, def)
		case err != nil || n < 1 || n > int64(hi):
			return 0, fmt.Errorf("%s is out of range 1..%d", s, hi)
		}
		return T(n), nil
	}
}

// Duration returns a validator of a Go duration greater than zero and within
// lo..hi (hi 0: no bound). why, when given, is two texts that explain the low
// and the high bound instead of the plain "out of range".
func Duration(lo, hi time.Duration, why ...string) func(string) (time.Duration, error) {
	return func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			return 0, fmt.Errorf("%s is not a Go duration such as \"90s\", \"30m\" or \"2h\"", Quote(s))
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

// seconds formats a whole number of seconds as "120s", as the limits are
// documented, rather than "2m0s".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// ListenAddr returns a validator of a listen address [HOST]:PORT: HOST empty
// (every interface), an IP address or a host name; PORT 0..65535 in decimal
// digits, 0 asking for any free port (the daemon logs the one bound). Set but
// empty (a KeepEmpty setting) means no listener.
func ListenAddr(examples string) func(string) (string, error) {
	return func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || len(port) > 5 || strings.Trim(port, "0123456789") != "" || n > 65535 || !isHost(host) {
			return "", fmt.Errorf("%s is not a listen address; want [HOST]:PORT with a port of 0..65535, such as %s", Quote(s), examples)
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
