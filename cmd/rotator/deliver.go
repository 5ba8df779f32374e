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

// renderUndelivered prints one line per delivery that finally failed, under the status table.
func renderUndelivered(w io.Writer, clients []*rotation.Client, undelivered map[string][]fleet.Undelivered) {
	for _, c := range clients {
		for _, u := range undelivered[c.Name] {
			fmt.Fprintf(w, "%s: not delivered: %s\n", c.Name, u)
		}
	}
}

// checkDelivery is check's look at what push delivery reads when it tells an ERP of a token: the
// signing secret named by ROTATOR_WEBHOOK_SECRET_ID, read and parsed as a webhook's delivery does,
// and the hook command's program, looked up as the hook's attempt does. Each is a line, ok or FAIL,
// when it is configured; it returns the problems found. No line holds a secret's value.
func checkDelivery(ctx context.Context, a *app.App, stdout io.Writer) int {
	failed := 0
	if id := a.Config.Notify.WebhookSecretID; id != "" && a.Config.Notify.WebhookSecret.IsZero() {
		if err := a.CheckSigningSecret(ctx); err != nil {
			failed++
			fmt.Fprintf(stdout, "webhook: FAIL: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "webhook: ok: the signing secret %s is readable and valid\n", id)
		}
	}
	if args := a.Config.Notify.HookCommand; args != nil {
		h := notify.Hook{Args: args}
		if path, err := h.Check(); err != nil {
			failed++
			fmt.Fprintf(stdout, "hook: FAIL: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "hook: ok: %s can be run\n", path)
		}
	}
	return failed
}
