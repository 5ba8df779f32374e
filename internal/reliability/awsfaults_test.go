package reliability

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// step names a Secrets Manager call of a rotation, as the wire shows it: the X-Amz-Target header
// gives the operation, and the body's VersionStage, VersionStages and SecretString tell the calls
// of one operation apart.
type step string

const (
	stepReadCurrent step = "read-current" // GetSecretValue AWSCURRENT, before the claim
	stepReadState   step = "read-state"   // GetSecretValue ROTATOR_STATE
	stepClaim       step = "claim"        // PutSecretValue ROTATOR_STATE with a claim
	stepReread      step = "reread"       // GetSecretValue AWSCURRENT, after the claim
	stepToken       step = "token"        // PutSecretValue of a token document (default stages)
	stepResult      step = "result"       // PutSecretValue ROTATOR_STATE without a claim (a failure)
	stepOther       step = "other"        // creation, the client secret, the placeholder
)

// fault is what a faulted call gets.
type fault string

const (
	faultThrottle fault = "throttle" // 400 ThrottlingException (the SDK retries it)
	faultServer   fault = "5xx"      // 500 InternalServiceError (the SDK retries it)
	faultHold     fault = "timeout"  // no answer until the client gives up
	faultDenied   fault = "denied"   // 400 AccessDeniedException (not retried)
	faultLost     fault = "lost"     // the call reaches moto and is applied; its answer is a 500
	faultStall    fault = "stall"    // held until the test releases it, then passed on to moto
)

// awsFaults is an http.RoundTripper for the Secrets Manager SDK client that fails every call of
// the armed steps with their faults, until disarmed, and records which claim versions moto
// applied.
type awsFaults struct {
	base http.RoundTripper

	mu       sync.Mutex
	claimed  bool // a claim was sent in the current rotation, so AWSCURRENT reads are re-reads
	rules    map[step]*rule
	hits     int
	applied  map[string]bool // claim version ids moto applied
	heldHook func(step)      // called when a request is held
}

// rule is an armed fault; release ends its holds.
type rule struct {
	fault   fault
	release chan struct{}
}

func newAWSFaults() *awsFaults {
	return &awsFaults{base: http.DefaultTransport, applied: map[string]bool{}, rules: map[step]*rule{}}
}

// begin marks the start of a rotation, so that the next AWSCURRENT read is a first read.
func (f *awsFaults) begin() {
	f.mu.Lock()
	f.claimed = false
	f.mu.Unlock()
}

// arm fails every call of step s with k until disarmed.
func (f *awsFaults) arm(s step, k fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[s] = &rule{fault: k, release: make(chan struct{})}
}

// releaseStep disarms step s, letting its held calls go on (stall) or fail (hold).
func (f *awsFaults) releaseStep(s step) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.rules[s]; r != nil {
		close(r.release)
		delete(f.rules, s)
	}
}

// disarm stops every fault, releases held requests, and returns how many calls were faulted
// since the last disarm.
func (f *awsFaults) disarm() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s, r := range f.rules {
		close(r.release)
		delete(f.rules, s)
	}
	n := f.hits
	f.hits = 0
	return n
}

func (f *awsFaults) appliedClaims() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

// wireCall is what the step classification reads from a request.
type wireCall struct {
	VersionStage  string
	VersionStages []string
	SecretString  string
}

// afterClaim tells the re-read of AWSCURRENT that follows a claim from the first read: both are the
// same call on the wire. claimed records whether a claim was seen; the caller holds its lock.
func afterClaim(s step, claimed *bool) step {
	if s == stepClaim {
		*claimed = true
	} else if s == stepReadCurrent && *claimed {
		return stepReread
	}
	return s
}

func classify(target string, c wireCall) step {
	switch target {
	case "secretsmanager.GetSecretValue":
		switch c.VersionStage {
		case rotation.CurrentStage:
			return stepReadCurrent // the caller turns it into stepReread after a claim
		case document.StateStage:
			return stepReadState
		}
	case "secretsmanager.PutSecretValue":
		if slices.Contains(c.VersionStages, document.StateStage) {
			if st, err := document.ParseState([]byte(c.SecretString)); err == nil && st.Claim != nil {
				return stepClaim
			}
			return stepResult
		}
		if _, err := document.ParseToken([]byte(c.SecretString)); err == nil && len(c.VersionStages) == 0 {
			return stepToken
		}
	}
	return stepOther
}

func (f *awsFaults) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	var c wireCall
	_ = json.Unmarshal(body, &c)
	s := classify(req.Header.Get("X-Amz-Target"), c)

	f.mu.Lock()
	s = afterClaim(s, &f.claimed)
	ru := f.rules[s]
	hit := ru != nil
	var k fault
	var release chan struct{}
	if hit {
		f.hits++
		k, release = ru.fault, ru.release
	}
	hook := f.heldHook
	f.mu.Unlock()

	if !hit {
		resp, err := f.base.RoundTrip(req)
		if err == nil && s == stepClaim {
			resp = f.noteClaim(resp)
		}
		return resp, err
	}
	switch k {
	case faultThrottle:
		return awsError(req, 400, "ThrottlingException", "Rate exceeded"), nil
	case faultServer:
		return awsError(req, 500, "InternalServiceError", "injected: internal failure"), nil
	case faultDenied:
		return awsError(req, 400, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/rotator is not authorized to perform this action"), nil
	case faultLost:
		resp, err := f.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		if s == stepClaim {
			resp = f.noteClaim(resp)
		}
		resp.Body.Close()
		return awsError(req, 500, "InternalServiceError", "injected: the answer was lost after the write"), nil
	default: // faultHold, faultStall
		if hook != nil {
			hook(s)
		}
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-release:
		}
		if k == faultHold {
			return nil, errors.New("injected: connection reset after a hold")
		}
		resp, err := f.base.RoundTrip(req)
		if err == nil && s == stepClaim {
			resp = f.noteClaim(resp)
		}
		return resp, err
	}
}

// noteClaim records the version id of a claim moto applied, keeping the answer readable.
func (f *awsFaults) noteClaim(resp *http.Response) *http.Response {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil || resp.StatusCode != 200 {
		return resp
	}
	var out struct{ VersionId string }
	if json.Unmarshal(b, &out) == nil && out.VersionId != "" {
		f.mu.Lock()
		f.applied[out.VersionId] = true
		f.mu.Unlock()
	}
	return resp
}

// awsError is an AWS JSON 1.1 error answer, shaped as Secrets Manager sends one.
func awsError(req *http.Request, status int, code, msg string) *http.Response {
	body := `{"__type":"` + code + `","message":"` + msg + `"}`
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-ErrorType", code)
	h.Set("X-Amzn-RequestId", "00000000-0000-4000-8000-000000000000")
	return &http.Response{
		Status: http.StatusText(status), StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}
