package lambdafn_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
)

// eventBridgeScheduled is what an EventBridge rule with a schedule expression delivers.
const eventBridgeScheduled = `{
  "version": "0",
  "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
  "detail-type": "Scheduled Event",
  "source": "aws.events",
  "account": "123456789012",
  "time": "2026-11-21T10:00:00Z",
  "region": "ap-south-1",
  "resources": ["arn:aws:events:ap-south-1:123456789012:rule/clear-rotator"],
  "detail": {}
}`

// token32 is a ClientRequestToken of the shortest length Secrets Manager accepts.
const token32 = "0123456789abcdef0123456789abcdef"

func TestParseEventAccepts(t *testing.T) {
	for name, tc := range map[string]struct {
		raw  string
		want lambdafn.Event
	}{
		"eventbridge rule":       {eventBridgeScheduled, lambdafn.Event{Kind: lambdafn.KindScheduled, ID: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"}},
		"scheduler input":        {`{"action":"scheduled"}`, lambdafn.Event{Kind: lambdafn.KindScheduled}},
		"empty object":           {` {} `, lambdafn.Event{Kind: lambdafn.KindScheduled}},
		"empty payload":          {``, lambdafn.Event{Kind: lambdafn.KindScheduled}},
		"rotate":                 {`{"action":"rotate"}`, lambdafn.Event{Kind: lambdafn.KindRotate}},
		"rotate forced":          {`{"action":"rotate","force":true}`, lambdafn.Event{Kind: lambdafn.KindRotate, Force: true}},
		"rotate client unforced": {`{"action":"rotate","client":"erp","force":false}`, lambdafn.Event{Kind: lambdafn.KindRotate, Client: "erp"}},
		"status":                 {`{"action":"status"}`, lambdafn.Event{Kind: lambdafn.KindStatus}},
		"rotate with request id": {`{"action":"rotate","force":true,"request_id":"ops-42"}`, lambdafn.Event{Kind: lambdafn.KindRotate, Force: true, RequestID: "ops-42"}},
		"revoke":                 {`{"action":"revoke","client":"erp"}`, lambdafn.Event{Kind: lambdafn.KindRevoke, Client: "erp"}},
		"revoke with request id": {`{"action":"revoke","client":"erp","request_id":"inc-7"}`, lambdafn.Event{Kind: lambdafn.KindRevoke, Client: "erp", RequestID: "inc-7"}},
		"createSecret": {`{"SecretId":"arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear-token-AbCdEf","ClientRequestToken":"2f0c1c3e-5b8a-4f4e-9a63-0d2f6f1e8b11","Step":"createSecret"}`,
			lambdafn.Event{Kind: lambdafn.KindRotationStep, SecretID: "arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear-token-AbCdEf", Token: "2f0c1c3e-5b8a-4f4e-9a63-0d2f6f1e8b11", Step: lambdafn.StepCreate}},
		"finishSecret with a RotationToken": {`{"SecretId":"tok","ClientRequestToken":"` + token32 + `","Step":"finishSecret","RotationToken":"abc"}`,
			lambdafn.Event{Kind: lambdafn.KindRotationStep, SecretID: "tok", Token: token32, Step: lambdafn.StepFinish}},
		"a 64-character token": {`{"SecretId":"tok","ClientRequestToken":"` + strings.Repeat("a", 64) + `","Step":"testSecret"}`,
			lambdafn.Event{Kind: lambdafn.KindRotationStep, SecretID: "tok", Token: strings.Repeat("a", 64), Step: lambdafn.StepTest}},
		"status of a client":   {`{"action":"status","client":"erp"}`, lambdafn.Event{Kind: lambdafn.KindStatus, Client: "erp"}},
		"rotate an API client": {`{"action":"rotate","force":true,"api_client":2}`, lambdafn.Event{Kind: lambdafn.KindRotate, Force: true, APIClient: 2}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := lambdafn.ParseEvent(json.RawMessage(tc.raw))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if got != tc.want {
				t.Fatalf("ParseEvent = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseEventRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		raw, reason string
	}{
		"null":                 {`null`, "not a JSON object"},
		"array":                {`[]`, "not a JSON object"},
		"string":               {`"rotate"`, "not a JSON object"},
		"garbage":              {`{"action":`, "not valid JSON"},
		"no action":            {`{"client":"erp"}`, `no "action"`},
		"unknown action":       {`{"action":"rotat"}`, `the "action" is not one of scheduled, rotate, revoke, status (did you mean "rotate"?)`},
		"typo in a field":      {`{"action":"rotate","forse":true}`, `unknown field "forse"`},
		"force as a string":    {`{"action":"rotate","force":"yes"}`, `"force" must be a boolean`},
		"client as a number":   {`{"action":"rotate","client":7}`, `"client" must be a string`},
		"empty client":         {`{"action":"rotate","client":""}`, `"client" is empty`},
		"null action":          {`{"action":null}`, `"action" is null`},
		"scheduled with force": {`{"action":"scheduled","force":true}`, `takes no "client", "force", "api_client" or "request_id"`},
		"scheduled with id":    {`{"action":"scheduled","request_id":"x"}`, `takes no "client", "force", "api_client" or "request_id"`},
		"api client unforced":  {`{"action":"rotate","api_client":2}`, `"api_client" needs "force":true`},
		"api client 3":         {`{"action":"rotate","force":true,"api_client":3}`, `"api_client" is 1 or 2`},
		"api client 0":         {`{"action":"rotate","force":true,"api_client":0}`, `"api_client" is 1 or 2`},
		"api client string":    {`{"action":"rotate","force":true,"api_client":"2"}`, `"api_client" must be`},
		"revoke an API client": {`{"action":"revoke","client":"erp","api_client":1}`, `takes no "force" or "api_client"`},
		"status api client":    {`{"action":"status","api_client":1}`, `takes no "force", "api_client" or "request_id"`},
		"status with force":    {`{"action":"status","force":true}`, `takes no "force"`},
		"status with id":       {`{"action":"status","request_id":"x"}`, `takes no "force", "api_client" or "request_id"`},
		"empty request id":     {`{"action":"rotate","force":true,"request_id":""}`, `"request_id" is empty`},
		"request id number":    {`{"action":"rotate","force":true,"request_id":7}`, `"request_id" must be a string`},
		"huge request id":      {`{"action":"rotate","force":true,"request_id":"` + strings.Repeat("x", 129) + `"}`, `longer than 128 bytes`},
		"control in id":        {`{"action":"rotate","force":true,"request_id":"a\u0000b"}`, `control character`},
		"revoke no client":     {`{"action":"revoke"}`, `must name its "client"`},
		"revoke with force":    {`{"action":"revoke","client":"erp","force":true}`, `takes no "force"`},
		"revoke typo":          {`{"action":"revoke","clinet":"erp"}`, `unknown field "clinet"`},
		"step unknown":         {`{"SecretId":"tok","ClientRequestToken":"v1","Step":"rotateSecret"}`, `"Step" is not a Secrets Manager rotation step`},
		"step without token":   {`{"SecretId":"tok","Step":"createSecret"}`, `without "ClientRequestToken"`},
		"step without secret":  {`{"ClientRequestToken":"v1","Step":"createSecret"}`, `without "SecretId"`},
		"step empty":           {`{"SecretId":"tok","ClientRequestToken":"v1","Step":""}`, `without "Step"`},
		"step as a number":     {`{"SecretId":"tok","ClientRequestToken":"v1","Step":1}`, `"Step" must be a string`},
		"step token too long":  {`{"SecretId":"tok","ClientRequestToken":"` + strings.Repeat("v", 65) + `","Step":"setSecret"}`, `not 32 to 64 characters`},
		// Issue 19 item 4: Secrets Manager refuses a version id shorter than 32 characters, so a
		// createSecret that asked Clear first could not store the answer.
		"step token too short": {`{"SecretId":"tok","ClientRequestToken":"` + strings.Repeat("v", 31) + `","Step":"createSecret"}`, `not 32 to 64 characters`},
		"step token control":   {`{"SecretId":"tok","ClientRequestToken":"` + strings.Repeat("v", 31) + `\u0007","Step":"createSecret"}`, `control character`},
		"other eventbridge":    {`{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}`, "not a scheduled event"},
		"s3 event":             {`{"Records":[{"eventSource":"aws:s3"}]}`, `no "action"`},
		// encoding/json matches a struct's fields without regard to case, and the last of two
		// keys wins: a status request with a second "Action" must not become a revoke.
		"action in two spellings": {`{"action":"status","Action":"revoke","client":"erp"}`, `unknown field "Action"`},
		"field in another case":   {`{"action":"rotate","Force":true}`, `unknown field "Force"`},
		"action twice":            {`{"action":"status","action":"revoke","client":"erp"}`, `"action" appears twice`},
		"force twice":             {`{"action":"rotate","force":false,"force":true}`, `"force" appears twice`},
		// An operator's event is a few dozen bytes; a huge one is refused before its values are
		// quoted in an answer or a log line.
		"huge client": {`{"action":"rotate","client":"` + strings.Repeat("c", 1<<20) + `"}`, `bytes long`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := lambdafn.ParseEvent(json.RawMessage(tc.raw))
			var ee *lambdafn.EventError
			if !errors.As(err, &ee) {
				t.Fatalf("ParseEvent error = %v, want an *EventError", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if !strings.Contains(err.Error(), lambdafn.AcceptedEvents) {
				t.Errorf("error %q does not name the accepted events", err)
			}
		})
	}
}
