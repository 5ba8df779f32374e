package lambdafn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

// Kind is what an event asks for.
type Kind string

const (
	// KindScheduled rotates every configured client that is due.
	KindScheduled Kind = "scheduled"
	// KindRotate rotates one client, or all of them, now if due or always with force.
	KindRotate Kind = "rotate"
	// KindRevoke asks every API client of one client for a new token, revoking every token stored.
	KindRevoke Kind = "revoke"
	// KindStatus reports every client's token, budget and errors, like `rotator status --json`.
	KindStatus Kind = "status"
	// KindRotationStep is one step of Secrets Manager's own rotation of a token secret.
	KindRotationStep Kind = "rotation-step"
)

// Step is a step of Secrets Manager's rotation, in the order Secrets Manager invokes them.
type Step string

const (
	StepCreate Step = "createSecret"
	StepSet    Step = "setSecret"
	StepTest   Step = "testSecret"
	StepFinish Step = "finishSecret"
)

// Steps lists the steps in the order Secrets Manager invokes them.
var Steps = []Step{StepCreate, StepSet, StepTest, StepFinish}

// Event is a decoded invocation.
type Event struct {
	Kind Kind
	// Client limits a rotate or status event to one client; empty means every client. A revoke
	// event always names one.
	Client string
	// Force rotates even a token that is not due (rotate only).
	Force bool
	// APIClient, with Force, names the API client to ask (1 or 2), as `rotator rotate --force
	// --api-client N` does; 0 lets the decision choose.
	APIClient int
	// RequestID is the "request_id" of a rotate or revoke event: the identity by which a duplicated
	// delivery is recognised. Empty when the event carries none.
	RequestID string
	// ID is the id of an EventBridge scheduled event, for the logs. Scheduled checks are not
	// forced, so they need no identity to be answered once: the claim already makes a due rotation
	// cost one request however many deliveries arrive.
	ID string
	// SecretID, Token and Step are the fields of a Secrets Manager rotation event: the token
	// secret's ARN (or name), the version id the rotation creates, and the step.
	SecretID string
	Token    string
	Step     Step
}

// maxRequestID bounds a request_id: it is remembered in the rotation state, which every reader of
// the token secret sees and which must stay small.
const maxRequestID = 128

// AcceptedEvents describes the events the function accepts; errors about an event quote it so that
// an operator who typed the payload by hand sees at once what to send instead.
const AcceptedEvents = `an EventBridge scheduled event ("detail-type": "Scheduled Event", "source": "aws.events"), ` +
	`{"action":"scheduled"} or {} (rotate every client that is due), ` +
	`{"action":"rotate","client":"NAME","force":true,"api_client":N,"request_id":"ID"} (client, force, api_client (1 or 2, with force) and request_id optional), ` +
	`{"action":"revoke","client":"NAME","request_id":"ID"} (request_id optional), ` +
	`{"action":"status","client":"NAME"} (client optional), ` +
	`or a Secrets Manager rotation event {"SecretId":"ARN","ClientRequestToken":"VERSION","Step":"createSecret|setSecret|testSecret|finishSecret"}`

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
	Action    *string `json:"action"`
	Client    *string `json:"client"`
	Force     *bool   `json:"force"`
	APIClient *int    `json:"api_client"`
	RequestID *string `json:"request_id"`
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
	for _, k := range []string{"Step", "SecretId", "ClientRequestToken"} {
		if _, ok := fields[k]; ok {
			return parseRotationStep(raw)
		}
	}
	if _, ok := fields["action"]; !ok {
		return Event{}, &EventError{Reason: `the object has no "action" and is neither an EventBridge scheduled event nor a Secrets Manager rotation event`}
	}
	return parseAction(raw)
}

// maxActionEvent bounds an operator's event, which is a few dozen bytes: a huge one is refused
// before any of its values can be quoted in an answer or a log line.
const maxActionEvent = 4096

// actionFields are the keys of an operator's event, spelled exactly so.
var actionFields = []string{"action", "client", "force", "api_client", "request_id"}

