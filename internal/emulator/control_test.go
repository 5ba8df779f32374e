package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// post sends a JSON body to the control API and returns the status.
func post(t *testing.T, srv *httptest.Server, path, body string) int {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// getJSON decodes a control API answer into v.
func getJSON(t *testing.T, srv *httptest.Server, path string, v any) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestControlFaults(t *testing.T) {
	e := newEnv(t, Options{})
	body := `[{"status":500},{"delay":"10ms"},{"body":"garbage"},{"hang":true},{"issue_then_fail":true},{"status":401,"code":"CLI-SEC-003"}]`
	if status := post(t, e.srv, "/_emulator/faults", body); status != http.StatusNoContent {
		t.Fatalf("POST faults: status %d", status)
	}
	var st Stats
	getJSON(t, e.srv, "/_emulator/stats", &st)
	if st.PendingFaults != 6 {
		t.Fatalf("pending faults %d, want 6", st.PendingFaults)
	}
	want := []clear.Kind{clear.KindTransient, 0, clear.KindMalformed, clear.KindTransient, clear.KindTransient, clear.KindAuth}
	for i, k := range want {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.token(ctx, secret)
		cancel()
		if k == 0 {
			if err != nil {
				t.Errorf("request %d: %v", i+1, err)
			}
			continue
		}
		clearErr(t, err, k)
	}
	if got := e.emu.Issued(secret); got != 3 { // the delayed, the garbled and the lost answer
		t.Errorf("Issued = %d, want 3", got)
	}
}

func TestControlLiveAndStats(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.mustToken(t)
	var live struct{ Live bool }
	getJSON(t, e.srv, "/_emulator/live?token="+tok, &live)
	if !live.Live {
		t.Error("live token reported dead")
	}
	getJSON(t, e.srv, "/_emulator/live?token=1.other", &live)
	if live.Live {
		t.Error("unknown token reported live")
	}
	var st Stats
	getJSON(t, e.srv, "/_emulator/stats", &st)
	if !reflect.DeepEqual(st, e.emu.Stats()) || st.Secrets[SecretID(secret)].Issued != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestControlSecrets(t *testing.T) {
	e := newEnv(t, Options{})
	tests := []struct {
		body   string
		status int
		code   string // "" when a token is expected
	}{
		{`{"secret":"new"}`, 204, ""},
		{`{"secret":"new","ip_blocked":true}`, 204, CodeIPBlocked},
		{`{"secret":"new","ip_blocked":false,"active":false}`, 204, CodeInvalidSecret},
		{`{"secret":"new","active":true}`, 204, ""},
		{`{"secret":""}`, 400, ""},
		{`{"secret":"new","activ":false}`, 400, ""},
		{`not json`, 400, ""},
	}
	for _, tt := range tests {
		if status := post(t, e.srv, "/_emulator/secrets", tt.body); status != tt.status {
			t.Fatalf("POST %s: status %d, want %d", tt.body, status, tt.status)
		}
		if tt.status != 204 {
			continue
		}
		_, err := e.token(context.Background(), "new")
		if tt.code == "" && err != nil {
			t.Errorf("after %s: %v", tt.body, err)
		}
		if tt.code != "" {
			if ce := clearErr(t, err, clear.KindAuth); ce.Code != tt.code {
				t.Errorf("after %s: code %s, want %s", tt.body, ce.Code, tt.code)
			}
		}
	}
}

func TestControlLifetime(t *testing.T) {
	e := newEnv(t, Options{})
	if status := post(t, e.srv, "/_emulator/lifetime", `{"lifetime":"20s"}`); status != http.StatusNoContent {
		t.Fatalf("status %d", status)
	}
	g, err := e.token(context.Background(), secret)
	if err != nil || g.ValidTill == nil || !g.ValidTill.Equal(start.Add(20*time.Second).Truncate(time.Second)) {
		t.Errorf("valid_till %v, %v", g.ValidTill, err)
	}
	for _, body := range []string{`{"lifetime":"-1s"}`, `{"lifetime":"soon"}`} {
		if status := post(t, e.srv, "/_emulator/lifetime", body); status != http.StatusBadRequest {
			t.Errorf("POST %s: status %d, want 400", body, status)
		}
	}
}

func TestControlClock(t *testing.T) {
	fake := newEnv(t, Options{})
	if status := post(t, fake.srv, "/_emulator/clock", `{"offset":"25h"}`); status != http.StatusConflict {
		t.Errorf("clock of a fake-clocked emulator: status %d, want 409", status)
	}

	// With the real clock, an offset of a day crosses midnight UTC for sure.
	e := &env{emu: New(Options{Secrets: []string{secret}, DailyLimit: 1, Lifetime: time.Hour})}
	e.srv = httptest.NewServer(e.emu)
	defer e.srv.Close()
	var err error
	if e.client, err = clear.NewClient(e.srv.URL, e.srv.Client()); err != nil {
		t.Fatal(err)
	}
	g, err := e.token(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(*g.ValidTill); d < 59*time.Minute || d > time.Hour {
		t.Errorf("valid_till in %v, want about 1h", d)
	}
	_, err = e.token(context.Background(), secret)
	clearErr(t, err, clear.KindRateLimited)
	if status := post(t, e.srv, "/_emulator/clock", `{"offset":"24h"}`); status != http.StatusNoContent {
		t.Fatalf("status %d", status)
	}
	if g, err = e.token(context.Background(), secret); err != nil {
		t.Fatalf("after a day: %v", err)
	}
	if d := time.Until(*g.ValidTill); d < 24*time.Hour+59*time.Minute || d > 25*time.Hour {
		t.Errorf("valid_till in %v, want about 25h", d)
	}
	if status := post(t, e.srv, "/_emulator/clock", `{"offset":"tomorrow"}`); status != http.StatusBadRequest {
		t.Errorf("bad offset: status %d, want 400", status)
	}
}

func TestControlMethods(t *testing.T) {
	e := newEnv(t, Options{})
	for _, path := range []string{"/_emulator/faults", "/_emulator/secrets", "/_emulator/clock", "/_emulator/lifetime"} {
		if status, _ := e.get(t, http.MethodGet, path, nil); status != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: status %d, want 405", path, status)
		}
	}
	if status := post(t, e.srv, "/_emulator/stats", `{}`); status != http.StatusMethodNotAllowed {
		t.Errorf("POST stats: status %d, want 405", status)
	}
}

func TestFaultJSON(t *testing.T) {
	faults := []Fault{ServerError(), {Delay: 2 * time.Second}, Malformed(), {Hang: true},
		{IssueThenFail: true, Delay: time.Millisecond}, {Status: 401, Code: CodeIPBlocked}}
	data, err := json.Marshal(faults)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `{"delay":"2s"}`) || !strings.Contains(string(data), `{"delay":"1ms","issue_then_fail":true}`) {
		t.Errorf("encoding %s", data)
	}
	var back []Fault
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, faults) {
		t.Errorf("round trip: %+v, want %+v", back, faults)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Inject accepted status 42")
			}
		}()
		New(Options{}).Inject(Fault{Status: 42})
	}()
	for _, bad := range []string{`{"status":42}`, `{"status":600}`, `{"delay":"-1s"}`, `{"delay":"2"}`, `{"issueThenFail":true}`} {
		var f Fault
		if err := json.Unmarshal([]byte(bad), &f); err == nil {
			t.Errorf("%s decoded as %+v, want an error", bad, f)
		}
	}
}
