// Package lambdafn is the rotator's AWS Lambda handler. An EventBridge schedule invokes it every few
// minutes to rotate whichever Clear tokens are due, and an operator invokes it by hand to force a
// rotation or to read the status; all the rules live in the rotation engine, so the function
// behaves exactly like `rotator rotate` and `rotator status --json`.
//
// Every invocation is independent and cheap when nothing is due: the engine keeps its request
// count, backoff and blocks in the token secret, so neither a retried invocation nor a cold start
// can spend Clear's daily budget twice. For the same reason the template tells EventBridge
// Scheduler not to retry: the next scheduled run is the retry.
//
// Outcomes that need a person (failed, limited, blocked) are returned as a Lambda error, so that
// the function's Errors metric and the alarms on it fire; busy and not due are successes. Besides
// its JSON logs, which carry the request id, the function writes one CloudWatch Embedded Metric
// Format line per client and rotation to stdout, from which CloudWatch derives the metrics behind
// the token-expiry and budget alarms without any API call.
package lambdafn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// maxParallel bounds how many clients one invocation rotates at once. Clients are independent, and
// rotating them side by side keeps a slow Clear answer for one from eating the others' share of the
// function's deadline; the bound keeps a long client list from flooding Secrets Manager.
const maxParallel = 4

// RotateAnswer is the answer to a scheduled or rotate event: the same document as
// `rotator rotate --json`.
type RotateAnswer struct {
	Results []rotation.Result `json:"results"`
}

// StatusAnswer is the answer to a status event: the same document as `rotator status --json`.
type StatusAnswer struct {
	Clients []rotation.Status `json:"clients"`
}

// Handler answers the function's invocations. It is safe for concurrent use.
type Handler struct {
	app     *app.App
	log     *slog.Logger
	emf     *emf
	initErr error
}

// New returns the handler of a configured rotator. Metrics go to out as Embedded Metric Format
// lines (stdout in Lambda); logs go to a's logger.
func New(a *app.App, out io.Writer) *Handler {
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{app: a, log: log, emf: &emf{out: out}}
}

// Unconfigured returns a handler that fails every invocation with an *InitError wrapping err, and
// logs it each time. The function starts it when its configuration is invalid, rather than
// exiting: a crashing init would surface only as a terse Runtime.ExitError and be retried on every
// invocation, whereas this way each invocation's caller, log and Errors metric carry the actual
// problem.
func Unconfigured(err error, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{log: log, initErr: &InitError{Err: err}}
}

// Handle answers one invocation. The answer is a RotateAnswer or a StatusAnswer; the error is an
// *EventError, *ClientError, *RotationError, *StatusError or *InitError, whose type name Lambda
// reports as the errorType.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	log, requestID := h.log, ""
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		requestID = lc.AwsRequestID
		log = log.With("request_id", requestID)
	}
	if h.initErr != nil {
		log.Error("the function's configuration is invalid; fix it and redeploy", "error", h.initErr)
		return nil, h.initErr
	}
	ev, err := ParseEvent(raw)
	if err != nil {
		// The payload itself is not logged: it could hold anything a caller pasted.
		log.Error("refused the event", "error", err)
		return nil, err
	}
	clients, err := h.app.Select(ev.Client)
	if err != nil {
		log.Error("refused the event", "error", err)
		return nil, &ClientError{Name: ev.Client, Err: err}
	}
	// A copy of the engine per invocation carries the request id into the engine's own log lines
	// without touching the shared engine that a concurrent invocation may be using.
	engine := *h.app.Engine
	engine.Log = log

	if ev.Kind == KindStatus {
		log.Info("reading the status", "clients", len(clients))
		return h.status(ctx, &engine, clients, log)
	}
	log.Info("checking clients", "event", string(ev.Kind), "clients", len(clients), "force", ev.Force)
	return h.rotate(ctx, &engine, clients, ev.Force, requestID, log)
}

// Invoke is Handle over raw bytes, the lambda.Handler interface of aws-lambda-go. Started with it,
// the library hands over the payload as it came instead of decoding it first, so that an empty or
// malformed payload gets the same *EventError, naming the accepted events, as any other unknown
// event, rather than a bare "EOF" or JSON syntax error.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	ans, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ans)
}

func (h *Handler) rotate(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, force bool, requestID string, log *slog.Logger) (any, error) {
	results := make([]rotation.Result, len(clients))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = e.Rotate(ctx, c, force)
			h.record(e, c, results[i], requestID, log)
		})
	}
	wg.Wait()

	var failed []rotation.Result
	for _, r := range results {
		if !r.Outcome.OK() {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		err := &RotationError{Failed: failed, Total: len(results)}
		log.Error("not every client was rotated as asked", "error", err)
		return nil, err
	}
	log.Info("clients checked", "summary", summary(results))
	return RotateAnswer{Results: results}, nil
}

func (h *Handler) status(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, log *slog.Logger) (any, error) {
	statuses := make([]rotation.Status, 0, len(clients))
	var failed []error
	for _, c := range clients {
		s, err := e.Status(ctx, c)
		if err != nil {
			failed = append(failed, fmt.Errorf("client %q: %w", c.Name, err))
			continue
		}
		statuses = append(statuses, s)
	}
	if len(failed) > 0 {
		err := &StatusError{Errs: failed}
		log.Error("could not read every client's status", "error", err)
		return nil, err
	}
	return StatusAnswer{Clients: statuses}, nil
}

// record writes r's metrics. The engine returns early for a token that is not due, before it reads
// the rotation state, so such a result carries no request count (nor does a failure before the
// state was read). Rather than report a false zero, or spend two more Secrets Manager reads per
// client on every scheduled run, the RequestsToday metric is left out then: the count only changes
// when a request is made, and those runs report it, which is what the budget alarm (a maximum)
// needs.
func (h *Handler) record(e *rotation.Engine, c *rotation.Client, r rotation.Result, requestID string, log *slog.Logger) {
	now := time.Now().UTC()
	if e.Now != nil {
		now = e.Now().UTC()
	}
	s := sample{client: c.Name, outcome: r.Outcome, limit: c.DailyLimit, remaining: secondsLeft(r.ValidTill, now)}
	// The count is known whenever the state was read, which every run does: emitting it on every
	// run keeps the budget alarm from flapping between a value and missing data.
	s.requests = r.RequestsToday
	if err := h.emf.write(now, requestID, s); err != nil {
		log.Error("could not write the metrics", "client", c.Name, "error", err)
	}
}

// summary counts outcomes for the closing log line, e.g. "rotated=1 not_due=2".
func summary(results []rotation.Result) string {
	counts := map[rotation.Outcome]int{}
	for _, r := range results {
		counts[r.Outcome]++
	}
	var parts []string
	for _, o := range rotation.Outcomes {
		if n := counts[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", o, n))
		}
	}
	return strings.Join(parts, " ")
}
