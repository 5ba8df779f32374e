package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
)

// WebhookTimeout bounds one webhook attempt: a receiver only has to queue the message.
const WebhookTimeout = 10 * time.Second

// CheckURL validates a webhook URL: https, or http for a loopback host only (the token's version
// id is not secret, but the signature's timestamp and the receiver's trust in it are worth TLS).
// Its messages never quote a user info or query, which may carry a key.
func CheckURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("is not a URL")
	case u.User != nil:
		return nil, errors.New("must not contain a user name or password; receivers verify the signature")
	case u.Host == "":
		return nil, errors.New("has no host (want https://HOST/PATH)")
	case u.Scheme == "http" && !clear.IsLoopback(u.Hostname()):
		return nil, errors.New("uses http, but http is allowed only for loopback hosts; use https")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, errors.New("has the wrong scheme: scheme must be https")
	case u.Fragment != "":
		return nil, errors.New("must not carry a fragment")
	}
	return u, nil
}

// Webhook posts signed events to one URL.
type Webhook struct {
	URL string
	// Secret returns the signing secret; it is asked at every attempt, so that a secret read from
	// Secrets Manager that fails once is a retried attempt, not a lost delivery.
	Secret func(ctx context.Context) (Secret, error)
	// HTTP is the client; nil means one with WebhookTimeout that follows no redirects.
	HTTP *http.Client
	// Now stamps webhook-timestamp; nil means time.Now.
	Now func() time.Time
}

// noRedirects answers a 3xx as it is: a receiver that moved is a configuration to fix, and
// following it would send the signed message somewhere nobody configured.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewHTTPClient is the webhook's HTTP client: WebhookTimeout, no redirects followed.
func NewHTTPClient() *http.Client {
	return &http.Client{Timeout: WebhookTimeout, CheckRedirect: noRedirects}
}

func (w *Webhook) kind() string { return KindWebhook }

// attempt posts ev once.
func (w *Webhook) attempt(ctx context.Context, ev Event) (Verdict, error) {
	if _, err := CheckURL(w.URL); err != nil {
		return GiveUp, &permanentError{fmt.Errorf("webhook URL %w", err)}
	}
	secret, err := w.Secret(ctx)
	if err != nil {
		return Retry, fmt.Errorf("reading the signing secret: %w", err)
	}
	k, err := ParseKeys(secret)
	if err != nil {
		return GiveUp, &permanentError{err}
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	body := ev.Body()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return GiveUp, &permanentError{errors.New("the request cannot be built")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clear-rotator")
	req.Header.Set(HeaderID, ev.ID)
	at := now()
	req.Header.Set(HeaderTimestamp, fmt.Sprint(at.Unix()))
	req.Header.Set(HeaderSignature, k.Sign(ev.ID, at, body))
	hc := w.HTTP
	if hc == nil {
		hc = NewHTTPClient()
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL may carry a key in its query; say what happened without it.
		return Classify(0, err), fmt.Errorf("no answer: %s", errorKind(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	v := Classify(resp.StatusCode, nil)
	if v == Delivered {
		return v, nil
	}
	return v, &StatusError{Code: resp.StatusCode, RetryAfter: clear.ParseRetryAfter(resp.Header.Get("Retry-After"), resp.Header.Get("Date"), now())}
}

// StatusError is a receiver's answer other than 2xx: its status, and the wait its Retry-After
// asked for (0 for none or garbage; see clear.ParseRetryAfter).
type StatusError struct {
	Code       int
	RetryAfter time.Duration
}

func (e *StatusError) Error() string { return fmt.Sprintf("the receiver answered %d", e.Code) }

// errorKind names a transport failure without the URL that net/http puts in its errors.
func errorKind(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timed out"
		}
		return clear.Sanitize(ue.Err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return clear.Sanitize(err.Error())
}
