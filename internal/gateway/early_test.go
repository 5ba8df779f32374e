package gateway_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestAnEarlyRefusalOfALargeBodyIsHeldAndReplayed: a Clear API that checks the token before it
// reads the body answers 401 at once to a refused token and closes the connection, as Go's own
// server does with more than 256 KiB left unread (nginx and API gateways can too). With a body
// larger than the socket buffers, the gateway's write of the rest of the body then fails. The 401
// is on the connection all the same, and is Clear's answer: a body buffered for replay (here 4
// MiB, under a replay limit of 32 MiB) must be held and replayed with the newer token, and a
// streamed one must get Clear's 401, not the gateway's 502 "Clear could not be reached".
func TestAnEarlyRefusalOfALargeBodyIsHeldAndReplayed(t *testing.T) {
	t.Parallel()
	w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour})
	api := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !w.Emu.Live(r.Header.Get(clear.HeaderAuthToken)) { // the token first, the body unread
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(rw, `{"errors":[{"error_code":"CLI-TOK-002","error_message":"Invalid, revoked or expired auth token.","error_source":"CLEAR","error_id":null}]}`)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(rw, `{"ok":true,"bytes":`+itoa(len(b))+`}`)
	}))
	defer api.Close()
	h := &gateway.Holder{}
	logs := &proctest.Buffer{}
	w.RecordFrom(logs)
	gw, err := gateway.New(gateway.Options{Clients: []gateway.Client{{Name: "erp", BaseURL: api.URL, Source: h}},
		Log: logging.New(logs, slog.LevelDebug, "json"), Hold: 5 * time.Second, RevokeGrace: time.Second,
		ReplayLimit: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(gw)
	defer front.Close()

	n := 0
	// Clear revokes the held token; with told, the holder learns of the next one 200 ms later.
	rotation := func(told bool) {
		n++
		h.Rewind(gateway.Token{Value: clear.NewAccessToken(w.Issue()), Version: "old" + itoa(n)})
		next := gateway.Token{Value: clear.NewAccessToken(w.Issue()), Version: "new" + itoa(n)}
		if told {
			go func() { time.Sleep(200 * time.Millisecond); h.Set(next) }()
		}
	}
	post := func(body io.Reader) (int, string) {
		t.Helper()
		resp, err := http.Post(front.URL+"/v1/invoice", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	rotation(true)
	const size = 4 << 20
	if code, body := post(bytes.NewReader(make([]byte, size))); code != http.StatusOK || !strings.Contains(body, itoa(size)) {
		t.Errorf("a %d-byte body refused early: %d %s; want it replayed with the newer token", size, code, body)
	}
	// A streamed body is not replayed: its 401 is passed on, held or not. This one is over the
	// replay limit, and of no known length.
	rotation(false)
	streamed := io.MultiReader(bytes.NewReader(make([]byte, 40<<20)))
	if code, body := post(streamed); code != http.StatusUnauthorized || !strings.Contains(body, "CLI-TOK-002") {
		t.Errorf("a streamed body refused early: %d %s; want Clear's 401", code, body)
	}
}
