package clear_test

import (
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

func TestSanitize(t *testing.T) {
	tests := map[string]string{
		"plain":                             "plain",
		"a\nb\rc\td\x00e\x7f":               "a b c d e ",
		"csi\u009b31mred":                   "csi 31mred",
		"c1 \u0080 \u009f \u0085":           "c1      ",
		"rtl \u202eevil\u202c":              "rtl  evil ",
		"marks \u200e\u200f\u061c":          "marks    ",
		"embed \u202a\u202b\u202d":          "embed    ",
		"isolates \u2066\u2067\u2068\u2069": "isolates     ",
		"lines \u2028\u2029":                "lines   ",
		"é and ✓ stay":                      "é and ✓ stay",
		// Issue 19 item 8: the invisible format characters, as a category and not a list.
		"zw a\u200bb\u200cc\u200dd\u2060e":              "zw a b c d e",
		"bom \ufeff shy\u00adx mvs\u180e":               "bom   shy x mvs ",
		"tags \U000E0000\U000E0001\U000E0041\U000E007F": "tags     ",
		"vs \ufe0f hangul \u3164 cgj \u034f":            "vs   hangul   cgj  ",
		"arabic number sign \u0600":                     "arabic number sign  ",
	}
	for in, want := range tests {
		if got := clear.Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := clear.Sanitize(strings.Repeat("a", 1000)); len(got) > 300+len("…") {
		t.Errorf("Sanitize does not cap: %d bytes", len(got))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	date := now.Add(-time.Hour).Format(http1123) // the answer's Date: Clear's clock is an hour behind ours
	tests := []struct {
		name, value, date string
		want              time.Duration
	}{
		{"absent", "", "", 0},
		{"seconds", "120", "", 2 * time.Minute},
		{"zero", "0", "", 0},
		{"spaces", " 30 ", "", 30 * time.Second},
		{"negative", "-5", "", 0},
		{"fraction", "1.5", "", 0},
		{"garbage", "soon", "", 0},
		{"huge", "99999999999999999999999", "", 24 * time.Hour},
		{"a day and more", "86401", "", 24 * time.Hour},
		{"date against Date", now.Add(-time.Hour + 10*time.Minute).Format(http1123), date, 10 * time.Minute},
		{"date against now", now.Add(5 * time.Minute).Format(http1123), "", 5 * time.Minute},
		{"date against garbage Date", now.Add(5 * time.Minute).Format(http1123), "yesterday", 5 * time.Minute},
		{"date in the past", now.Add(-time.Minute).Format(http1123), "", 0},
		{"date far ahead", now.Add(72 * time.Hour).Format(http1123), "", 24 * time.Hour},
		{"RFC 850 date", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), "", time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clear.ParseRetryAfter(tt.value, tt.date, now); got != tt.want {
				t.Fatalf("ParseRetryAfter(%q, %q) = %v, want %v", tt.value, tt.date, got, tt.want)
			}
		})
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"
