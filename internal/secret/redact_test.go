package secret_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// clearSample is the client secret of Clear's own documentation: 88 characters of base64.
const clearSample = "3eboH/vsr2VpGNFqDSXzVs0yNj0fMDJToPjs71V3WATqLtmzf9kyNBZ24mCNRJsDj2tEe72PxFDOPccR579w=="

func TestRedact(t *testing.T) {
	const s = clearSample
	tests := []struct {
		name    string
		text    string
		secrets []string
		want    string
	}{
		{"twice", "secret " + s + " twice " + s, []string{s}, "secret [REDACTED] twice [REDACTED]"},
		{"none", "no secret here", []string{s}, "no secret here"},
		{"two short ones", "two: abcdefgh and 12345678", []string{"abcdefgh", "12345678"}, "two: [REDACTED] and [REDACTED]"},
		{"too short", "short abc stays", []string{"abc", ""}, "short abc stays"},
		{"seven stays", "seven abcdefg stays", []string{"abcdefg"}, "seven abcdefg stays"},
		{"nested", "nested abcdefghijkl", []string{"abcdefgh", "abcdefghijkl"}, "nested [REDACTED]"},
		{"no secrets", "nothing to do", nil, "nothing to do"},
		// Issue 19 item 13: the spellings an echo gives a secret.
		{"upper-case", "got " + strings.ToUpper(s) + ".", []string{s}, "got [REDACTED]."},
		{"lower-case", "got " + strings.ToLower(s) + ".", []string{s}, "got [REDACTED]."},
		{"query-escaped", "got " + url.QueryEscape(s) + ".", []string{s}, "got [REDACTED]."},
		{"query-escaped, lower hex", "got " + strings.ToLower(url.QueryEscape(s)) + ".", []string{s}, "got [REDACTED]."},
		{"path-escaped", "/x/" + url.PathEscape(s) + "/y", []string{s}, "/x/[REDACTED]/y"},
		{"JSON-escaped", `{"s":"` + strings.ReplaceAll(s, "/", `\/`) + `"}`, []string{s}, `{"s":"[REDACTED]"}`},
		{"zero-width split", "got " + s[:10] + "\u200b" + s[10:50] + "\u200d\ufeff" + s[50:] + ".", []string{s}, "got [REDACTED]."},
		{"tag split", "got " + s[:40] + "\U000E0041" + s[40:] + ".", []string{s}, "got [REDACTED]."},
		{"cut to 20", "got " + s[:20] + "…", []string{s}, "got [REDACTED]…"},
		{"cut to 16", "got " + s[:16] + "…", []string{s}, "got [REDACTED]…"},
		{"a middle piece", "got " + s[30:55] + ".", []string{s}, "got [REDACTED]."},
		{"15 characters stay", "got " + s[:15] + "…", []string{s}, "got " + s[:15] + "…"},
		{"short secret, upper-case", "got ABCDEFGHIJ.", []string{"abcdefghij"}, "got [REDACTED]."},
		{"two secrets overlapping", "x " + s + "ABCDEFGHIJ y", []string{s, s[70:] + "abcdefghij"}, "x [REDACTED] y"},
		{"multi-byte around", "é" + s + "✓", []string{s}, "é[REDACTED]✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secret.Redact(tt.text, tt.secrets...); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.text, got, tt.want)
			}
			if revealed := secret.Reveals(tt.text, tt.secrets...); revealed != (tt.want != tt.text) {
				t.Errorf("Reveals(%q) = %v", tt.text, revealed)
			}
		})
	}
}

// TestRedactLeavesOrdinaryText checks that the redactor does not shred text around a secret that
// shares ordinary words with it: pieces shorter than Window stay.
func TestRedactLeavesOrdinaryText(t *testing.T) {
	const s = "cs1-0123456789abcdef0123"
	text := "the client secret cs1-0 and 0123456789 and abcdef0123 are fine"
	if got := secret.Redact(text, s); got != text {
		t.Errorf("Redact changed ordinary text: %q", got)
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("got "+clearSample+" end", clearSample)
	f.Add("a\u200bb%2Fc\\/d", "b%2fc/d-and-more")
	f.Fuzz(func(t *testing.T, text, s string) {
		got := secret.Redact(text, s)
		if len(s) >= secret.MinLength && !strings.ContainsRune(s, '\\') && strings.Contains(text, s) && strings.Contains(got, s) {
			t.Fatalf("Redact(%q, %q) = %q still holds the secret", text, s, got)
		}
		if got != text && !strings.Contains(got, secret.Marker) {
			t.Fatalf("Redact changed %q to %q without a marker", text, got)
		}
	})
}

func TestRedactURL(t *testing.T) {
	m := secret.Marker
	for in, want := range map[string]string{
		"https://api.clear.in/base":           "https://api.clear.in/base",
		"https://user:pw@api.clear.in/x":      "https://" + m + "@api.clear.in/x",
		"https://api.clear.in/x?key=abc#frag": "https://api.clear.in/x?" + m,
		"https://a@b@api.clear.in?k=v":        "https://" + m + "@api.clear.in?" + m,
		"not a url at all user:pw@host":       m + "@host",
		"ftp://host/#x":                       "ftp://host/#" + m,
		"":                                    "",
		// A malformed password holding '?' or '#': the '@' after them shows the text before them
		// may be user info; it could as well be a query holding '@': neither is shown.
		"http://erp:hunter2#x@proxy:3128":  "http://" + m,
		"http://erp:tiger?lily@proxy:3128": "http://" + m,
		"https://api.clear.in/x?mail=a@b":  "https://" + m,
		"user:pw#x@host":                   m,
	} {
		if got := secret.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
