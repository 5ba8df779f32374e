package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// This file holds the bodies of the rotate, status and revoke commands: how their results are
// rendered. The command-line framework around them (flags, help, errors) lives in run.go.

func rotate(ctx context.Context, f *fleet.Fleet, clients []*rotation.Client, req rotation.Request, asJSON bool, stdout io.Writer) error {
	// A forced rotation from the command line is its own event: no event id.
	ans, err := f.Rotate(ctx, clients, req)
	if asJSON {
		if werr := writeJSON(stdout, ans); werr != nil {
			return werr
		}
	} else {
		for _, r := range ans.Results {
			fmt.Fprintf(stdout, "%s: %s: %s\n", r.Client, r.Outcome, said(r))
		}
	}
	var re *fleet.RotationError
	if errors.As(err, &re) {
		return fmt.Errorf("%d of %d client(s) not rotated as asked: %w", len(re.Failed), re.Total, errReported)
	}
	renderNotDelivered(stdout, err, asJSON)
	return err
}

// said is r's message for a line that names its outcome already: "rotated; next renewal at ..."
// says "rotated" once.
func said(r rotation.Result) string {
	return strings.TrimPrefix(r.Message, string(r.Outcome)+"; ")
}

// revoke asks every configured API client of each client for a new token, so that every token the
// rotator stored is revoked at Clear, and stores the last one. It fails naming each API client
// whose tokens may still be live.
func revoke(ctx context.Context, f *fleet.Fleet, clients []*rotation.Client, asJSON bool, stdout io.Writer) error {
	ans, err := f.Revoke(ctx, clients, "")
	if asJSON {
		if werr := writeJSON(stdout, ans); werr != nil {
			return werr
		}
	} else {
		for _, r := range ans.Results {
			slot := fmt.Sprintf("API client %d", r.APIClient)
			fmt.Fprintf(stdout, "%s: %s: %s: %s\n", r.Client, slot, r.Outcome, strings.TrimPrefix(said(r), slot+": "))
		}
	}
	var re *fleet.RevokeError
	if errors.As(err, &re) {
		live := make([]string, len(re.MayBeLive))
		again := make([]string, len(re.MayBeLive))
		for i, l := range re.MayBeLive {
			live[i] = fmt.Sprintf("%s API client %d", l.Client, l.APIClient)
			again[i] = fmt.Sprintf("rotator rotate --force --client %s --api-client %d", l.Client, l.APIClient)
		}
		// Printed on stderr, not only implied by the lines above: it is what the operator must act on.
		// Once fixed, only those API clients are asked: revoke again would also revoke the tokens it
		// just stored for the others, which the ERPs may have read since.
		return fmt.Errorf("%d of %d client(s) not revoked: the tokens stored before may still be live for %s (see above); "+
			"fix what their lines say, then run: %s (not revoke again, which would revoke the new tokens of the others)",
			re.Clients, re.Total, strings.Join(live, ", "), strings.Join(again, "; "))
	}
	renderNotDelivered(stdout, err, asJSON)
	return err
}

