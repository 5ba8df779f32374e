package lambdafn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is what an event asks for.
type Kind string

const (
	// KindScheduled rotates every configured client that is due.
	KindScheduled Kind = "scheduled"
	// KindRotate rotates one client, or all of them, now if due or always with force.
	KindRotate Kind = "rotate"
	// KindStatus reports every client's token, budget and errors, like `rotator status --json`.
	KindStatus Kind = "status"
)

// Event is a decoded invocation.
type Event struct {
	Kind Kind
	// Client limits a rotate or status event to one client; empty means every client.
	Client string
	// Force rotates even a token that is not due (rotate only).
	Force bool
}

// AcceptedEvents describes the events the function accepts; errors about an event quote it so that
// an operator who typed the payload by hand sees at once what to send instead.
const AcceptedEvents = `an EventBridge scheduled event ("detail-type": "Scheduled Event", "source": "aws.events"), ` +
	`{"action":"scheduled"} or {} (rotate every client that is due), ` +
	`{"action":"rotate","client":"NAME","force":true} (client and force optional), ` +
	`or {"action":"status","client":"NAME"} (client optional)`

// EventError is an invocation whose payload is none of the accepted events. Its message never
// quotes the payload's values, which could be anything a caller pasted, secrets included.
type EventError struct {
	Reason string
}

func (e *EventError) Error() string {
	return "unrecognised event: " + e.Reason + "; the function accepts " + AcceptedEvents
}

// actionEvent is the shape of the events an operator or EventBridge Scheduler sends. Pointers tell
// an absent field from a zero one, so that a field that makes no sense for an action is refused
// rather than silently ignored.
type actionEvent struct {
	Action *string `json:"action"`
	Client *string `json:"client"`
	Force  *bool   `json:"force"`
}

// ParseEvent decodes a raw invocation payload. It is strict: an unknown field, or a field that the
// action does not take, is an error, because a typo such as "forse" would otherwise turn a forced
// rotation into an ordinary one without a word.
func ParseEvent(raw json.RawMessage) (Event, error) {
	raw = bytes.TrimSpace(raw)
	// An empty payload is what `aws lambda invoke` sends without --payload; like {} it means the
	// default action.
	if len(raw) == 0 {
		return Event{Kind: KindScheduled}, nil
	}
	if !json.Valid(raw) {
		return Event{}, &EventError{Reason: "the payload is not valid JSON"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Event{}, &EventError{Reason: "the payload is not a JSON object"}
	}
	if len(fields) == 0 {
		return Event{Kind: KindScheduled}, nil
	}
	if _, ok := fields["detail-type"]; ok {
		return parseEventBridge(raw)
	}
	if _, ok := fields["action"]; !ok {
		return Event{}, &EventError{Reason: `the object has no "action" and is not an EventBridge scheduled event`}
	}

	var ev actionEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, &EventError{Reason: describeDecodeError(err)}
	}
	if ev.Action == nil {
		return Event{}, &EventError{Reason: `"action" is null`}
	}
	out := Event{Kind: Kind(*ev.Action)}
	if ev.Client != nil {
		if *ev.Client == "" {
			return Event{}, &EventError{Reason: `"client" is empty; leave it out to mean every client`}
		}
		out.Client = *ev.Client
	}
	if ev.Force != nil {
		out.Force = *ev.Force
	}
	switch out.Kind {
	case KindScheduled:
		if ev.Client != nil || ev.Force != nil {
			return Event{}, &EventError{Reason: `a "scheduled" event takes no "client" or "force"; use "action":"rotate" for those`}
		}
	case KindRotate:
	case KindStatus:
		if ev.Force != nil {
			return Event{}, &EventError{Reason: `a "status" event takes no "force"`}
		}
	default:
		return Event{}, &EventError{Reason: fmt.Sprintf("%q is not an action", truncate(*ev.Action, 40))}
	}
	return out, nil
}

// parseEventBridge accepts the event an EventBridge rule with a schedule expression sends, and
// nothing else that EventBridge might route here by mistake.
func parseEventBridge(raw json.RawMessage) (Event, error) {
	var ev struct {
		DetailType string `json:"detail-type"`
		Source     string `json:"source"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Event{}, &EventError{Reason: "an EventBridge event whose source or detail-type is not a string"}
	}
	if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" {
		return Event{}, &EventError{Reason: fmt.Sprintf("an EventBridge event with detail-type %q from source %q, not a scheduled event",
			truncate(ev.DetailType, 60), truncate(ev.Source, 60))}
	}
	return Event{Kind: KindScheduled}, nil
}

// describeDecodeError turns encoding/json's error into a reason. Its messages name fields and Go
// types, never the offending value, so they are safe to return.
func describeDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%q must be a %s, not a JSON %s", te.Field, jsonType(te.Type.Kind().String()), te.Value)
	}
	return err.Error()
}

func jsonType(goKind string) string {
	switch goKind {
	case "bool":
		return "boolean"
	case "string":
		return "string"
	}
	return goKind
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
