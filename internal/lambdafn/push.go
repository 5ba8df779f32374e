package lambdafn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// MetricDeliveryFailures counts deliveries of a stored token (webhook) that failed after every
// retry of the invocation, by client and kind; the template's DeliveryFailed alarm watches it.
const MetricDeliveryFailures = "DeliveryFailures"

// deliver is the fleet's push delivery in the Lambda (fleet.Fleet.Deliver): each token stored is
// delivered with retries within the invocation (notify.Run). A delivery that finally failed is
// logged at error level by the notifier and counted in MetricDeliveryFailures; the invocation
// still succeeds (see notDelivered), since the token in Secrets Manager is good and a retried
// invocation would not tell the ERP more. Nil when push delivery is not configured.
func (h *Handler) deliver(requestID string, log *slog.Logger) func(context.Context, *rotation.Client, rotation.Result, bool) error {
	return h.app.Deliver(log, h.app.Recorder(deliveryMetrics{h.emf, requestID, log}, log))
}

// notDelivered reports whether err says only that a stored token was not delivered: the rotation
// itself succeeded, so the invocation does too.
func notDelivered(err error) bool {
	var de *fleet.DeliveryError
	return errors.As(err, &de)
}

// tell delivers the token r stored, for the steps of Secrets Manager's own rotation, which do not
// go through the fleet.
func (h *Handler) tell(ctx context.Context, c *rotation.Client, r rotation.Result, requestID string, log *slog.Logger) {
	if d := h.deliver(requestID, log); d != nil && r.Stored != nil {
		_ = d(ctx, c, r, false)
	}
}

// deliveryMetrics is the notifier's Recorder in the Lambda: one EMF line per failed delivery.
type deliveryMetrics struct {
	emf       *emf
	requestID string
	log       *slog.Logger
}

func (d deliveryMetrics) Failed(ev notify.Event, kind string, at time.Time) {
	client := ev.Client
	line := map[string]any{
		"Client": client, "Kind": kind, MetricDeliveryFailures: 1,
		"_aws": emfMeta{Timestamp: at.UnixMilli(), CloudWatchMetrics: []emfDirective{{
			Namespace: Namespace, Dimensions: [][]string{{"Client"}}, Metrics: []emfMetric{{MetricDeliveryFailures, "Count"}},
		}}},
	}
	if d.requestID != "" {
		line["request_id"] = d.requestID
	}
	b, err := json.Marshal(line)
	if err == nil {
		err = d.emf.line(append(b, '\n'))
	}
	if err != nil {
		d.log.Error("could not write the metrics", "client", client, "error", err)
	}
}

func (deliveryMetrics) Delivered(notify.Event, string, time.Time) {}

func (deliveryMetrics) Superseded(notify.Event, string, time.Time) {}

// line writes one ready EMF line in a single Write (see emf.write).
func (e *emf) line(b []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.out.Write(b)
	return err
}
