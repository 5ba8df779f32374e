package deploy_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/clear-rotator/clear-rotator/internal/lambdafn"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// samTemplate parses ../template.yaml. yaml.v3 drops CloudFormation's short-form tags (!Ref X reads
// as "X", !If [...] as its list), which is enough for the properties these tests read.
func samTemplate(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	return doc
}

// EventBridge Scheduler invokes a Lambda function asynchronously, and Lambda retries a failed
// asynchronous invocation twice by default, whatever the schedule's own RetryPolicy says (that one
// covers only delivering the event to Lambda). docs/lambda.md promises that a failed run is not
// retried: the next scheduled run is the retry, and a retry a minute or two later could only cost
// budget or be refused, and would make one failure count in two periods of the Errors alarm ("2 of
// 3 periods"). So both retry settings must be 0.
func TestTemplateNeverRetriesAFailedRun(t *testing.T) {
	fn := get(t, samTemplate(t), "Resources", "RotatorFunction", "Properties")
	if got := get(t, fn, "Events", "Schedule", "Properties", "RetryPolicy", "MaximumRetryAttempts"); got != 0 {
		t.Errorf("the schedule's RetryPolicy.MaximumRetryAttempts = %v, want 0", got)
	}
	m, ok := fn.(map[string]any)["EventInvokeConfig"].(map[string]any)
	if !ok {
		t.Fatal("RotatorFunction has no EventInvokeConfig: Lambda retries a failed scheduled run twice (its default for asynchronous invocations)")
	}
	if got := m["MaximumRetryAttempts"]; got != 0 {
		t.Errorf("EventInvokeConfig.MaximumRetryAttempts = %v, want 0", got)
	}
}

// functionTimeout is the function's Timeout in template.yaml, in seconds.
func functionTimeout(t *testing.T) int {
	t.Helper()
	n, ok := get(t, samTemplate(t), "Resources", "RotatorFunction", "Properties", "Timeout").(int)
	if !ok || n <= 0 {
		t.Fatal("RotatorFunction has no Timeout in seconds")
	}
	return n
}

var readTimeoutFlag = regexp.MustCompile(`--cli-read-timeout[ =]([0-9]+)`)

// readTimeout returns the --cli-read-timeout of an AWS CLI command line; 0 (the CLI's default of
// 60 s) when it has none.
func readTimeout(t *testing.T, command string) int {
	t.Helper()
	m := readTimeoutFlag.FindStringSubmatch(command)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The stack's outputs are commands an operator pastes. The AWS CLI waits 60 s for an answer by
// default and then invokes the function again, with a new request id: a forced rotation or a revoke
// that runs longer than a minute (a slow Clear, a webhook being retried) would ask Clear twice. So
// every `aws lambda invoke` output waits longer than the function's Timeout.
func TestTemplateInvokeCommandsOutwaitTheFunction(t *testing.T) {
	limit := functionTimeout(t)
	outputs := get(t, samTemplate(t), "Outputs").(map[string]any)
	for _, name := range []string{"ManualRotationCommand", "RevokeCommand", "StatusCommand"} {
		command, _ := get(t, outputs, name, "Value").(string)
		if got := readTimeout(t, command); got <= limit {
			t.Errorf("output %s: --cli-read-timeout %d, want more than the function's Timeout (%d s): %s", name, got, limit, command)
		}
	}
}

// The function reports these metrics on every run, for every client (TokenSecondsRemaining only
// for a token that expires). A period without a run is then no news, not good news: an alarm on
// one of them that treated it as notBreaching would return to OK between runs whenever the
// schedule is slower than the alarm's period, or a run lands a few seconds late, and page
// ALARM/OK/ALARM while the token runs out. Each must keep its state (ignore); a schedule that
// stopped is NotRunningAlarm's job.
func TestTemplatePerRunMetricAlarmsKeepTheirStateBetweenRuns(t *testing.T) {
	perRun := map[string]bool{"TokenSecondsRemaining": true, "RequestsToday": true, "DailyLimit": true, "Degraded": true, "TokenLost": true}
	resources, _ := get(t, samTemplate(t), "Resources").(map[string]any)
	checked := map[string]bool{}
	for name, r := range resources {
		r, _ := r.(map[string]any)
		if r["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		props, _ := r["Properties"].(map[string]any)
		metrics := []any{props["MetricName"]}
		if list, ok := props["Metrics"].([]any); ok {
			for _, m := range list {
				m, _ := m.(map[string]any)
				stat, _ := m["MetricStat"].(map[string]any)
				metric, _ := stat["Metric"].(map[string]any)
				metrics = append(metrics, metric["MetricName"])
			}
		}
		for _, m := range metrics {
			m, _ := m.(string)
			if !perRun[m] {
				continue
			}
			checked[m] = true
			if got := props["TreatMissingData"]; got != "ignore" {
				t.Errorf("%s watches %s, reported on every run, with TreatMissingData %v; want ignore", name, m, got)
			}
		}
	}
	for m := range perRun {
		if !checked[m] {
			t.Errorf("no alarm watches %s", m)
		}
	}
}

// Every alarm on the function's own metrics names them as the function emits them (internal/
// lambdafn): its namespace, a metric name it writes, and its one dimension, Client. A renamed
// metric or dimension on either side would leave the alarm watching a series that never comes,
// silently: CloudWatch raises no error for it.
func TestTemplateAlarmsWatchWhatTheFunctionEmits(t *testing.T) {
	emitted := map[string]bool{lambdafn.MetricTokenSecondsRemaining: true, lambdafn.MetricRequestsToday: true,
		lambdafn.MetricDailyLimit: true, lambdafn.MetricDegraded: true, lambdafn.MetricTokenLost: true,
		lambdafn.MetricDeliveryFailures: true}
	for _, o := range rotation.Outcomes {
		emitted[lambdafn.OutcomeMetric(o)] = true
	}
	resources, _ := get(t, samTemplate(t), "Resources").(map[string]any)
	watched := 0
	for name, r := range resources {
		r, _ := r.(map[string]any)
		if r["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		props, _ := r["Properties"].(map[string]any)
		specs := []map[string]any{props}
		if list, ok := props["Metrics"].([]any); ok {
			for _, m := range list {
				m, _ := m.(map[string]any)
				stat, _ := m["MetricStat"].(map[string]any)
				if metric, ok := stat["Metric"].(map[string]any); ok {
					specs = append(specs, metric)
				}
			}
		}
		for _, s := range specs {
			ns, _ := s["Namespace"].(string)
			if ns == "" || ns == "AWS/Lambda" {
				continue
			}
			watched++
			if ns != lambdafn.Namespace || !emitted[fmt.Sprint(s["MetricName"])] {
				t.Errorf("%s watches %s/%v, which the function does not emit", name, ns, s["MetricName"])
			}
			dims, _ := s["Dimensions"].([]any)
			if len(dims) != 1 || fmt.Sprint(dims[0].(map[string]any)["Name"]) != "Client" {
				t.Errorf("%s watches %v by dimensions %v; the function's one dimension is Client", name, s["MetricName"], dims)
			}
		}
	}
	if watched == 0 {
		t.Fatal("no alarm on the function's own metrics was found: the test reads nothing")
	}
}
