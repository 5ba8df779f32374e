package rig

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// Request is one token request Clear received from a client the world built: when it was sent,
// with which API client (1 or 2, 0 for a secret the world does not know), and the token Clear's
// answer delivered ("" when none reached the caller).
type Request struct {
	At     time.Time
	Slot   int
	Status int
	Token  string
}

// tap is the http.RoundTripper of every Clear client a World builds. It records each token
// request and the token its answer carried, so that the leak scan knows every token Clear
// delivered, delivered to the rotator or not, and tests can measure when requests were made.
type tap struct {
	next  http.RoundTripper
	now   func() time.Time
	slots func(secret string) int

	mu       sync.Mutex
	requests []Request
	inFlight int
	peak     int
	before   func(*http.Request) // see World.BeforeClear
}

func (t *tap) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	hook := t.before
	t.inFlight++
	t.peak = max(t.peak, t.inFlight)
	i := len(t.requests)
	t.requests = append(t.requests, Request{At: t.now(), Slot: t.slots(req.Header.Get(clear.HeaderClientSecret))})
	t.mu.Unlock()
	defer func() { t.mu.Lock(); t.inFlight--; t.mu.Unlock() }()
	if hook != nil {
		hook(req)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	t.mu.Lock()
	t.requests[i].Status = resp.StatusCode
	t.mu.Unlock()
	resp.Body = &tapBody{ReadCloser: resp.Body, t: t, i: i}
	return resp, nil
}

func (t *tap) log() []Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.requests)
}

func (t *tap) tokens() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, r := range t.requests {
		if r.Token != "" {
			out = append(out, r.Token)
		}
	}
	return out
}

// tapBody keeps a copy of what the caller reads of the answer, and records its token on Close.
type tapBody struct {
	io.ReadCloser
	t   *tap
	i   int
	buf bytes.Buffer
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.buf.Write(p[:n])
	return n, err
}

func (b *tapBody) Close() error {
	var g struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(b.buf.Bytes(), &g) == nil && g.AccessToken != "" {
		b.t.mu.Lock()
		b.t.requests[b.i].Token = g.AccessToken
		b.t.mu.Unlock()
	}
	return b.ReadCloser.Close()
}
