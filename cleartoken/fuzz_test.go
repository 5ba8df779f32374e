package cleartoken

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// detailWords is every detail parse may give: words and numbers, nothing from the document.
var detailWords = regexp.MustCompile(`^(|not a JSON object|not valid JSON \(at byte \d+\)|access_token is not a string|access_token (is empty|is \d+ characters, more than \d+|has a non-printable character at \d+))$`)

// FuzzParse: whatever another tool writes into AWSCURRENT, parse never panics; a token it returns
// can travel in a header (visible ASCII, at most maxTokenLength); an error it returns never quotes
// anything from the document (only the fixed words of detailWords).
func FuzzParse(f *testing.F) {
	f.Add(`{"access_token":"1.abc","valid_till":"2026-01-01T00:00:00Z"}`, "1.abc")
	f.Add(`{}`, "a b")
	f.Add(`not json {`, "abc\r\nX-Evil: 1")
	f.Add(`{"access_token":null}`, strings.Repeat("x", maxTokenLength+1))
	f.Add(`{"access_token":"x","valid_till":12}`, "\u00e9t\u00e9")
	f.Fuzz(func(t *testing.T, doc, tok string) {
		check := func(doc string) {
			got, err := parse(doc)
			if err != nil {
				if err.Kind != KindMalformed && err.Kind != KindNoToken {
					t.Fatalf("parse(%q) = kind %v", doc, err.Kind)
				}
				if !detailWords.MatchString(err.detail) {
					t.Fatalf("the error's detail %q is not one of the fixed texts", err.detail)
				}
				return
			}
			v := got.Value()
			if v == "" || len(v) > maxTokenLength {
				t.Fatalf("parse(%q) accepted a token of %d bytes", doc, len(v))
			}
			for i := 0; i < len(v); i++ {
				if v[i] < 0x21 || v[i] > 0x7e {
					t.Fatalf("parse(%q) accepted a byte 0x%02x a header cannot carry", doc, v[i])
				}
			}
		}
		check(doc)
		body, err := json.Marshal(map[string]any{"access_token": tok, "valid_till": doc})
		if err != nil {
			t.Skip()
		}
		check(string(body))
	})
}
