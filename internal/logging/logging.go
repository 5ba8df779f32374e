// Package logging builds the rotator's one slog.Logger, so that every command
// logs the same way: human-friendly text (via tint) on a terminal, JSON for
// log collectors otherwise, times in UTC so that lines from different hosts
// and the UTC-day request budget line up without conversions.
//
// It also installs a safety net against leaking credentials. The secret
// package's ClientSecret and AccessToken redact themselves wherever they are
// printed, but a raw string that slipped out of one (a Reveal() passed to a
// log call by mistake) would not; ReplaceAttr therefore blanks string values
// logged under the keys such values are usually logged under. The text format
// also renders structs, maps and slices as JSON, because fmt cannot reach the
// redacting methods of a secret kept in an unexported field.
//
// This package must not import internal/config: config uses ParseLevel and
// ParseFormat to validate LOG_LEVEL and LOG_FORMAT.
package logging

import (
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/lmittmann/tint"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// Log formats accepted by New and returned by ParseFormat. The empty string
// means "text on a terminal, JSON otherwise".
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Redacted replaces the value of a sensitive attribute: secret.Marker, the
// marker every confidential value prints, so that one grep finds both.
const Redacted = secret.Marker

// textTimeFormat is RFC 3339 with milliseconds, the same instant format as
// the JSON output, so that text and JSON logs can be compared line by line.
const textTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// New returns a logger writing to w at the given minimum level. format is
// FormatText, FormatJSON or "" for automatic (text when w is a terminal);
// any other value is treated like "", since New has no way to report it and
// ParseFormat is where formats are validated. Colour is used only when w is a
// terminal, so that redirected output carries no escape codes.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	return NewWith(w, Options{Level: level, Format: format})
}

// Options are New's settings, plus those that most callers leave alone.
type Options struct {
	Level  slog.Level
	Format string // as for New
	// NoColor turns colour off even on a terminal; set it when the NO_COLOR
	// environment variable is set and not empty (https://no-color.org).
	NoColor bool
}

// NewWith is New with all the options.
func NewWith(w io.Writer, o Options) *slog.Logger {
	return newLogger(w, o, IsTerminal(w))
}

// newLogger takes whether w is a terminal as a parameter, so that tests can
// check the colour decision without a terminal.
func newLogger(w io.Writer, o Options, term bool) *slog.Logger {
	format := o.Format
	if format != FormatText && format != FormatJSON {
		format = FormatJSON
		if term {
			format = FormatText
		}
	}
	if format == FormatText {
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:       o.Level,
			TimeFormat:  textTimeFormat,
			NoColor:     !term || o.NoColor,
			ReplaceAttr: textReplaceAttr,
		}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       o.Level,
		ReplaceAttr: ReplaceAttr,
	}))
}

// IsTerminal reports whether w is a character device such as a terminal.
// It relies on os.File.Stat alone, so that no terminal library is needed;
// /dev/null also counts, which is harmless because nobody reads it.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ParseLevel parses a LOG_LEVEL value: debug, info, warn (or warning) or
// error, in any case. The empty string means info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("%q is not a log level; use debug, info, warn or error", s)
}

// ParseFormat parses a LOG_FORMAT value: text, json (in any case) or empty
// for automatic. It returns the canonical lower-case form.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case "", FormatText, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("%q is not a log format; use text or json, or leave it empty for text on a terminal and json otherwise", s)
}

// sensitiveKeys are attribute keys under which a credential is typically
// logged, compared case-insensitively; the last two are Clear's header names.
var sensitiveKeys = map[string]bool{
	"client_secret":         true,
	"access_token":          true,
	"token":                 true,
	"secret":                true,
	"x-clear-client-secret": true,
	"x-cleartax-auth-token": true,
}

// IsSensitiveKey reports whether attributes with this key are redacted.
func IsSensitiveKey(key string) bool {
	return sensitiveKeys[strings.ToLower(key)]
}

// ReplaceAttr is the slog.HandlerOptions.ReplaceAttr that New installs. It
// puts the record's time in UTC and replaces the value of any attribute with
// a sensitive key (see IsSensitiveKey), in any group, by Redacted when that
// value is a string or string-like ([]byte, a named string type). Other kinds
// are left alone: a number or a struct under "token" is not a credential, and
// the secret package's types have already resolved to Redacted through
// their LogValue methods by the time a handler calls ReplaceAttr.
func ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
		return a
	}
	if IsSensitiveKey(a.Key) && isStringLike(a.Value) {
		a.Value = slog.StringValue(Redacted)
	}
	return a
}

// textReplaceAttr is ReplaceAttr plus one more guard for the text format.
// tint prints structs, maps and slices with fmt's %+v, which cannot call the
// redacting methods of a clear.ClientSecret held in an unexported field (fmt
// may not call methods through unexported fields), so such a value would
// print its raw contents. Rendering composites with encoding/json instead
// applies the same rules as the JSON format: MarshalJSON redacts, and
// unexported fields are left out.
func textReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	a = ReplaceAttr(groups, a)
	if a.Value.Kind() == slog.KindAny {
		if s, ok := compositeText(a.Value.Any()); ok {
			a.Value = slog.StringValue(s)
		}
	}
	return a
}

// compositeText renders v as JSON when it is a struct, map, slice or array
// (or a pointer to one) with no printing method of its own; ok is false for
// everything tint prints safely by itself.
func compositeText(v any) (s string, ok bool) {
	switch v.(type) {
	case nil, encoding.TextMarshaler, error, fmt.Stringer, fmt.Formatter, *slog.Source:
		return "", false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "", false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Struct, reflect.Map, reflect.Array:
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return "", false // []byte prints as text
		}
	default:
		return "", false
	}
	data, err := json.Marshal(v)
	if err != nil {
		// Falling back to %+v would reopen the leak this function closes.
		return fmt.Sprintf("[unloggable %T: %v]", v, err), true
	}
	return string(data), true
}

func isStringLike(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString:
		return true
	case slog.KindAny:
		rv := reflect.ValueOf(v.Any())
		switch rv.Kind() {
		case reflect.String:
			return true
		case reflect.Slice:
			return rv.Type().Elem().Kind() == reflect.Uint8
		}
	}
	return false
}
