// Package lambdafn is the rotator's AWS Lambda handler. An EventBridge schedule invokes it every few
// minutes to rotate whichever Clear tokens are due; an operator invokes it by hand to force a
// rotation, to revoke every stored token, or to read the status; and Secrets Manager invokes it for
// the four steps of its own rotation of a token secret (native.go). All the rules live in the
// rotation engine, so the function behaves exactly like `rotator rotate`, `rotator revoke` and
// `rotator status --json`.
//
// A forced rotation or a revoke is acted on once per event identity (its "request_id", else the
// Lambda request id, which Lambda keeps when it retries an asynchronous invocation): the engine
// remembers the id in the client's state, so a duplicated delivery asks Clear for nothing.
//
// Every invocation is independent and cheap when nothing is due: the engine keeps its request
// count, backoff and blocks in the token secret, so neither a retried invocation nor a cold start
// can spend Clear's daily budget twice. For the same reason the template tells EventBridge
// Scheduler, and Lambda for the scheduler's asynchronous invocations, not to retry: the next
// scheduled run is the retry.
//
// Outcomes that need a person (failed, limited, blocked) are returned as a Lambda error, so that
// the function's Errors metric and the alarms on it fire; busy, not due and duplicate are
// successes. A client in degraded mode is not an error: its Degraded metric and a warning say so. Besides
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

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// The answers are the fleet's, the same documents as `rotator rotate --json`, `rotator revoke
// --json` and `rotator status --json`.
type (
	RotateAnswer = fleet.RotateAnswer
	RevokeAnswer = fleet.RevokeAnswer
	StatusAnswer = fleet.StatusAnswer
)

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

// Handle answers one invocation. The answer is a RotateAnswer, a RevokeAnswer, a StatusAnswer or a
// StepAnswer; the error is an *EventError, *ClientError, *RotationError, *RevokeError, *StepError or
// *InitError, whose type name Lambda reports as the errorType.
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
	// A copy of the engine per invocation carries the request id into the engine's own log lines
	// without touching the shared engine that a concurrent invocation may be using.
	engine := *h.app.Engine
	engine.Log = log

	if ev.Kind == KindRotationStep {
		return h.rotationStep(ctx, &engine, ev, requestID, log)
	}
	clients, err := h.app.Select(ev.Client)
	if err != nil {
		log.Error("refused the event", "error", err)
		return nil, &ClientError{Name: ev.Client, Err: err}
	}

	switch ev.Kind {
	case KindStatus:
		log.Info("reading the status", "clients", len(clients))
		return h.status(ctx, &engine, clients, log)
	case KindRevoke:
		id := eventID(ev, requestID)
		log.Warn("revoking every stored token: each API client is asked for a new one", "clients", len(clients), "event_id", id)
		return h.revoke(ctx, &engine, clients, id, requestID, log)
	}
	req := rotation.Request{Force: ev.Force, Slot: ev.APIClient}
	for _, c := range clients {
		if ev.APIClient > c.Slots() {
			err := &ClientError{Name: c.Name, Err: fmt.Errorf("API client %d is not configured for client %q (it has %d)", ev.APIClient, c.Name, c.Slots())}
			log.Error("refused the event", "error", err)
			return nil, err
		}
	}
	if ev.Kind == KindRotate && (ev.Force || ev.RequestID != "") {
		// A forced rotation is answered once per event: the engine remembers the id in the
		// client's state, so a duplicated delivery asks Clear for nothing.
		req.Event = eventID(ev, requestID)
	}
	attrs := []any{"event", string(ev.Kind), "clients", len(clients), "force", ev.Force}
	if ev.ID != "" {
		attrs = append(attrs, "eventbridge_id", ev.ID)
	}
	if req.Event != "" {
		attrs = append(attrs, "event_id", req.Event)
	}
	log.Info("checking clients", attrs...)
	return h.rotate(ctx, &engine, clients, req, requestID, log)
}

// eventID is the identity of a rotate or revoke event: its request_id, or else the Lambda request
// id. Lambda retries a failed asynchronous invocation with the same request id, so a retried
// invocation is recognised as the duplicate it is.
func eventID(ev Event, requestID string) string {
	if ev.RequestID != "" {
		return ev.RequestID
	}
	return requestID
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

// fleet runs the invocation's commands with e, writing every result's metrics as it comes.
func (h *Handler) fleet(e *rotation.Engine, requestID string, log *slog.Logger) *fleet.Fleet {
	return &fleet.Fleet{Engine: e, All: h.app.Clients, Guard: h.app.Guard, Observe: func(c *rotation.Client, r rotation.Result) {
		h.record(e, c, r, requestID, log)
	}, Deliver: h.deliver(requestID, log), Resume: h.app.Resume(log, h.app.Recorder(deliveryMetrics{h.emf, requestID, log}, log))}
}

func (h *Handler) rotate(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, req rotation.Request, requestID string, log *slog.Logger) (any, error) {
	ans, err := h.fleet(e, requestID, log).Rotate(ctx, clients, req)
	if err != nil && !notDelivered(err) {
		log.Error("not every client was rotated as asked", "error", err)
		return nil, err
	}
	log.Info("clients checked", "summary", summary(ans.Results))
	return ans, nil
}

// revoke asks every API client of each client for a new token (fleet.Fleet.Revoke). Anything short
// of every API client revoked leaves a stored token possibly live, which needs a person: the
// error names each such API client.
func (h *Handler) revoke(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, id, requestID string, log *slog.Logger) (any, error) {
	ans, err := h.fleet(e, requestID, log).Revoke(ctx, clients, id)
	if err != nil && !notDelivered(err) {
		log.Error("not every token could be revoked", "error", err)
		return nil, err
	}
	log.Warn("revoked: every token stored before is dead at Clear; ERP systems must re-read the secret", "summary", summary(ans.Results))
	return ans, nil
}

// status answers the status document. A client whose status could not be read keeps its row,
// state unknown, as in `rotator status --json`; the failure is logged as an error rather than
// returned, since returning it would drop every row, the readable ones too.
func (h *Handler) status(ctx context.Context, e *rotation.Engine, clients []*rotation.Client, log *slog.Logger) (any, error) {
	ans, err := (&fleet.Fleet{Engine: e, All: h.app.Clients, Guard: h.app.Guard, Undelivered: h.app.Undelivered}).Status(ctx, clients)
	if err != nil {
		log.Error("could not read every client's status", "error", err)
	}
	return ans, nil
}

// record writes r's metrics, and warns of a client in degraded mode. RequestsToday is known
// whenever the rotation state was read, which every run does, so it is reported on every run and
// the budget alarm does not flap between a value and missing data; when the state could not be read
// it is left out rather than reported as a false zero, and so are Degraded and TokenLost.
func (h *Handler) record(e *rotation.Engine, c *rotation.Client, r rotation.Result, requestID string, log *slog.Logger) {
	now := e.Now().UTC()
	if err := h.emf.write(now, requestID, c.Name, r.Metrics(now)); err != nil {
		log.Error("could not write the metrics", "client", c.Name, "error", err)
	}
	if r.Status.IsDegraded() && r.Outcome != rotation.Rotated {
		// The engine warns itself when it rotates in degraded mode; a run that does not rotate
		// would otherwise let the condition pass without a line in the log.
		log.Warn("degraded: only one of the client's two API clients can be asked, so its next rotation revokes the token in use",
			"client", c.Name, "outcome", string(r.Outcome), "state", string(r.Status.State))
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
