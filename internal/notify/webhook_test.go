package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func secretFunc(s string) func(context.Context) (Secret, error) {
	return func(context.Context) (Secret, error) { return NewSecret(s), nil }
}

func TestWebhookPostsASignedBodyWithoutTheToken(t *testing.T) {
	t.Parallel()
	type got struct {
		h    http.Header
		body []byte
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Clone(), b}
	}))
	defer srv.Close()
	ev := NewEvent("acme", "tok", "v1", token(), Forced)
	w := &Webhook{URL: srv.URL + "/hook", Secret: secretFunc(testSecret)}
	v, err := w.attempt(t.Context(), ev)
	if v != Delivered || err != nil {
		t.Fatalf("attempt = %s, %v", v, err)
	}
	g := <-ch
	if strings.Contains(string(g.body), testToken) {
		t.Fatalf("the token is in the body: %s", g.body)
	}
	if g.h.Get(HeaderID) != ev.ID || g.h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", g.h)
	}
	if !Verify(NewSecret(testSecret), g.h.Get(HeaderID), g.h.Get(HeaderTimestamp), g.h.Get(HeaderSignature), g.body, time.Now(), time.Minute) {
		t.Fatalf("the signature does not verify: %v", g.h)
	}
}

func TestWebhookAnswers(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	mux.HandleFunc("/503-later", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(503)
	})
	mux.HandleFunc("/400", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) })
	mux.HandleFunc("/429", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	stop := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(stop)
	ev := NewEvent("acme", "tok", "v1", token(), Scheduled)
	for path, want := range map[string]Verdict{"/503": Retry, "/400": GiveUp, "/429": Retry, "/moved": GiveUp, "/slow": Retry} {
		w := &Webhook{URL: srv.URL + path, Secret: secretFunc(testSecret), HTTP: NewHTTPClient()}
		w.HTTP.Timeout = 200 * time.Millisecond
		v, err := w.attempt(t.Context(), ev)
		if v != want || err == nil {
			t.Errorf("%s: %s, %v; want %s and an error", path, v, err, want)
		}
	}
	if hits.Load() != 0 {
		t.Error("a redirect was followed")
	}
	// A receiver that asks for time says how much, for the policy to honour.
	_, err := (&Webhook{URL: srv.URL + "/503-later", Secret: secretFunc(testSecret)}).attempt(t.Context(), ev)
	if se, ok := errors.AsType[*StatusError](err); !ok || se.RetryAfter != 7*time.Second {
		t.Errorf("503 with Retry-After: 7: %#v, want a StatusError asking for 7s", err)
	}
	// Retry-After may be an HTTP date too.
	mux.HandleFunc("/503-until", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(time.Minute).UTC().Format(http.TimeFormat))
		w.WriteHeader(503)
	})
	_, err = (&Webhook{URL: srv.URL + "/503-until", Secret: secretFunc(testSecret)}).attempt(t.Context(), ev)
	if se, ok := errors.AsType[*StatusError](err); !ok || se.RetryAfter < 55*time.Second || se.RetryAfter > time.Minute {
		t.Errorf("503 with Retry-After a minute from now: %#v, want a StatusError asking for about a minute", err)
	}
	// The client gives a receiver 10 s and follows no redirect.
	if c := NewHTTPClient(); c.Timeout != 10*time.Second || c.CheckRedirect == nil {
		t.Errorf("the webhook's client: timeout %s, redirect check %v; want 10s and one", c.Timeout, c.CheckRedirect != nil)
	}
	// Nobody listening: retried.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	if v, _ := (&Webhook{URL: url, Secret: secretFunc(testSecret)}).attempt(t.Context(), ev); v != Retry {
		t.Errorf("no listener: %s, want retry", v)
	}
	// The secret cannot be read: retried; it is malformed: given up.
	failing := func(context.Context) (Secret, error) { return Secret{}, errors.New("throttled") }
	if v, _ := (&Webhook{URL: srv.URL + "/elsewhere", Secret: failing}).attempt(t.Context(), ev); v != Retry {
		t.Errorf("unreadable secret: %s, want retry", v)
	}
	if v, _ := (&Webhook{URL: srv.URL + "/elsewhere", Secret: secretFunc("nope")}).attempt(t.Context(), ev); v != GiveUp {
		t.Errorf("malformed secret: %s, want give-up", v)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for s, ok := range map[string]bool{
		"https://erp.example.com/hooks/clear": true,
		"http://127.0.0.1:8080/x":             true,
		"http://localhost/x":                  true,
		"http://[::1]:9/x":                    true,
		"http://erp.example.com/x":            false,
		"ftp://erp.example.com/x":             false,
		"https://user:pw@erp.example.com/":    false,
		"https:///path":                       false,
		"https://erp.example.com/#frag":       false,
		"::::":                                false,
	} {
		_, err := CheckURL(s)
		if (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", s, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("message quotes the password: %v", err)
		}
	}
}
