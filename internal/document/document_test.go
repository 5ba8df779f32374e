package document_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
)

func TestTokenRoundTrip(t *testing.T) {
	vt := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, till := range []*time.Time{&vt, nil} {
		in := document.Token{AccessToken: clear.NewAccessToken("tok_123"), ValidTill: till, IssuedAt: vt.Add(-time.Hour), Client: "erp"}
		b, err := document.MarshalToken(in)
		if err != nil {
			t.Fatal(err)
		}
		if till == nil && !strings.Contains(string(b), `"valid_till":null`) {
			t.Fatalf("never-expiring token must say null: %s", b)
		}
		out, err := document.ParseToken(b)
		if err != nil || out.AccessToken.Reveal() != "tok_123" || !out.IssuedAt.Equal(in.IssuedAt) || out.Client != "erp" ||
			(till == nil) != (out.ValidTill == nil) || till != nil && !out.ValidTill.Equal(*till) {
			t.Fatalf("round trip: %+v, %v from %s", out, err, b)
		}
	}
}

func TestNotATokenMeansNoToken(t *testing.T) {
	state, _ := document.MarshalState(document.State{Requests: 1})
	for _, s := range []string{"", "{}", "null", "[]", `"x"`, `{"access_token":""}`, `{"access_token":"a b","issued_at":"2026-01-01T00:00:00Z"}`,
		`{"access_token":"x"}`, `{"access_token":"x","issued_at":"yesterday"}`, `{"access_token":"x","issued_at":"2026-01-01T00:00:00Z","valid_till":5}`,
		string(state)} {
		if _, err := document.ParseToken([]byte(s)); !errors.Is(err, document.ErrNoToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrNoToken", s, err)
		}
	}
}

func TestStateRoundTripAndValidation(t *testing.T) {
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	in := document.State{Day: "2026-11-21", Requests: 3, Secret: "ab", Failures: 1, RetryAt: &now,
		Claim: &document.Claim{Owner: "o", At: now, LeaseUntil: now.Add(time.Minute), Base: "v1"}}
	b, _ := document.MarshalState(in)
	out, err := document.ParseState(b)
	if err != nil || out.Requests != 3 || out.Claim == nil || out.Claim.Base != "v1" || out.RequestsOn("2026-11-21", "ab") != 3 || out.RequestsOn("2026-11-22", "ab") != 0 || out.RequestsOn("2026-11-21", "cd") != 0 {
		t.Fatalf("round trip %+v %v", out, err)
	}
	for _, s := range []string{"", "{}", `{"kind":"other","version":1}`, `{"kind":"clear-rotator/state","version":2}`,
		`{"kind":"clear-rotator/state","version":1,"requests":-1}`, `{"kind":"clear-rotator/state","version":1,"claim":{"owner":"x"}}`} {
		if _, err := document.ParseState([]byte(s)); err == nil {
			t.Errorf("ParseState(%q) accepted", s)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add([]byte(`{"access_token":"abc","valid_till":"2026-11-22T10:00:00Z","issued_at":"2026-11-22T09:00:00Z"}`))
	f.Add([]byte(`{"access_token":"abc","valid_till":null,"issued_at":"2026-11-22T09:00:00+00:00"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"kind":"clear-rotator/state","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := document.ParseToken(data)
		if err != nil {
			if !errors.Is(err, document.ErrNoToken) {
				t.Fatalf("error %v does not wrap ErrNoToken", err)
			}
			return
		}
		// Whatever was accepted must survive a round trip unchanged.
		b, err := document.MarshalToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		again, err := document.ParseToken(b)
		if err != nil || again.AccessToken.Reveal() != tok.AccessToken.Reveal() {
			t.Fatalf("round trip of an accepted token failed: %v", err)
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"kind":"clear-rotator/state","version":1,"day":"2026-11-21","requests":3}`))
	f.Add([]byte(`{"kind":"clear-rotator/state","version":1,"claim":{"owner":"o","at":"2026-11-21T00:00:00Z","lease_until":"2026-11-21T00:05:00Z","base":"v"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := document.ParseState(data)
		if err != nil {
			return
		}
		if st.Requests < 0 || st.Failures < 0 || st.Claim != nil && st.Claim.Base == "" {
			t.Fatalf("accepted an invalid state: %+v", st)
		}
	})
}
