package clear_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// holder mimics how the rotator holds a secret: an unexported field in a struct reached through
// pointers, which fmt prints by reflection without calling the secret's Format method.
type holder struct {
	name   string
	secret clear.ClientSecret
	token  clear.AccessToken
}

type outer struct {
	h    *holder
	list []*holder
	m    map[string]holder
}

type app struct {
	o *outer
	H *holder
}

// TestNoFormattingPathReachesSecrets formats the values, pointers to them, and structs and nested
// pointers to structs holding them, with every verb, through slog's handlers, json.Marshal and
// wrapped errors. None of the outputs may hold the secret or the token.
func TestNoFormattingPathReachesSecrets(t *testing.T) {
	const tokenValue = "1.2f205010-b96c-44aa-9dcd-5524c42eb99e_4d05f5b02559a70d65c958d15e1747b5"
	s := clear.NewClientSecret(secretValue)
	tok := clear.NewAccessToken(tokenValue)
	h := &holder{name: "erp", secret: s, token: tok}
	o := &outer{h: h, list: []*holder{h}, m: map[string]holder{"erp": *h}}
	a := &app{o: o, H: h}
	values := []any{s, &s, tok, &tok, *h, h, &h, *o, o, *a, a, &a,
		struct{ S clear.ClientSecret }{s}, struct{ s clear.ClientSecret }{s}, []clear.ClientSecret{s},
		map[string]clear.AccessToken{"t": tok}, [1]clear.ClientSecret{s}}
	var out strings.Builder
	for _, v := range values {
		for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%T", "%p"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
		err := fmt.Errorf("wrapped: %v: %w", v, errors.New("x"))
		fmt.Fprintln(&out, err, errors.Join(err, err))
		if b, err := json.Marshal(v); err == nil {
			out.Write(b)
		}
	}
	var logs bytes.Buffer
	for _, handler := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		l := slog.New(handler)
		for i, v := range values {
			l.Info("v", "i", i, "v", v)
		}
		l.Info("group", slog.Group("g", "s", s, "t", tok), "h", h, "a", a)
	}
	all := out.String() + logs.String()
	for _, leaked := range []string{secretValue, tokenValue, "3eboH", "2f205010"} {
		if strings.Contains(all, leaked) {
			i := strings.Index(all, leaked)
			t.Fatalf("%q leaked: …%s…", leaked, all[max(0, i-200):min(len(all), i+100)])
		}
	}
}

// TestSecretsCompareByValue keeps == meaningful: the daemon compares configurations holding a
// ClientSecret with ==, and a reload must not look like a change when the secret is the same.
func TestSecretsCompareByValue(t *testing.T) {
	a, b := clear.NewClientSecret("same-secret-value"), clear.NewClientSecret("same-secret-value")
	if a != b || !a.Equal(b) {
		t.Fatal("two secrets with the same value differ")
	}
	if a == clear.NewClientSecret("other-secret-value") || a.Equal(clear.NewClientSecret("other")) {
		t.Fatal("different secrets compare equal")
	}
	if clear.NewClientSecret("") != (clear.ClientSecret{}) || !clear.NewClientSecret("").IsZero() || (clear.ClientSecret{}).Reveal() != "" {
		t.Fatal("an empty secret is not the zero value")
	}
	if a.Reveal() != "same-secret-value" || a.IsZero() {
		t.Fatal("Reveal lost the value")
	}
	x, y := clear.NewAccessToken("tok"), clear.NewAccessToken("tok")
	if x != y || !x.Equal(y) || x.Reveal() != "tok" || (clear.AccessToken{}).Reveal() != "" || !clear.NewAccessToken("").IsZero() {
		t.Fatal("access tokens do not compare by value")
	}
}
