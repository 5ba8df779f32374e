package secret_test

import (
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

func TestParseClientSecret(t *testing.T) {
	for in, want := range map[string]string{
		clearSample:                     clearSample,
		"  " + clearSample + "\n":       clearSample,
		`{"client_secret": "abc def "}`: "abc def",
	} {
		got, err := secret.ParseClientSecret(in)
		if err != nil || got.Reveal() != want {
			t.Errorf("ParseClientSecret(%q) = %q, %v; want %q", in, got.Reveal(), err, want)
		}
	}
	for _, bad := range []string{"", "   ", "{}", `{"client_secret": ""}`, "{nope", "a\x01b", `{"client_secret": "a\u007fb"}`,
		// Quotes kept from a shell or a JSON string: Clear would get them as part of the secret and
		// answer CLI-SEC-002, which says nothing of the quotes.
		`"` + clearSample + `"`, " '" + clearSample + "' ", `{"client_secret": "\"abc\""}`} {
		if _, err := secret.ParseClientSecret(bad); err == nil {
			t.Errorf("ParseClientSecret(%q) accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("ParseClientSecret's error quotes the value: %v", err)
		}
	}
}

func TestCheckToken(t *testing.T) {
	const tok = "1.2f205010-b96c-44aa-9dcd-5524c42eb99e_4d05f5b02559a70d65c958d15e1747b5"
	for _, tc := range []struct {
		tok     string
		secrets []string
		want    string // "" for no error
	}{
		{tok, nil, ""},
		{tok, []string{clearSample}, ""},
		{"", nil, "is empty"},
		{strings.Repeat("a", secret.MaxTokenLength+1), nil, "is 257 characters, more than 256"},
		{"1.abc def", nil, "has a non-printable character at 5"},
		{"1.abcé", nil, "has a non-printable character at 5"},
		{clearSample, []string{clearSample}, "carries the client secret"},
		{"1." + clearSample[20:45] + "_4d05", []string{clearSample}, "carries the client secret"},
		{strings.ToUpper(clearSample[:30]), []string{"x", clearSample}, "carries the client secret"},
	} {
		err := secret.CheckToken(tc.tok, secret.MaxTokenLength, tc.secrets...)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("CheckToken(%.20q) = %q, want %q", tc.tok, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("CheckToken(%.20q) accepted, want %q", tc.tok, tc.want)
		}
	}
}

func TestParseGatewayKey(t *testing.T) {
	const key = "gw-key-0123456789"
	if k, err := secret.ParseGatewayKey(" " + key + "\n"); err != nil || k.Reveal() != key {
		t.Errorf("ParseGatewayKey = %v, %v", k, err)
	}
	for bad, want := range map[string]string{"": "too short", "fifteen-chars-x": "too short", key + "\x01": "control character at position 18"} {
		if _, err := secret.ParseGatewayKey(bad); err == nil || !strings.Contains(err.Error(), want) || bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("ParseGatewayKey(%q) = %v, want %q without the value", bad, err, want)
		}
	}
}
