package lambdafn

import (
	"fmt"

	"github.com/clear-rotator/clear-rotator/internal/fleet"
)

// The fleet's errors, under the names Lambda reports as the errorType (the type's own name).
type (
	RotationError = fleet.RotationError
	RevokeError   = fleet.RevokeError
)

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
