package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com): receivers' libraries verify
// exactly these.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// signature is one v1 signature: base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")).
func signature(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns the webhook-signature header: one "v1,<base64>" per key, space-separated, so that
// while the secret changes a receiver holding either key accepts the message.
func (k keys) Sign(id string, at time.Time, body []byte) string {
	sigs := make([]string, len(k.k))
	for i, key := range k.k {
		sigs[i] = signature(key, id, at.Unix(), body)
	}
	return strings.Join(sigs, " ")
}

// Verify checks a message as a receiver does: the timestamp within tolerance of now, and one of the
// header's signatures made with one of the secret's keys. It is what the README's receiver does,
// and what the tests check deliveries with.
func Verify(s Secret, id, timestamp, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	k, err := ParseKeys(s)
	if err != nil {
		return false
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return false
	}
	for _, got := range strings.Fields(header) {
		for _, key := range k.k {
			if hmac.Equal([]byte(got), []byte(signature(key, id, ts, body))) {
				return true
			}
		}
	}
	return false
}
