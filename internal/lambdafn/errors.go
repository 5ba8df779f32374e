package lambdafn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// RotationError reports the clients whose rotation failed, was refused by the daily limit, or is
// blocked. It is returned as the invocation's error so that Lambda counts an Errors datapoint and
// the template's alarm fires; the engine's messages never hold a secret, so neither does this one.
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

// causes returns the errors behind results, in order.
func causes(results []rotation.Result) []error {
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errs
}

// StatusError reports the clients whose status could not be read.
type StatusError struct {
	Errs []error
}

func (e *StatusError) Error() string {
	return "reading the status failed: " + errors.Join(e.Errs...).Error()
}

func (e *StatusError) Unwrap() []error { return e.Errs }

// ClientError is an event naming a client that is not configured.
type ClientError struct {
	Name string
	Err  error
}

func (e *ClientError) Error() string { return e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

// InitError is an invalid configuration found while the function started. Every invocation
// returns it until the configuration is fixed.
type InitError struct {
	Err error
}

func (e *InitError) Error() string {
	return "the function's configuration is invalid (fix its environment and redeploy):\n" + e.Err.Error()
}

func (e *InitError) Unwrap() error { return e.Err }

// RevokeError reports the clients whose revocation stopped short: an API client that could not be
// asked, or whose token could not be stored. Every token stored before may then still be live.
type RevokeError struct {
	// Failed holds, per client not revoked, the result that stopped it.
	Failed []rotation.Result
	// Total is the number of clients asked to revoke.
	Total int
}

func (e *RevokeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d client(s) not revoked, so every token stored before may still be live: ", len(e.Failed), e.Total)
	for i, r := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: API client %d: %s: %s", r.Client, r.APIClient, r.Outcome, r.Message)
	}
	return b.String()
}

// Unwrap returns the causes behind the outcomes.
func (e *RevokeError) Unwrap() []error { return causes(e.Failed) }

// StepError is a Secrets Manager rotation step that failed. Returned as the invocation's error,
// it makes Secrets Manager record the rotation as failed, with this message in its log.
type StepError struct {
	Step Step
	// Client is the configured client, empty when none keeps its token in the secret.
	Client string
	// Version is the event's ClientRequestToken: the version the rotation creates.
	Version string
	Reason  string
	Err     error
}

func (e *StepError) Error() string {
	who := ""
	if e.Client != "" {
		who = fmt.Sprintf(" of client %q", e.Client)
	}
	return fmt.Sprintf("Secrets Manager rotation step %s%s (version %s) failed: %s", e.Step, who, e.Version, e.Reason)
}

func (e *StepError) Unwrap() error { return e.Err }
