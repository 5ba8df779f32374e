package lambdafn

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// MetricDeliveryFailures counts deliveries of a stored token (webhook) that failed after every
// retry of the invocation, by client and kind; the template's DeliveryFailed alarm watches it.
const MetricDeliveryFailures = "DeliveryFailures"

// tell delivers the last token rs stored for c, retried within the invocation (notify.Run). A
// delivery that finally failed is logged at error level by the notifier and counted in
// MetricDeliveryFailures; the invocation still succeeds, since the token in Secrets Manager is
// good and a retried invocation would not tell the ERP more.
func (h *Handler) tell(ctx context.Context, c *rotation.Client, rs []rotation.Result, revoking bool, requestID string, log *slog.Logger) {
	var last *rotation.Result
	for i := range rs {
		if rs[i].Stored != nil {
			last = &rs[i]
		}
	}
	if last == nil {
		return
	}
	n := h.app.Notifier(notify.Run, log, h.app.Recorder(deliveryMetrics{h.emf, requestID, log}, log))
	if !n.Enabled(c.Name) {
		return
	}
	if ev, ok := h.app.Event(ctx, c, *last, "", revoking); ok {
		_ = n.Deliver(ctx, ev)
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

// line writes one ready EMF line in a single Write (see emf.write).
func (e *emf) line(b []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.out.Write(b)
	return err
}
