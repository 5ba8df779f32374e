package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// This file holds the bodies of the rotate and status commands: how their results are rendered.
// The command-line framework around them (flags, help, errors) lives in run.go.

func rotate(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, force, asJSON bool, stdout io.Writer) error {
	failed := 0
	var results []rotation.Result
	for _, c := range clients {
		r := e.Rotate(ctx, c, force)
		results = append(results, r)
		if !r.Outcome.OK() {
			failed++
		}
		if !asJSON {
			fmt.Fprintf(stdout, "%s: %s: %s\n", r.Client, r.Outcome, r.Message)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"results": results}); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d client(s) not rotated as asked: %w", failed, len(clients), errReported)
	}
	return nil
}

func status(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, asJSON bool, stdout io.Writer) error {
	statuses := make([]rotation.Status, 0, len(clients))
	var errs []error
	for _, c := range clients {
		s, err := e.Status(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("client %q: %w", c.Name, err))
			msg := err.Error()
			s.LastError = &msg
		}
		statuses = append(statuses, s)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"clients": statuses}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVALID_TILL\tRENEW_AT\tREQUESTS_TODAY\tBLOCKED_UNTIL\tLAST_ERROR")
		for _, s := range statuses {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", s.Name, timeOr(s.ValidTill, validTillNone(s)), timeOr(s.RenewAt, "never"),
				s.RequestsToday, s.DailyLimit, strOr(s.BlockedUntil, "-"), strOr(s.LastError, "-"))
		}
		tw.Flush()
	}
	return errors.Join(errs...)
}

func validTillNone(s rotation.Status) string {
	if s.HasToken {
		return "never"
	}
	return "no token"
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

func strOr(s *string, none string) string {
	if s == nil {
		return none
	}
	return strings.ReplaceAll(*s, "\t", " ")
}