// status prints each client's status, a row for every client. It fails when a client could not be
// read, and, with check, when any client is not OK (for cron and monitoring checks).
func status(ctx context.Context, f *fleet.Fleet, clients []*rotation.Client, asJSON, check bool, stdout io.Writer) error {
	ans, err := f.Status(ctx, clients)
	if asJSON {
		if werr := writeJSON(stdout, ans); werr != nil {
			return werr
		}
	} else {
		renderStatus(stdout, ans.Clients, time.Now())
		renderUndelivered(stdout, clients, ans.Undelivered)
	}
	var se *fleet.StatusError
	if errors.As(err, &se) {
		return errors.Join(se.Errs...)
	}
	if check {
		var bad []string
		for _, s := range ans.Clients {
			switch {
			case !s.State.OK():
				bad = append(bad, s.Name+" ("+string(s.State)+")")
			case len(ans.Undelivered[s.Name]) > 0:
				// No metric alerts where status --check runs (cron, Nagios, the Lambda's users).
				bad = append(bad, s.Name+" (not delivered)")
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%d of %d client(s) not OK: %s", len(bad), len(ans.Clients), strings.Join(bad, ", "))
		}
	}
	return nil
}

// renderStatus prints the status table: relative times, "?" for what could not be read.
func renderStatus(w io.Writer, statuses []rotation.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tEXPIRES\tRENEWS\tREQUESTS\tBLOCKED\tLAST_ERROR")
	for _, s := range statuses {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, expires(s, now), renews(s, now),
			requests(s), blocked(s, now), strOr(s.LastError, "-"))
	}
	tw.Flush()
	for _, s := range statuses {
		switch {
		case s.ConsumerReread != nil:
			fmt.Fprintf(w, "%s: two API clients; a consumer that re-reads the secret at least every %s never holds a dead token\n", s.Name, *s.ConsumerReread)
		case s.IsDegraded():
			fmt.Fprintf(w, "%s: degraded: one of two API clients can be asked, so each rotation revokes the token in use; consumers must re-read on a 401 meanwhile\n", s.Name)
		}
		if s.OverBudget() {
			fmt.Fprintf(w, "%s: its tokens need %d requests a day, more than the daily limit of %d allows (for each API client); the day's budget runs out, and the token then expires until midnight UTC: raise the daily limit, or the tokens' expiry in Clear\n",
				s.Name, *s.RenewalsPerDay, s.DailyLimit)
		}
		if s.TokenLost != nil {
			fmt.Fprintf(w, "%s: token lost %s: %s\n", s.Name, relative(s.TokenLost.At, now), s.TokenLost.Reason)
		}
		if s.InFlight != nil {
			fmt.Fprintf(w, "%s: rotation in progress by %s since %s (lease ends %s)\n", s.Name, s.InFlight.Owner,
				relative(s.InFlight.Since, now), relative(s.InFlight.LeaseUntil, now))
		}
		if r := s.RevokedOutside; r != nil {
			healed := "no token stored by a forced rotation after it"
			if r.At != nil {
				healed = "a forced rotation stored a new token " + relative(*r.At, now)
			}
			fmt.Fprintf(w, "%s: last token revoked outside the rotator: version %s; %s\n", s.Name, r.Version, healed)
		}
	}
}

func expires(s rotation.Status, now time.Time) string {
	switch {
	case s.State == rotation.HealthUnknown && !s.HasToken:
		return "?"
	case !s.HasToken:
		return "no token"
	case s.ValidTill == nil:
		return "never"
	}
	return relative(*s.ValidTill, now)
}

func renews(s rotation.Status, now time.Time) string {
	switch {
	case s.State == rotation.HealthUnknown && s.RenewAt == nil:
		return "?"
	case s.RenewAt == nil:
		return "never"
	case !s.RenewAt.After(now):
		return "now"
	}
	return relative(*s.RenewAt, now)
}

func requests(s rotation.Status) string {
	if len(s.APIClients) == 0 {
		return fmt.Sprintf("?/%d", s.DailyLimit)
	}
	var parts []string
	for _, a := range s.APIClients {
		n := "?"
		if a.RequestsToday != nil {
			n = fmt.Sprint(*a.RequestsToday)
		}
		parts = append(parts, fmt.Sprintf("%s/%d", n, s.DailyLimit))
	}
	return strings.Join(parts, " ")
}

func blocked(s rotation.Status, now time.Time) string {
	reason := strOr(s.BlockedReason, "")
	// "unauthorized: clear: HTTP 401 ...": LAST_ERROR shows Clear's answer already, so BLOCKED
	// names the block alone rather than carry the answer twice on one line.
	if kind, rest, ok := strings.Cut(reason, ": "); ok && s.LastError != nil && strings.Contains(*s.LastError, rest) {
		reason = kind
	}
	switch {
	case s.State == rotation.HealthUnknown:
		return "?"
	case s.BlockedReason == nil && s.BlockedUntil == nil:
		return "-"
	case s.BlockedUntil == nil:
		return reason + " (until the client secret changes)"
	}
	return cmp.Or(reason, "blocked") + " until " + s.BlockedUntil.UTC().Format(time.RFC3339) + " (" + relative(*s.BlockedUntil, now) + ")"
}

// relative renders t as "in 5m" or "3m ago", to the second below a minute.
func relative(t, now time.Time) string {
	d := t.Sub(now)
	round := func(d time.Duration) string {
		if s := d.Round(time.Second); s < time.Minute {
			return s.String()
		}
		// Whole minutes: "5m0s" is shown as "5m". Only here: "10s" and "0s" end in "0s" too.
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	if d >= 0 {
		return "in " + round(d)
	}
	return round(-d) + " ago"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func strOr(s *string, none string) string {
	if s == nil {
		return none
	}
	return strings.ReplaceAll(*s, "\t", " ")
}
