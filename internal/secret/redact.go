package secret

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinLength is the shortest secret the redactor looks for: replacing a shorter one would shred
// ordinary text, and no real client secret, token or key is that short.
const MinLength = 8

// Window is the shortest piece of a longer secret that counts as the secret: text cut to its
// first 20 characters, or that quotes its middle, still gives most of it away. Sixteen characters
// of a random secret never occur by chance (16 hex digits are 64 bits).
const Window = 16

// Redact replaces with Marker every place in text that spells one of the secrets of at least
// MinLength bytes: the secret itself, upper- or lower-case, URL-encoded (either case of the hex
// digits), JSON-escaped (\/), split by invisible characters such as U+200B, and any run of at
// least Window characters of any of those spellings (a secret cut short). Overlapping finds of
// several secrets become one Marker. Redact text before it is cut to a length, or a cut could
// leave part of a secret behind.
func Redact(text string, secrets ...string) string { return NewMatcher(secrets...).Redact(text) }

// Reveals reports whether Redact would change text: whether text spells one of the secrets.
func Reveals(text string, secrets ...string) bool { return NewMatcher(secrets...).Reveals(text) }

// Matcher finds a fixed set of secrets in text. Build one with NewMatcher to check many texts
// for the same secrets (a leak scan); Redact and Reveals build one per call.
type Matcher struct {
	whole   [][]byte            // folded spellings shorter than Window, found whole
	windows map[string]struct{} // every Window-long piece of the longer folded spellings
	// filter has a bit set for the hash of each window's first 4 bytes, so that most places in a
	// text are passed over without a map lookup: a leak scan reads megabytes of logs.
	filter []uint64
	shift  uint
}

// filterBits is the filter's size per window, as a power of two: about 1 in 64 places of a text
// that starts no window costs a map lookup.
const filterBits = 6

func (m *Matcher) slot(b []byte) uint32 {
	h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	return (h * 0x9e3779b1) >> m.shift
}

func (m *Matcher) buildFilter() {
	bits := uint(12) // at least 4096 bits
	for 1<<(bits-filterBits) < len(m.windows) && bits < 30 {
		bits++
	}
	m.filter, m.shift = make([]uint64, 1<<(bits-6)), 32-bits
	for w := range m.windows {
		i := m.slot([]byte(w[:4]))
		m.filter[i/64] |= 1 << (i % 64)
	}
}

// NewMatcher returns a Matcher for the secrets of at least MinLength bytes; shorter ones, and
// empty ones, are ignored.
func NewMatcher(secrets ...string) *Matcher {
	m := &Matcher{}
	for _, s := range secrets {
		if len(fold(s, false).b) < MinLength {
			continue
		}
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			f := fold(v, false).b
			if len(f) < Window {
				m.whole = append(m.whole, f)
				continue
			}
			if m.windows == nil {
				m.windows = map[string]struct{}{}
			}
			for i := 0; i+Window <= len(f); i++ {
				m.windows[string(f[i:i+Window])] = struct{}{}
			}
		}
	}
	if m.windows != nil {
		m.buildFilter()
	}
	return m
}

// Redact replaces every spelling of m's secrets in text with Marker (see the package's Redact).
func (m *Matcher) Redact(text string) string {
	if m.empty() {
		return text
	}
	f := fold(text, true)
	found := m.find(f.b)
	if len(found) == 0 {
		return text
	}
	var b strings.Builder
	last := 0
	for _, r := range found {
		from, to := f.start[r[0]], f.end[r[1]-1]
		b.WriteString(text[last:from])
		b.WriteString(Marker)
		last = to
	}
	b.WriteString(text[last:])
	return b.String()
}

// Reveals reports whether text spells one of m's secrets.
func (m *Matcher) Reveals(text string) bool {
	return !m.empty() && len(m.find(fold(text, false).b)) > 0
}

func (m *Matcher) empty() bool { return len(m.whole) == 0 && len(m.windows) == 0 }

