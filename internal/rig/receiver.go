package rig

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/notify"
)

// Receiver is the ERP's webhook endpoint (issue 18): it records every delivery, checks its
// Standard Webhooks signature with the world's signing secret, and answers 204, or a scripted
// failure. Its signing secret is registered with the leak scan, and everything it received is
// scanned too, so that neither the token nor a secret may reach a webhook.
type Receiver struct {
	URL string
	// Secret is the signing secret, "whsec_" and 32 random bytes in base64.
	Secret string

	mu     sync.Mutex
	got    []Delivery
	script []int // statuses to answer next, in order; 0 means hang until the request ends
}

// Delivery is one request the receiver got.
type Delivery struct {
	ID, Timestamp, Signature string
	Body                     string
	// Verified is true when the signature and the timestamp (within 5 minutes) check out.
	Verified bool
	// Status is what the receiver answered.
	Status int
}

// Receiver starts a webhook receiver on 127.0.0.1 for this world, stopped when the test ends.
func (w *World) Receiver() *Receiver {
	w.T.Helper()
	var key [32]byte
	_, _ = rand.Read(key[:])
	r := &Receiver{Secret: notify.SecretPrefix + base64.StdEncoding.EncodeToString(key[:])}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	w.T.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/clear"
	w.Hide(r.Secret, strings.TrimPrefix(r.Secret, notify.SecretPrefix))
	w.RecordFrom(r)
	return r
}

// Env is the rotator's environment for this receiver: its URL and its signing secret.
func (r *Receiver) Env() []string {
	return []string{notifyEnvURL + "=" + r.URL, notifyEnvSecret + "=" + r.Secret}
}

const (
	notifyEnvURL    = "ROTATOR_WEBHOOK_URL"
	notifyEnvSecret = "ROTATOR_WEBHOOK_SECRET"
)

// Fail makes the receiver answer the next requests with these statuses (0: never answer, until
// the sender gives up on the request).
func (r *Receiver) Fail(statuses ...int) {
	r.mu.Lock()
	r.script = append(r.script, statuses...)
	r.mu.Unlock()
}

// Heal drops the failures still scripted: the receiver is fixed, and accepts from now on.
func (r *Receiver) Heal() {
	r.mu.Lock()
	r.script = nil
	r.mu.Unlock()
}

// Deliveries returns what the receiver got, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Delivered returns the deliveries the receiver accepted.
func (r *Receiver) Delivered() []Delivery {
	var out []Delivery
	for _, d := range r.Deliveries() {
		if d.Status >= 200 && d.Status < 300 {
			out = append(out, d)
		}
	}
	return out
}

// String is everything the receiver got, for the leak scan.
func (r *Receiver) String() string {
	var b strings.Builder
	for _, d := range r.Deliveries() {
		b.WriteString(d.ID + " " + d.Timestamp + " " + d.Signature + " " + d.Body + "\n")
	}
	return b.String()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	d := Delivery{ID: req.Header.Get(notify.HeaderID), Timestamp: req.Header.Get(notify.HeaderTimestamp),
		Signature: req.Header.Get(notify.HeaderSignature), Body: string(body), Status: http.StatusNoContent}
	d.Verified = req.Method == http.MethodPost && req.URL.Path == "/hooks/clear" &&
		notify.Verify(notify.NewSecret(r.Secret), d.ID, d.Timestamp, d.Signature, body, time.Now(), 5*time.Minute)
	r.mu.Lock()
	if len(r.script) > 0 {
		d.Status, r.script = r.script[0], r.script[1:]
	}
	r.got = append(r.got, d)
	r.mu.Unlock()
	if d.Status == 0 {
		<-req.Context().Done()
		return
	}
	w.WriteHeader(d.Status)
}
