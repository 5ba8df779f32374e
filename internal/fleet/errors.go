package fleet

import (
	"errors"
	"fmt"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// RotationError reports the clients whose rotation failed, was refused by the daily limit, or is
// blocked. The Lambda returns it as the invocation's error so that Lambda counts an Errors
// datapoint and the template's alarm fires; the engine's messages never hold a secret, so neither
// does this one.
type RotationError struct {
	// Failed are the results whose outcome is not OK, in configuration order.
	Failed []rotation.Result
	// Total is the number of clients checked.
	Total int
}

func (e *RotationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d client(s) not rotated as asked: ", len(e.Failed), e.Total)
	for i, r := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s: %s", r.Client, r.Outcome, r.Message)
	}
	return b.String()
}

// Unwrap returns the causes behind the outcomes, so that errors.As finds, say, a
// *rotation.LimitError.
func (e *RotationError) Unwrap() []error { return causes(e.Failed) }

// RevokeError reports a revoke that did not reach every API client: each one it names could not be
// asked, or its token could not be stored, so the tokens it issued before may still be live.
type RevokeError struct {
	// MayBeLive names the API clients whose tokens may still be live, in the order asked.
	MayBeLive []Live
	// Failed holds the result behind each of them.
	Failed []rotation.Result
	// Clients is the number of clients not revoked, Total the number asked to revoke.
	Clients, Total int
}

func (e *RevokeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d client(s) not revoked: the tokens issued before, if any, may still be live for ", e.Clients, e.Total)
	for i, l := range e.MayBeLive {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s API client %d", l.Client, l.APIClient)
	}
	for _, r := range e.Failed {
		fmt.Fprintf(&b, "; %s: API client %d: %s: %s", r.Client, r.APIClient, r.Outcome, r.Message)
	}
	return b.String()
}

// Unwrap returns the causes behind the outcomes.
func (e *RevokeError) Unwrap() []error { return causes(e.Failed) }

// StatusError reports the clients whose status could not be read.
type StatusError struct {
	Errs []error
}

func (e *StatusError) Error() string {
	return "reading the status failed: " + errors.Join(e.Errs...).Error()
}

func (e *StatusError) Unwrap() []error { return e.Errs }

// ErrNotDelivered is the cause, for errors.Is, of a command's error when every token was stored as
// asked but the ERP could not be told of one (push delivery): "rotated, not delivered", which the
// CLI tells apart from a failed rotation by its exit status.
var ErrNotDelivered = errors.New("rotated, not delivered")

// ClientDeliveryError is one client's push delivery that failed after its retries.
type ClientDeliveryError struct {
	Client string
	Err    error
	// Earlier is true for a token stored before this run, whose delivery this run resumed
	// (Fleet.Resume) and failed again.
	Earlier bool
}

func (e *ClientDeliveryError) Error() string {
	if e.Earlier {
		return e.Client + ": a token stored earlier is still not delivered: " + e.Err.Error()
	}
	return e.Client + ": " + ErrNotDelivered.Error() + ": " + e.Err.Error()
}

func (e *ClientDeliveryError) Unwrap() error { return e.Err }

// DeliveryError reports the clients whose token was stored but not delivered. errors.Is finds
// ErrNotDelivered in it.
type DeliveryError struct {
	// Errs holds one *ClientDeliveryError per such client, in configuration order.
	Errs []error
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("%d token(s) stored but the ERP not told (%s): %s", len(e.Errs), ErrNotDelivered, errors.Join(e.Errs...))
}

func (e *DeliveryError) Unwrap() []error { return append([]error{ErrNotDelivered}, e.Errs...) }

// notDelivered is the error of a command whose tokens were stored but not all delivered; nil when
// every one was.
func notDelivered(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &DeliveryError{Errs: errs}
}
