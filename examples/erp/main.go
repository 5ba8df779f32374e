// Command erp is an example ERP integration: it calls a Clear API continuously from several
// workers with the token clear-rotator keeps in AWS Secrets Manager, through package cleartoken,
// and reports how many calls failed. A rotation (which revokes the token every worker holds) should
// cost none.
//
// Usage:
//
//	ROTATOR_TOKEN_SECRET_ID=clear/erp/token erp -url https://api.clear.in/... [-workers 4] [-interval 50ms] [-duration 1m]
//
// AWS credentials, region and endpoint come from the SDK's usual chain (AWS_REGION,
// AWS_ENDPOINT_URL, a profile or a role). It prints one JSON line when done and exits 1 if any call
// failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/cleartoken"
)

func main() {
	url := flag.String("url", "", "the Clear API `URL` to call (GET)")
	secretID := flag.String("secret-id", os.Getenv("ROTATOR_TOKEN_SECRET_ID"), "the token secret's id or ARN (default $ROTATOR_TOKEN_SECRET_ID)")
	workers := flag.Int("workers", 4, "concurrent callers")
	interval := flag.Duration("interval", 50*time.Millisecond, "pause between one worker's calls")
	duration := flag.Duration("duration", 0, "stop after this long; 0 runs until SIGINT or SIGTERM")
	flag.Parse()
	if *url == "" || *secretID == "" || *workers < 1 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("loading the AWS configuration", "error", err)
		os.Exit(1)
	}
	// One Source per token secret, shared by every worker: one cache, one re-read per refusal.
	src := cleartoken.NewSource(secretsmanager.NewFromConfig(cfg), *secretID, cleartoken.WithLogger(log))
	client := &http.Client{Transport: cleartoken.NewTransport(src, nil), Timeout: 30 * time.Second}

	// Fail fast on a missing or malformed secret, with the error that says which.
	if _, err := src.Token(ctx); err != nil {
		log.Error("cannot read the Clear token", "error", err)
		os.Exit(1)
	}

	var calls, failed atomic.Int64
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				calls.Add(1)
				if err := call(ctx, client, *url); err != nil && ctx.Err() == nil {
					failed.Add(1)
					log.Warn("call failed", "error", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(*interval):
				}
			}
		})
	}
	wg.Wait()
	out, _ := json.Marshal(map[string]int64{"calls": calls.Load(), "failed": failed.Load()})
	fmt.Println(string(out))
	if failed.Load() > 0 {
		os.Exit(1)
	}
}

// call makes one GET and treats anything but a 2xx answer as a failure.
func call(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var e *cleartoken.Error
		if errors.As(err, &e) {
			return fmt.Errorf("token secret: %w", e)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the Clear API answered %s", resp.Status)
	}
	return nil
}
