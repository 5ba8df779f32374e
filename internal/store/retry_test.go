package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }

// withStatus is an API error as the SDK delivers an unknown one: inside a ResponseError that
// carries the HTTP status.
func withStatus(code string, status int) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      apiErr(code),
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"throttling", apiErr("ThrottlingException"), true},
		{"throttling (query protocol)", apiErr("Throttling"), true},
		{"too many requests", apiErr("TooManyRequestsException"), true},
		{"request limit", apiErr("RequestLimitExceeded"), true},
		{"internal service error", &types.InternalServiceError{Message: aws.String("x")}, true},
		{"internal failure", apiErr("InternalFailure"), true},
		{"service unavailable", apiErr("ServiceUnavailable"), true},
		{"unknown 503", withStatus("SomethingNew", 503), true},
		{"unknown 429", withStatus("SomethingNew", 429), true},
		{"unknown 400", withStatus("SomethingNew", 400), false},
		{"request timeout code", apiErr("RequestTimeout"), true},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled", context.Canceled, false},
		{"transport", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, true},
		{"net error", &net.OpError{Op: "read", Err: errors.New("connection reset")}, true},
		{"eof", io.ErrUnexpectedEOF, true},
		{"access denied", apiErr("AccessDeniedException"), false},
		{"not found", &types.ResourceNotFoundException{Message: aws.String("x")}, false},
		{"validation", apiErr("ValidationException"), false},
		{"invalid parameter", &types.InvalidParameterException{}, false},
		{"invalid request", &types.InvalidRequestException{}, false},
		{"limit exceeded", &types.LimitExceededException{}, false},
		{"decryption", &types.DecryptionFailure{}, false},
		{"encryption", &types.EncryptionFailure{}, false},
		{"kms disabled", apiErr("KMSDisabledException"), false},
		{"kms access denied", apiErr("KMSAccessDeniedException"), false},
		{"kms invalid state", apiErr("KMSInvalidStateException"), false},
		{"kms throttling is throttling", apiErr("KMSThrottlingException"), true},
		{"exists (a conflict)", &types.ResourceExistsException{}, false},
		{"binary", store.ErrBinary, false},
		{"not found sentinel", store.ErrNotFound, false},
		{"conflict sentinel", store.ErrConflict, false},
		{"wrapped throttling", fmt.Errorf("op: %w", &retry.MaxAttemptsError{Attempt: 3, Err: apiErr("ThrottlingException")}), true},
		{"wrapped denial", fmt.Errorf("op: %w", &retry.MaxAttemptsError{Attempt: 1, Err: apiErr("AccessDeniedException")}), false},
		{"store error", &store.Error{Op: "GetSecretValue", Code: "ThrottlingException", Err: apiErr("ThrottlingException")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.Retryable(tt.err); got != tt.want {
				t.Fatalf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestRetryableOnRealErrors checks Retryable against errors as the real SDK client returns them
// from moto, where not-found and conflict are real answers.
func TestRetryableOnRealErrors(t *testing.T) {
	moto := mototest.Shared(t)
	s := store.New(moto.Client())
	ctx := context.Background()
	_, err := s.Read(ctx, mototest.Name(t, "missing"), "AWSCURRENT")
	if !errors.Is(err, store.ErrNotFound) || store.Retryable(err) {
		t.Fatalf("not found: %v, retryable %v", err, store.Retryable(err))
	}
	id := mototest.Name(t, "conflict")
	if err := s.Create(ctx, id, "{}", "t"); err != nil {
		t.Fatal(err)
	}
	const tok = "0c0c0c0c-0000-4000-8000-000000000001"
	if _, err := s.Put(ctx, id, tok, "a", "X"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, id, tok, "b", "X")
	if !errors.Is(err, store.ErrConflict) || store.Retryable(err) {
		t.Fatalf("conflict: %v, retryable %v", err, store.Retryable(err))
	}
	refused := moto.Client(func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1")
		o.RetryMaxAttempts = 1
	})
	_, err = store.New(refused).Read(ctx, "any", "AWSCURRENT")
	if err == nil || !store.Retryable(err) {
		t.Fatalf("a refused connection: %v, retryable %v", err, store.Retryable(err))
	}
}
