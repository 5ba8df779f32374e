// Command lambda is the rotator as an AWS Lambda function (runtime provided.al2023, the executable
// named bootstrap), invoked by an EventBridge schedule and by operators; template.yaml deploys it.
// The work is done by internal/lambdafn.
//
// Init reads the configuration and builds the clients, and nothing else: no AWS or Clear call, so
// a cold start stays fast and cannot fail on the network. An invalid configuration does not crash
// init, because Lambda would then retry init on every invocation and report only a bare exit
// status; instead the function starts and fails each invocation with the full message (see
// lambdafn.Unconfigured), which reaches the caller, the log and the Errors alarm.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
	"github.com/clear-rotator/clear-rotator/internal/logging"
)

func main() {
	// The handler itself, not its Handle method: as a lambda.Handler it receives the raw payload
	// and decodes it, so that even a malformed one gets an answer naming the accepted events.
	lambda.Start(handler())
}

// handler builds the function's handler from the environment.
func handler() *lambdafn.Handler {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return unconfigured(fmt.Errorf("configuration:\n%w", err))
	}
	if cfg.Notify.HookCommand != nil {
		// A Lambda has no ERP beside it to run a command for, and a command baked into the
		// function's image would run wherever Lambda puts it: use ROTATOR_WEBHOOK_URL.
		return unconfigured(fmt.Errorf("configuration: %s is not supported in the Lambda; use %s (or an EventBridge rule, see docs/consumers.md)",
			config.EnvHookCommand, config.EnvWebhookURL))
	}
	for _, c := range cfg.Clients {
		if c.ProbePath != "" {
			// Probes are sent by a loop the function does not have; one configured here would
			// never be sent, and a token revoked outside would go unseen all the same.
			return unconfigured(fmt.Errorf("configuration: %s is not supported in the Lambda (client %q); run `rotator run` or `rotator gateway` with it (see docs/gateway.md)",
				config.EnvProbePath, c.Name))
		}
	}
	// CloudWatch Logs parses JSON lines, so JSON is the format whatever LOG_FORMAT says.
	log := logging.New(os.Stdout, cfg.LogLevel, logging.FormatJSON)
	sm, err := app.SecretsManager(context.Background())
	if err != nil {
		return unconfigured(err)
	}
	a, err := app.New(cfg, sm, nil, log)
	if err != nil {
		return unconfigured(err)
	}
	// Naming the claim owner after the log stream lets an operator who sees "a rotation is in
	// progress (claimed by ...)" go straight to the execution environment's logs.
	if stream := os.Getenv("AWS_LAMBDA_LOG_STREAM_NAME"); stream != "" {
		a.Engine.Owner = "lambda:" + os.Getenv("AWS_LAMBDA_FUNCTION_NAME") + ":" + stream
	}
	return lambdafn.New(a, os.Stdout)
}

func unconfigured(err error) *lambdafn.Handler {
	log := logging.New(os.Stdout, slog.LevelInfo, logging.FormatJSON)
	log.Error("the function's configuration is invalid; every invocation will fail until it is fixed", "error", err)
	return lambdafn.Unconfigured(err, log)
}
