package document_test

import (
	"encoding/json"
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
	state, _ := document.MarshalState(document.State{APIClients: []document.APIClient{{Secret: "ab", Requests: 1}}})
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
	in := document.State{APIClients: []document.APIClient{{Day: "2026-11-21", Requests: 3, Secret: "ab", Failures: 1, RetryAt: &now}},
		Claim: &document.Claim{Owner: "o", At: now, LeaseUntil: now.Add(time.Minute), Base: "v1"}}
	b, _ := document.MarshalState(in)
	out, err := document.ParseState(b)
	if err != nil || out.APIClient("ab").Requests != 3 || out.Claim == nil || out.Claim.Base != "v1" || out.APIClient("ab").RequestsOn("2026-11-21") != 3 || out.APIClient("ab").RequestsOn("2026-11-22") != 0 || out.APIClient("cd").RequestsOn("2026-11-21") != 0 {
		t.Fatalf("round trip %+v %v", out, err)
	}
	for _, s := range []string{"", "{}", `{"kind":"other","version":1}`, `{"kind":"clear-rotator/state","version":3}`, `{"kind":"clear-rotator/state","version":2,"api_clients":[{"secret":"a","requests":-2}]}`,
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
		neg := false
		for _, a := range st.APIClients {
			neg = neg || a.Requests < 0 || a.Failures < 0
		}
		if neg || st.Claim != nil && st.Claim.Base == "" {
			t.Fatalf("accepted an invalid state: %+v", st)
		}
	})
}

func TestFirstFormatStateIsCarriedOver(t *testing.T) {
	v1 := `{"kind":"clear-rotator/state","version":1,"day":"2026-11-21","requests":5,"secret":"ab","failures":2,
		"last_error":"boom","blocked":{"kind":"unauthorized","reason":"CLI-SEC-002","secret":"ab"},
		"claim":{"owner":"o","at":"2026-11-21T10:00:00Z","lease_until":"2026-11-21T10:05:00Z","base":"v1"}}`
	st, err := document.ParseState([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	a := st.APIClient("ab")
	if a.Requests != 5 || a.Day != "2026-11-21" || a.Failures != 2 || a.Blocked == nil || a.Blocked.Kind != "unauthorized" {
		t.Fatalf("carried over %+v", a)
	}
	if st.Claim == nil || st.Claim.Secret != "ab" || st.Claim.Slot != 1 {
		t.Fatalf("claim %+v", st.Claim)
	}
}

func TestTokenRecordsItsAPIClientAndUnknownValidity(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	b, _ := document.MarshalToken(document.Token{AccessToken: clear.NewAccessToken("tok"), IssuedAt: at, APIClient: 2, ValidTillUnknown: true})
	if !strings.Contains(string(b), `"api_client":2`) || !strings.Contains(string(b), `"valid_till_unknown":true`) || !strings.Contains(string(b), `"valid_till":null`) {
		t.Fatalf("document %s", b)
	}
	tok, err := document.ParseToken(b)
	if err != nil || tok.APIClient != 2 || !tok.ValidTillUnknown {
		t.Fatalf("parsed %+v %v", tok, err)
	}
}

func TestStateFieldsOfRound2AreOptional(t *testing.T) {
	// Issue 19: failed_events, api_clients[].retired and claim.replaces are new. A document
	// written before them parses as before, and one written with them round-trips.
	old := `{"kind":"clear-rotator/state","version":2,"api_clients":[{"secret":"fp1","day":"2026-11-21","requests":3}],` +
		`"claim":{"owner":"o","at":"2026-11-21T10:00:00Z","lease_until":"2026-11-21T10:01:00Z","base":"v1","api_client":1,"secret":"fp1","event":"ev-1"},"events":["ev-0"]}`
	st, err := document.ParseState([]byte(old))
	if err != nil || st.Failed != nil || st.APIClients[0].Retired != nil || st.Claim.Replaces != "" || st.Claim.Event != "ev-1" || len(st.Events) != 1 {
		t.Fatalf("an older document: %+v, %v", st, err)
	}
	at := time.Date(2026, 11, 21, 10, 0, 30, 0, time.UTC)
	st.APIClients[0].Retired, st.Claim.Replaces = &at, "fp2"
	st.Failed = document.Remember(nil, "ev-2")
	b, err := document.MarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	back, err := document.ParseState(b)
	if err != nil || back.APIClients[0].Retired == nil || !back.APIClients[0].Retired.Equal(at) || back.Claim.Replaces != "fp2" || len(back.Failed) != 1 || back.Failed[0] != "ev-2" {
		t.Fatalf("round trip: %+v, %v from %s", back, err, b)
	}
	// Remember keeps an id once, newest last, and at most MaxEvents; Forget drops it.
	ids := []string{"a", "b", "c"}
	if got := document.Remember(ids, "a"); strings.Join(got, ",") != "b,c,a" {
		t.Fatalf("Remember: %v", got)
	}
	var many []string
	for i := range 40 {
		many = document.Remember(many, strings.Repeat("x", i+1))
	}
	if len(many) != document.MaxEvents || document.Forget(many, many[0])[0] != many[1] {
		t.Fatalf("bounded: %d", len(many))
	}
}

func TestParseStateCleansItsText(t *testing.T) {
	// ROTATOR_STATE is shared text anyone with write access to the secret can edit. Its free text
	// reaches terminals (rotator status), logs and metrics: a terminal escape or a bidirectional
	// control in it must arrive as a space, as in Clear's own messages (clear.Sanitize).
	const evil = "x\x1b[2J\u202eevil\u009b31m\ny"
	doc := `{"kind":"` + document.StateKind + `","version":2,` +
		`"api_clients":[{"secret":"fp","last_error":"` + jsonEsc(evil) + `","blocked":{"kind":"` + jsonEsc(evil) + `","reason":"` + jsonEsc(evil) + `"}}],` +
		`"claim":{"owner":"` + jsonEsc(evil) + `","at":"2026-01-01T00:00:00Z","lease_until":"2026-01-01T00:01:00Z","base":"v1"},` +
		`"lost":{"at":"2026-01-01T00:00:00Z","reason":"` + jsonEsc(evil) + `","base":"v1"}}`
	st, err := document.ParseState([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a := st.APIClients[0]
	for what, s := range map[string]string{"last_error": a.LastError, "blocked.kind": a.Blocked.Kind, "blocked.reason": a.Blocked.Reason,
		"claim.owner": st.Claim.Owner, "lost.reason": st.Lost.Reason} {
		if s != clear.Sanitize(evil) || strings.ContainsAny(s, "\x1b\u202e\u009b\n") {
			t.Errorf("%s = %q, want %q", what, s, clear.Sanitize(evil))
		}
	}
}

func jsonEsc(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
