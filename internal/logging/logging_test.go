package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

const (
	secretValue = "cs-9f8e7d6c5b4a3210-SECRET"
	tokenValue  = "tok-0123456789abcdef-TOKEN"
)

// jsonLines decodes one JSON object per line, failing on anything else.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line is not JSON: %q: %v", sc.Text(), err)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestJSONOutput(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, FormatJSON)
	log.Debug("hidden")
	log.Info("shown", "client", "erp-a", "n", 3)
	log.Warn("warned")
	recs := jsonLines(t, buf.String())
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2 (debug filtered):\n%s", len(recs), buf.String())
	}
	r := recs[0]
	if r["msg"] != "shown" || r["level"] != "INFO" || r["client"] != "erp-a" || r["n"] != 3.0 {
		t.Errorf("record = %v", r)
	}
	ts, _ := r["time"].(string)
	parsed, err := time.Parse(time.RFC3339, ts)
	if err != nil || !strings.HasSuffix(ts, "Z") || parsed.Location() != time.UTC {
		t.Errorf("time %q is not UTC RFC 3339: %v", ts, err)
	}
	if recs[1]["level"] != "WARN" {
		t.Errorf("record = %v", recs[1])
	}
}

func TestTextOutput(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelWarn, FormatText)
	log.Info("hidden")
	log.Error("failed", "client", "erp-a")
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "ERR failed client=erp-a") {
		t.Errorf("text output = %q", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour written to a non-terminal: %q", out)
	}
	ts, _, _ := strings.Cut(out, " ")
	if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
		t.Errorf("time %q is not UTC RFC 3339: %v", ts, err)
	}
}

// TestAutoFormat checks that "" (and anything New does not know) picks JSON
// for a writer that is not a terminal.
func TestAutoFormat(t *testing.T) {
	for _, f := range []string{"", "bogus"} {
		var buf bytes.Buffer
		New(&buf, slog.LevelInfo, f).Info("hello")
		jsonLines(t, buf.String())
	}
	// A regular file is not a terminal either.
	file, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if IsTerminal(file) {
		t.Error("regular file reported as a terminal")
	}
	New(file, slog.LevelInfo, "").Info("hello")
	data, _ := os.ReadFile(file.Name())
	jsonLines(t, string(data))
	if IsTerminal(&bytes.Buffer{}) || IsTerminal((*os.File)(nil)) {
		t.Error("non-file reported as a terminal")
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"": slog.LevelInfo, "info": slog.LevelInfo, "INFO": slog.LevelInfo, " debug ": slog.LevelDebug,
		"Warn": slog.LevelWarn, "warning": slog.LevelWarn, "ERROR": slog.LevelError,
	} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"verbose", "trace", "fatal", "0", "-4"} {
		if _, err := ParseLevel(in); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
			t.Errorf("ParseLevel(%q) error = %v", in, err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]string{"": "", "text": "text", "JSON": "json", " Text ": "text"} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"xml", "logfmt", "pretty"} {
		if _, err := ParseFormat(in); err == nil {
			t.Errorf("ParseFormat(%q) accepted", in)
		}
	}
}

// TestRedactionNet checks that plain strings under sensitive keys are
// blanked in any case, in groups and in both formats, and that other
// attributes are untouched.
func TestRedactionNet(t *testing.T) {
	for _, format := range []string{FormatJSON, FormatText} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := New(&buf, slog.LevelInfo, format)
			type named string
			log.Info("leaky",
				"client_secret", secretValue,
				"Access_Token", tokenValue,
				"TOKEN", tokenValue,
				"secret", []byte(secretValue),
				"X-Clear-Client-Secret", named(secretValue),
				slog.Group("headers", "x-cleartax-auth-token", tokenValue),
				"token_secret_id", "clear/token", // an id, not a credential
				"token", 42, // not a string: left alone
			)
			log.With("secret", secretValue).WithGroup("g").Info("with", "access_token", tokenValue)
			out := buf.String()
			for _, leak := range []string{secretValue, tokenValue} {
				if strings.Contains(out, leak) {
					t.Errorf("output leaks %q:\n%s", leak, out)
				}
			}
			if strings.Count(out, Redacted) != 8 || !strings.Contains(out, "clear/token") || !strings.Contains(out, "42") {
				t.Errorf("unexpected output:\n%s", out)
			}
		})
	}
	// ReplaceAttr on its own, as other handlers may install it.
	if a := ReplaceAttr([]string{"x"}, slog.String("SECRET", "v")); a.Value.String() != Redacted {
		t.Errorf("ReplaceAttr = %v", a)
	}
	if a := ReplaceAttr(nil, slog.String("client", "v")); a.Value.String() != "v" {
		t.Errorf("ReplaceAttr = %v", a)
	}
	loc := time.FixedZone("IST", 5*3600+1800)
	if a := ReplaceAttr(nil, slog.Time(slog.TimeKey, time.Date(2024, 1, 2, 3, 4, 5, 0, loc))); a.Value.Time().Location() != time.UTC {
		t.Errorf("time not converted to UTC: %v", a)
	}
}

