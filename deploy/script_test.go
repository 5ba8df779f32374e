package deploy_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAWS is an `aws` command that answers `aws lambda invoke` as the AWS CLI does: the function's
// answer in the output file (the last argument), and the --query result on stdout. It records its
// arguments, so the test can check what the script asked for.
const fakeAWS = `#!/usr/bin/env bash
if [[ $1 == --version ]]; then echo "$FAKE_VERSION"; exit 0; fi
printf '%s\n' "$@" > "$FAKE_ARGS"
printf '%s' "$FAKE_ANSWER" > "${@: -1}"
printf '%s\t%s\n' "$FAKE_FUNCTION_ERROR" "$FAKE_LOG"
`

func TestLambdaInvokeScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("the script needs bash")
	}
	script, err := filepath.Abs("../scripts/lambda-invoke")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "aws"), []byte(fakeAWS), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, version, functionError, log string, args ...string) (stdout, stderr string, code int, awsArgs []string) {
		t.Helper()
		cmd := exec.Command(script, args...)
		argsFile := filepath.Join(t.TempDir(), "args")
		cmd.Env = append(os.Environ(),
			"PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"),
			"FAKE_VERSION="+version,
			"FAKE_ARGS="+argsFile,
			`FAKE_ANSWER={"clients":[{"name":"default","outcome":"failed"}]}`,
			"FAKE_FUNCTION_ERROR="+functionError,
			"FAKE_LOG="+log,
		)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatal(err)
		}
		recorded, _ := os.ReadFile(argsFile)
		return out.String(), errOut.String(), code, strings.Split(strings.TrimSpace(string(recorded)), "\n")
	}

	t.Run("success exits 0 and prints the answer", func(t *testing.T) {
		stdout, _, code, awsArgs := run(t, "aws-cli/2.15.0 Python/3.11", "None", "None", "fn")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		if !strings.Contains(stdout, `"outcome":"failed"`) {
			t.Errorf("stdout %q lacks the function's answer", stdout)
		}
		joined := strings.Join(awsArgs, " ")
		for _, want := range []string{"lambda invoke", "--function-name fn", `--payload {"action":"status"}`, "--cli-binary-format raw-in-base64-out"} {
			if !strings.Contains(joined, want) {
				t.Errorf("aws was called with %q, which lacks %q", joined, want)
			}
		}
	})

	t.Run("FunctionError exits 1 and shows the log", func(t *testing.T) {
		// "level=ERROR rotation failed" in base64, as LogResult carries it.
		_, stderr, code, awsArgs := run(t, "aws-cli/1.33.0 Python/3.11", "Unhandled", "bGV2ZWw9RVJST1Igcm90YXRpb24gZmFpbGVk", "fn", `{"action":"rotate","force":true}`)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if !strings.Contains(stderr, "FunctionError: Unhandled") || !strings.Contains(stderr, "level=ERROR rotation failed") {
			t.Errorf("stderr %q lacks the FunctionError or the log", stderr)
		}
		joined := strings.Join(awsArgs, " ")
		if strings.Contains(joined, "--cli-binary-format") {
			t.Errorf("AWS CLI v1 does not know --cli-binary-format, but got %q", joined)
		}
		if !strings.Contains(joined, `--payload {"action":"rotate","force":true}`) {
			t.Errorf("aws was called with %q, without the given payload", joined)
		}
	})

	// The AWS CLI gives up on an answer after 60 s by default and then sends the invocation again:
	// a forced rotation or a revoke without a request_id is a new event each time, so a run longer
	// than a minute (a slow Clear, a webhook being retried) would ask Clear twice.
	t.Run("waits for the function's whole timeout", func(t *testing.T) {
		_, _, _, awsArgs := run(t, "aws-cli/2.15.0 Python/3.11", "None", "None", "fn")
		if got, limit := readTimeout(t, strings.Join(awsArgs, " ")), functionTimeout(t); got <= limit {
			t.Errorf("--cli-read-timeout %d, want more than the function's Timeout (%d s)", got, limit)
		}
	})

	t.Run("usage", func(t *testing.T) {
		if _, _, code, _ := run(t, "aws-cli/2", "None", "None"); code != 2 {
			t.Errorf("exit %d without arguments, want 2", code)
		}
	})
}