// parseAction decodes an operator's or EventBridge Scheduler's {"action": ...} event.
func parseAction(raw json.RawMessage) (Event, error) {
	if len(raw) > maxActionEvent {
		return Event{}, &EventError{Reason: fmt.Sprintf("the payload is %d bytes long; an event with an \"action\" is at most %d", len(raw), maxActionEvent)}
	}
	if reason := checkKeys(raw); reason != "" {
		return Event{}, &EventError{Reason: reason}
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
	if ev.APIClient != nil {
		if *ev.APIClient != 1 && *ev.APIClient != 2 {
			return Event{}, &EventError{Reason: `"api_client" is 1 or 2`}
		}
		out.APIClient = *ev.APIClient
	}
	if ev.RequestID != nil {
		if reason := checkRequestID(*ev.RequestID); reason != "" {
			return Event{}, &EventError{Reason: reason}
		}
		out.RequestID = *ev.RequestID
	}
	if reason := fieldsOfAction(out.Kind, ev); reason != "" {
		return Event{}, &EventError{Reason: reason}
	}
	return out, nil
}

// checkKeys returns why the keys of the JSON object raw are not an operator's event's, or "" when
// they are. encoding/json matches a key to a field without regard to case, and lets the last of
// two equal keys win; so {"action":"status","Action":"revoke"} would decode as a revoke, and
// DisallowUnknownFields sees nothing wrong. Each key must be one of actionFields exactly, once.
func checkKeys(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the object's '{'; raw is a valid object
		return "the payload is not a JSON object"
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "the payload is not a JSON object"
		}
		key, _ := tok.(string)
		switch {
		case !slices.Contains(actionFields, key):
			return unknownField(key)
		case seen[key]:
			return fmt.Sprintf("%q appears twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "the payload is not a JSON object"
		}
	}
	return ""
}

// unknownField says that key is no field of an action event. A near miss of a field is quoted with
// the field it was meant to be; any other key is not (see EventError): it may be a value pasted in
// a key's place.
func unknownField(key string) string {
	if s := suggest.Closest(key, actionFields); s != "" {
		return fmt.Sprintf("unknown field %q (did you mean %q?)", key, s)
	}
	return fmt.Sprintf("an unknown field (%d characters, not shown); the fields are %s", len([]rune(key)), strings.Join(actionFields, ", "))
}

// fieldsOfAction returns why ev's fields do not suit action, or "" when they do.
func fieldsOfAction(action Kind, ev actionEvent) string {
	switch action {
	case KindScheduled:
		if ev.Client != nil || ev.Force != nil || ev.APIClient != nil || ev.RequestID != nil {
			return `a "scheduled" event takes no "client", "force", "api_client" or "request_id"; use "action":"rotate" for those`
		}
	case KindRotate:
		if ev.APIClient != nil && (ev.Force == nil || !*ev.Force) {
			return `"api_client" needs "force":true: it names the API client a forced rotation asks`
		}
	case KindRevoke:
		if ev.Force != nil || ev.APIClient != nil {
			return `a "revoke" event takes no "force" or "api_client": it always asks every API client`
		}
		if ev.Client == nil {
			return `a "revoke" event must name its "client": it cuts off every ERP system holding that client's tokens`
		}
	case KindStatus:
		if ev.Force != nil || ev.APIClient != nil || ev.RequestID != nil {
			return `a "status" event takes no "force", "api_client" or "request_id"`
		}
	default:
		// The value is not quoted (see EventError); a near miss names the action it was meant to be.
		reason := `the "action" is not one of ` + strings.Join(actions, ", ")
		if s := suggest.Closest(*ev.Action, actions); s != "" {
			reason += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return reason
	}
	return ""
}

// actions are the values of "action".
var actions = []string{string(KindScheduled), string(KindRotate), string(KindRevoke), string(KindStatus)}

// checkRequestID returns why id cannot identify an event, or "" when it can.
func checkRequestID(id string) string {
	if id == "" {
		return `"request_id" is empty; leave it out to use the Lambda request id`
	}
	if len(id) > maxRequestID {
		return fmt.Sprintf(`"request_id" is longer than %d bytes`, maxRequestID)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return `"request_id" holds a control character or invalid UTF-8`
		}
	}
	return ""
}

// parseEventBridge accepts the event an EventBridge rule with a schedule expression sends, and
// nothing else that EventBridge might route here by mistake.
func parseEventBridge(raw json.RawMessage) (Event, error) {
	var ev struct {
		ID         string `json:"id"`
		DetailType string `json:"detail-type"`
		Source     string `json:"source"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Event{}, &EventError{Reason: "an EventBridge event whose id, source or detail-type is not a string"}
	}
	if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" {
		return Event{}, &EventError{Reason: `an EventBridge event that is not a scheduled event (detail-type "Scheduled Event" from source "aws.events")`}
	}
	return Event{Kind: KindScheduled, ID: truncate(ev.ID, maxRequestID)}, nil
}

// parseRotationStep accepts the event Secrets Manager sends to a secret's rotation function. Unlike
// the operator's events it tolerates fields it does not know: Secrets Manager writes it, not a
// person who could mistype, and AWS has added fields to it before (RotationToken).
func parseRotationStep(raw json.RawMessage) (Event, error) {
	var ev struct {
		SecretID *string `json:"SecretId"`
		Token    *string `json:"ClientRequestToken"`
		Step     *string `json:"Step"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Event{}, &EventError{Reason: "a Secrets Manager rotation event whose " + describeDecodeError(err)}
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"SecretId", ev.SecretID}, {"ClientRequestToken", ev.Token}, {"Step", ev.Step}} {
		if f.v == nil || *f.v == "" {
			return Event{}, &EventError{Reason: fmt.Sprintf("a Secrets Manager rotation event without %q", f.name)}
		}
	}
	step := Step(*ev.Step)
	if !slices.Contains(Steps, step) {
		return Event{}, &EventError{Reason: `a Secrets Manager rotation event whose "Step" is not a Secrets Manager rotation step (createSecret, setSecret, testSecret or finishSecret)`}
	}
	if reason := checkVersionID(*ev.Token); reason != "" {
		return Event{}, &EventError{Reason: "a Secrets Manager rotation event whose ClientRequestToken " + reason}
	}
	if len(*ev.SecretID) > 2048 {
		return Event{}, &EventError{Reason: "a Secrets Manager rotation event whose SecretId is too long"}
	}
	return Event{Kind: KindRotationStep, SecretID: *ev.SecretID, Token: *ev.Token, Step: step}, nil
}

// checkVersionID returns why token cannot be the id of a secret version, or "" when it can. Secrets
// Manager accepts a ClientRequestToken of 32 to 64 characters; createSecret stores Clear's answer
// under it, and an id Secrets Manager refuses would lose that answer after Clear has revoked the
// previous token. So such an event is refused before anything is claimed or asked. Control
// characters and invalid UTF-8 are refused too: the id is logged and named in answers.
func checkVersionID(token string) string {
	if !utf8.ValidString(token) {
		return "is not valid UTF-8"
	}
	for _, r := range token {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "holds a control character"
		}
	}
	if n := utf8.RuneCountInString(token); n < 32 || n > 64 {
		return fmt.Sprintf("is %d characters long, not 32 to 64 characters as Secrets Manager requires of a version id", n)
	}
	return ""
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
