// Command rotator keeps Clear access tokens fresh in AWS Secrets Manager: as a daemon (`rotator
// run`) and as the operators' tool for manual rotation, revocation, status and configuration checks.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], osEnv{}, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}
