// Command clear-emulator serves an emulation of Clear's access token API on loopback, for the
// local demo and for tests that run the rotator as a process. See package internal/emulator for
// its behaviour and its control API under /_emulator/.
//
// Usage:
//
//	clear-emulator [-addr 127.0.0.1:0] [-lifetime 1h] [-daily-limit 288] [-retry-after]
//	               [-fixed-valid-till RFC3339] [-secret S]... [-v]
//
// Client secrets also come from CLEAR_EMULATOR_SECRETS, comma-separated. Once listening, it prints
// one line, "listening on http://HOST:PORT", and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
)

// usageError is a bad command line, reported with exit code 2 like the flag package does.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "clear-emulator:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "clear-emulator:", err)
		os.Exit(1)
	}
}

// secretList is a repeatable -secret flag.
type secretList []string

func (l *secretList) String() string { return fmt.Sprintf("%d secrets", len(*l)) }

func (l *secretList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// run serves the emulator until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("clear-emulator", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	lifetime := fs.Duration("lifetime", time.Hour, "token lifetime; 0 means tokens never expire")
	limit := fs.Int("daily-limit", emulator.DefaultDailyLimit, "token requests allowed per client secret and UTC day")
	verbose := fs.Bool("v", false, "log each answer's status and error code to stderr")
	retryAfter := fs.Bool("retry-after", false, "send Retry-After (seconds until midnight UTC) with the daily limit's 429")
	fixedTill := fs.String("fixed-valid-till", "", "give every token this `RFC3339` valid_till (an expiry that never moves)")
	var secrets secretList
	fs.Var(&secrets, "secret", "a known client `secret` (repeatable; also CLEAR_EMULATOR_SECRETS, comma-separated)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if *lifetime < 0 {
		return usageError{errors.New("-lifetime must not be negative")}
	}
	if *limit <= 0 {
		return usageError{errors.New("-daily-limit must be positive")}
	}
	var fixed time.Time
	if *fixedTill != "" {
		var err error
		if fixed, err = time.Parse(time.RFC3339, *fixedTill); err != nil {
			return usageError{fmt.Errorf("-fixed-valid-till %q is not an RFC 3339 time", *fixedTill)}
		}
	}
	// The control API has no authentication, so the emulator must not be reachable from elsewhere.
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !clear.IsLoopback(host) {
		return usageError{fmt.Errorf("-addr %q is not a loopback address such as 127.0.0.1:0", *addr)}
	}
	for s := range strings.SplitSeq(os.Getenv("CLEAR_EMULATOR_SECRETS"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}

	opts := emulator.Options{Lifetime: *lifetime, DailyLimit: *limit, Secrets: secrets,
		RetryAfter: *retryAfter, FixedValidTill: fixed}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	emu := emulator.New(opts)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Release requests held by Hang or Delay faults first, or Shutdown would wait for them.
	emu.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
