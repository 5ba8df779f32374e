package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// exitNotDelivered is the exit status of rotate and revoke when every token was stored as asked,
// but the ERP could not be told of one (its webhook or hook command failed after every retry):
// distinct from a failed rotation (1), since the token in Secrets Manager is fine and only the
// push failed.
const exitNotDelivered = 3

// deliverFunc tells the ERP of the token a result stored; nil when push delivery is off.
type deliverFunc func(ctx context.Context, c *rotation.Client, r rotation.Result, revoking bool) error

// deliver runs f for a result that stored a token, and prints a failure in the text output.
func (f deliverFunc) deliver(ctx context.Context, c *rotation.Client, r rotation.Result, revoking, asJSON bool, stdout io.Writer) error {
	if f == nil || r.Stored == nil {
		return nil
	}
	err := f(ctx, c, r, revoking)
	if err != nil && !asJSON {
		fmt.Fprintf(stdout, "%s: rotated, not delivered: %v\n", r.Client, err)
	}
	return err
}

// newDeliver is push delivery for rotate and revoke: retried within the run (notify.Run), each
// failure logged at error level by the notifier.
func newDeliver(a *app.App) deliverFunc {
	n := a.Notifier(notify.Run, a.Log, a.Recorder(nil, a.Log))
	if n == nil {
		return nil
	}
	return func(ctx context.Context, c *rotation.Client, r rotation.Result, revoking bool) error {
		ev, ok := a.Event(ctx, c, r, "", revoking)
		if !ok {
			return nil
		}
		return n.Deliver(ctx, ev)
	}
}

// notDelivered is the error of a run whose tokens were stored but not all delivered.
func notDelivered(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d token(s) stored but the ERP not told (%w): %w", len(errs), app.ErrNotDelivered, errors.Join(errs...))
}

// undeliveredFunc reads what a client's token secret records as not delivered (app.Undelivered);
// nil when push delivery is off.
type undeliveredFunc func(ctx context.Context, c *rotation.Client) ([]string, error)

// of returns the records by client name; a secret whose tags cannot be read is left out, since
// the status table reports the read failure already.
func (f undeliveredFunc) of(ctx context.Context, clients []*rotation.Client) map[string][]string {
	if f == nil {
		return nil
	}
	out := map[string][]string{}
	for _, c := range clients {
		if lines, err := f(ctx, c); err == nil && len(lines) > 0 {
			out[c.Name] = lines
		}
	}
	return out
}

// renderUndelivered prints one line per delivery that finally failed, under the status table.
func renderUndelivered(w io.Writer, clients []*rotation.Client, undelivered map[string][]string) {
	for _, c := range clients {
		for _, line := range undelivered[c.Name] {
			fmt.Fprintf(w, "%s: not delivered: %s\n", c.Name, line)
		}
	}
}

// newUndelivered is `status`'s view of push delivery, when it is configured.
func newUndelivered(a *app.App) undeliveredFunc {
	if a.Notifier(notify.Run, nil, nil) == nil {
		return nil
	}
	return a.Undelivered
}
