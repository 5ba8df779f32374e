package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// exitNotDelivered is the exit status of rotate and revoke when every token was stored as asked,
// but the ERP could not be told of one (its webhook or hook command failed after every retry):
// distinct from a failed rotation (1), since the token in Secrets Manager is fine and only the
// push failed.
const exitNotDelivered = 3

// renderNotDelivered prints, in the text output, one line per client whose token was stored but
// not delivered (a *fleet.DeliveryError in err).
func renderNotDelivered(stdout io.Writer, err error, asJSON bool) {
	var de *fleet.DeliveryError
	if asJSON || !errors.As(err, &de) {
		return
	}
	for _, e := range de.Errs {
		fmt.Fprintln(stdout, e)
	}
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