// holder is how a secret typically travels: inside a struct.
type holder struct {
	Name   string
	Secret clear.ClientSecret
	Grant  clear.Grant
	hidden clear.AccessToken // fmt cannot call Format through an unexported field
	nested []hiddenSecret
}

type hiddenSecret struct{ s clear.ClientSecret }

// TestTypedSecretsNeverShow logs clear.ClientSecret and clear.AccessToken
// every way a caller plausibly might, under harmless keys so that only the
// types' own redaction (not the key-based net) protects them.
func TestTypedSecretsNeverShow(t *testing.T) {
	secret := clear.NewClientSecret(secretValue)
	token := clear.NewAccessToken(tokenValue)
	valid := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	h := holder{Name: "erp-a", Secret: secret, Grant: clear.Grant{AccessToken: token, ValidTill: &valid},
		hidden: token, nested: []hiddenSecret{{secret}}}
	for _, format := range []string{FormatJSON, FormatText} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := New(&buf, slog.LevelDebug, format)
			log.Info("attrs", "a", secret, "b", token, slog.Any("c", secret), slog.Any("d", token))
			log.Info("struct", slog.Any("holder", h), slog.Any("ptr", &h), slog.Any("grant", h.Grant))
			log.Info("slices", "secrets", []clear.ClientSecret{secret}, "tokens", map[string]clear.AccessToken{"k": token},
				"hidden", []hiddenSecret{{secret}}, "array", [1]hiddenSecret{{secret}}, "map", map[string]hiddenSecret{"k": {secret}})
			log.Info(fmt.Sprintf("message %v %s %q %+v %#v %x", secret, token, secret, h.Grant, h.Grant, token))
			log.Info("errorf", "err", fmt.Errorf("calling with %v failed", secret))
			log.With("w", secret).WithGroup("g").Debug("grouped", "t", token)
			out := buf.String()
			for _, leak := range []string{secretValue, tokenValue, fmt.Sprintf("%x", tokenValue)} {
				if strings.Contains(out, leak) {
					t.Errorf("output leaks a credential:\n%s", out)
				}
			}
			if n := strings.Count(out, "[REDACTED]"); n < 20 {
				t.Errorf("only %d redaction markers; did something not get logged?\n%s", n, out)
			}
			if format == FormatJSON {
				jsonLines(t, out)
			}
			if !strings.Contains(out, "erp-a") || !strings.Contains(out, "2030-01-01") {
				t.Errorf("harmless fields were lost:\n%s", out)
			}
		})
	}
}

// TestTextComposites checks how the text format renders values that are
// not secrets, so that the JSON rendering of composites does not swallow
// what tint prints well by itself.
func TestTextComposites(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, FormatText)
	log.Info("m", "struct", struct{ A int }{1}, "ptr", &struct{ B string }{"x"}, "nilptr", (*holder)(nil),
		"bytes", []byte("raw"), "time", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "dur", time.Second,
		"err", fmt.Errorf("boom"), "fn", struct{ F func() }{func() {}})
	out := buf.String()
	for _, want := range []string{`struct="{\"A\":1}"`, `ptr="{\"B\":\"x\"}"`, "nilptr=<nil>", `bytes="raw"`,
		"time=2030-01-01T00:00:00.000Z", "dur=1s", "err=boom", "[unloggable struct { F func() }"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

// TestNoColor: on a terminal the text format is coloured unless NO_COLOR
// asks otherwise; the terminal is simulated, since a test has none.
func TestNoColor(t *testing.T) {
	for _, tc := range []struct {
		noColor, wantColour bool
	}{{false, true}, {true, false}} {
		var buf bytes.Buffer
		newLogger(&buf, Options{Format: FormatText, NoColor: tc.noColor}, true).Warn("hello", "k", "v")
		if got := strings.Contains(buf.String(), "\x1b["); got != tc.wantColour {
			t.Errorf("NoColor=%v: colour %v, want %v: %q", tc.noColor, got, tc.wantColour, buf.String())
		}
	}
}