// find returns the stretches of the folded text t that spell a secret, as [from, to) indices into
// t, sorted and merged where they overlap or touch.
func (m *Matcher) find(t []byte) [][2]int {
	var found [][2]int
	for _, w := range m.whole {
		for off := 0; ; {
			i := bytes.Index(t[off:], w)
			if i < 0 {
				break
			}
			found = append(found, [2]int{off + i, off + i + len(w)})
			off += i + 1
		}
	}
	if m.windows != nil {
		for i := 0; i+Window <= len(t); i++ {
			if j := m.slot(t[i:]); m.filter[j/64]&(1<<(j%64)) == 0 {
				continue
			}
			if _, ok := m.windows[string(t[i:i+Window])]; ok {
				found = append(found, [2]int{i, i + Window})
			}
		}
	}
	return merge(found)
}

// merge sorts stretches by start and joins those that overlap or touch.
func merge(s [][2]int) [][2]int {
	if len(s) < 2 {
		return s
	}
	// Insertion sort: the whole spellings come before the windows, each group already sorted.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j][0] < s[j-1][0]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	out := s[:1]
	for _, r := range s[1:] {
		if last := &out[len(out)-1]; r[0] <= last[1] {
			last[1] = max(last[1], r[1])
		} else {
			out = append(out, r)
		}
	}
	return out
}

// folded is text as the matcher compares it: ASCII letters in lower case (so that an upper-cased
// secret and the hex digits of %2f and %2F match), without backslashes (JSON writes / as \/) and
// without invisible characters (which can split a secret without changing how it reads). When
// asked, start and end give, for each byte of b, the bytes of the original text it stands for (a
// whole character, so that a replacement never cuts one).
type folded struct {
	b          []byte
	start, end []int
}

func fold(s string, spans bool) folded {
	f := folded{b: make([]byte, 0, len(s))}
	emit := func(c byte, from, to int) {
		f.b = append(f.b, c)
		if spans {
			f.start, f.end = append(f.start, from), append(f.end, to)
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				emit(c, i, i+1)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !Invisible(r) {
			for j := range n {
				emit(s[i+j], i, i+n)
			}
		}
		i += n
	}
	return f
}

// Invisible reports whether r shows nothing where it stands: a format control (U+200B, U+2060,
// U+FEFF, U+00AD, a bidi control, a tag character) or another default-ignorable character.
func Invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// RedactURL replaces any user info, query or fragment of s by Marker, working on the text alone so
// that it also covers what does not parse: a URL an operator wrote may carry a password or a key
// there, and a message about a URL that was refused must still not show it. A password that is
// malformed may hold '?' or '#' (or '/'), so an '@' after the first '?' or '#' may end user info
// as well as sit in a query: the text cannot tell which, and then nothing after the scheme is shown.
func RedactURL(s string) string {
	cut := len(s) // where the query or fragment begins
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		cut = i
	}
	scheme, rest := "", s
	if i := strings.Index(s[:cut], "://"); i >= 0 {
		scheme, rest, cut = s[:i+3], s[i+3:], cut-(i+3)
	}
	head, tail := rest[:cut], rest[cut:]
	at := strings.LastIndexByte(rest, '@') // everything up to the last '@' may be user info
	switch {
	case at >= cut:
		return scheme + Marker
	case at >= 0:
		head = Marker + head[at:]
	}
	if tail != "" {
		tail = tail[:1] + Marker
	}
	return scheme + head + tail
}

// goProxyError is how Go's proxy lookup (httpproxy's parseProxy) refuses a proxy address:
// "invalid proxy address %q: %v", the address and url.Parse's reason.
const goProxyError = "invalid proxy address "

// RedactProxyText is an error's text told without a proxy's user info, query or fragment
// (RedactURL). Go's own refusal of a malformed HTTPS_PROXY or HTTP_PROXY quotes it whole, password
// included, and url.Parse's reason after it may quote part of it again (`invalid port ":hunter2"
// after host`, an invalid escape): the address is kept, redacted, and the reason dropped. Other
// text has its URLs redacted.
func RedactProxyText(msg string) string {
	if i := strings.Index(msg, goProxyError); i >= 0 {
		rest := msg[i+len(goProxyError):]
		if q, qerr := strconv.QuotedPrefix(rest); qerr == nil {
			if addr, uerr := strconv.Unquote(q); uerr == nil {
				return msg[:i] + goProxyError + strconv.Quote(RedactURL(addr)) +
					" (HTTPS_PROXY or HTTP_PROXY is not a valid URL; its value is shown redacted)"
			}
		}
	}
	return RedactURL(msg)
}
