package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/clear-rotator/clear-rotator/internal/fleet"
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

// renderUndelivered prints one line per delivery that finally failed, under the status table.
func renderUndelivered(w io.Writer, clients []*rotation.Client, undelivered map[string][]string) {
	for _, c := range clients {
		for _, line := range undelivered[c.Name] {
			fmt.Fprintf(w, "%s: not delivered: %s\n", c.Name, line)
		}
	}
}
