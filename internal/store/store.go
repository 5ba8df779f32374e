// Package store keeps the rotator's documents in AWS Secrets Manager. It is a thin layer over the
// SDK that turns Secrets Manager's answers into the three facts the rotation engine cares about
// (found, not found, lost a compare-and-set) and strips AWS errors down to their code and message,
// so that nothing but an error's gist reaches a log.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// API is the part of the Secrets Manager client the rotator uses, with the SDK's exact method
// signatures, so that *secretsmanager.Client satisfies it and tests can wrap it.
type API interface {
	GetSecretValue(ctx context.Context, params *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, params *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	CreateSecret(ctx context.Context, params *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	DescribeSecret(ctx context.Context, params *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	UpdateSecretVersionStage(ctx context.Context, params *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	ListSecretVersionIds(ctx context.Context, params *secretsmanager.ListSecretVersionIdsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
}

// ErrNotFound means the secret, or a version with the asked-for staging label, does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict means a PutSecretValue lost a compare-and-set: a version with its ClientRequestToken
// already exists with another value.
var ErrConflict = errors.New("client request token already used with another value")

// ErrBinary means a version holds SecretBinary instead of SecretString. The rotator's documents
// and client secrets are text; reading a binary value as empty would hide a misconfiguration.
var ErrBinary = errors.New("binary secrets are not supported; store the value as a string")

// Version is one version of a secret.
type Version struct {
	ID    string
	Value string
}

// Error is a failed Secrets Manager call, reduced to what is safe and useful to log.
type Error struct {
	Op       string // the API operation, e.g. "PutSecretValue"
	SecretID string
	Code     string // the AWS error code, e.g. "ThrottlingException"
	Message  string
	Err      error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("secretsmanager %s %q", e.Op, e.SecretID)
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// DefaultTimeout bounds one call, the SDK's own retries included. Without it a hung connection
// would stall a daemon tick forever, and with overlapping ticks skipped, every tick after it.
const DefaultTimeout = 20 * time.Second

// SecretsManager stores documents in Secrets Manager.
type SecretsManager struct {
	API API
	// Timeout bounds each call; zero means DefaultTimeout.
	Timeout time.Duration

	mu   sync.Mutex
	tags map[string]described // by secret id, as Tags returns them
}

// described is what the last DescribeSecret of a secret said of its tags, and when.
type described struct {
	tags map[string]string
	at   time.Time
}

// Tags returns the tags of secretID as the last DescribeSecret of it through s (Stages, Describe)
// found them, and when that answered; false when s has not described it. It lets a reader of the
// tags (push delivery's record of deliveries not made) do without a call of its own right after
// the engine's read of the secret.
func (s *SecretsManager) Tags(secretID string) (map[string]string, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.tags[secretID]
	return d.tags, d.at, ok
}

// described notes out's tags for Tags.
func (s *SecretsManager) described(secretID string, out *secretsmanager.DescribeSecretOutput) {
	tags := make(map[string]string, len(out.Tags))
	for _, t := range out.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tags == nil {
		s.tags = map[string]described{}
	}
	s.tags[secretID] = described{tags: tags, at: time.Now()}
}

// New returns a store backed by api.
func New(api API) *SecretsManager { return &SecretsManager{API: api} }

func (s *SecretsManager) call(ctx context.Context) (context.Context, context.CancelFunc) {
	t := s.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return context.WithTimeout(ctx, t)
}

// Read returns the version of secretID that carries stage. It returns an error wrapping
// ErrNotFound when the secret or the stage does not exist, and one wrapping ErrBinary, with the
// version's ID, when the version holds a binary value.
func (s *SecretsManager) Read(ctx context.Context, secretID, stage string) (Version, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.API.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(secretID),
		VersionStage: aws.String(stage),
	})
	if err != nil {
		return Version{}, wrap("GetSecretValue", secretID, err)
	}
	if out.SecretString == nil {
		return Version{ID: aws.ToString(out.VersionId)}, &Error{Op: "GetSecretValue", SecretID: secretID,
			Message: ErrBinary.Error(), Err: ErrBinary}
	}
	return Version{ID: aws.ToString(out.VersionId), Value: *out.SecretString}, nil
}

// ReadVersion returns the version of secretID whose id is versionID, whatever labels it has (or
// none). It returns an error wrapping ErrNotFound when there is no such version, or no such secret.
func (s *SecretsManager) ReadVersion(ctx context.Context, secretID, versionID string) (Version, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.API.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:  aws.String(secretID),
		VersionId: aws.String(versionID),
	})
	if err != nil {
		return Version{}, wrap("GetSecretValue", secretID, err)
	}
	return Version{ID: aws.ToString(out.VersionId), Value: aws.ToString(out.SecretString)}, nil
}

// Put writes value as a new version of secretID with the given idempotency token. With no stages
// the version becomes AWSCURRENT (and the previous one AWSPREVIOUS); with stages, only those labels
// move to it, except that AWSCURRENT among them still makes the version it leaves AWSPREVIOUS, as
// Secrets Manager always does. Repeating a Put with the same token and value is a no-op that returns the same
// version; the same token with another value fails with an error wrapping ErrConflict, which is
// what makes Put a compare-and-set.
func (s *SecretsManager) Put(ctx context.Context, secretID, requestToken, value string, stages ...string) (string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	in := &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(secretID),
		ClientRequestToken: aws.String(requestToken),
		SecretString:       aws.String(value),
	}
	if len(stages) > 0 {
		in.VersionStages = stages
	}
	out, err := s.API.PutSecretValue(ctx, in)
	if err != nil {
		return "", wrap("PutSecretValue", secretID, err)
	}
	return aws.ToString(out.VersionId), nil
}

// Create creates secretID with an initial value. A secret that already exists is not an error.
func (s *SecretsManager) Create(ctx context.Context, secretID, value, description string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.API.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(secretID),
		SecretString: aws.String(value),
		Description:  aws.String(description),
	})
	if err != nil {
		var exists *types.ResourceExistsException
		if errors.As(err, &exists) {
			return nil
		}
		return wrap("CreateSecret", secretID, err)
	}
	return nil
}

// Stages returns the staging labels of secretID, each with the version that carries it, from one
// DescribeSecret call. Versions without a label are not listed. A missing secret gives an error
// wrapping ErrNotFound.
func (s *SecretsManager) Stages(ctx context.Context, secretID string) (map[string]string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.API.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretID)})
	if err != nil {
		return nil, wrap("DescribeSecret", secretID, err)
	}
	s.described(secretID, out)
	stages := make(map[string]string)
	for version, labels := range out.VersionIdsToStages {
		for _, label := range labels {
			stages[label] = version
		}
	}
	return stages, nil
}

// Describe returns the name and ARN of secretID (a name, an ARN or a partial ARN), from one
// DescribeSecret call. A missing secret gives an error wrapping ErrNotFound.
func (s *SecretsManager) Describe(ctx context.Context, secretID string) (name, arn string, err error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.API.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretID)})
	if err != nil {
		return "", "", wrap("DescribeSecret", secretID, err)
	}
	s.described(secretID, out)
	return aws.ToString(out.Name), aws.ToString(out.ARN), nil
}

// MoveStage moves the staging label stage to toVersion, taking it from fromVersion, with one
// UpdateSecretVersionStage call. An empty toVersion removes the label from fromVersion; an empty
// fromVersion is right only when no version carries the label (Secrets Manager refuses to move a
// label without being told where it is). Moving AWSCURRENT makes fromVersion AWSPREVIOUS.
func (s *SecretsManager) MoveStage(ctx context.Context, secretID, stage, toVersion, fromVersion string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretID), VersionStage: aws.String(stage)}
	if toVersion != "" {
		in.MoveToVersionId = aws.String(toVersion)
	}
	if fromVersion != "" {
		in.RemoveFromVersionId = aws.String(fromVersion)
	}
	if _, err := s.API.UpdateSecretVersionStage(ctx, in); err != nil {
		return wrap("UpdateSecretVersionStage", secretID, err)
	}
	return nil
}

// VersionInfo is what ListSecretVersionIds says of one version: its id, its staging labels (none
// for a version Secrets Manager calls deprecated) and when it was created.
type VersionInfo struct {
	ID      string
	Stages  []string
	Created time.Time
}

// versionPages bounds ListVersions: pages of 100 versions. Secrets Manager removes unlabelled
// versions beyond 100 once they are a day old, so a secret holding more than 500 has some 400
// created within a day, far past its version quota; a longer listing would tell nothing more.
const versionPages = 5

// ListVersions lists the versions of secretID, the unlabelled (deprecated) ones included, with
// their creation times: at most versionPages pages of 100 (see versionPages), in Secrets
// Manager's order, within one call's time limit. A missing secret gives an error wrapping
// ErrNotFound.
func (s *SecretsManager) ListVersions(ctx context.Context, secretID string) ([]VersionInfo, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var out []VersionInfo
	var next *string
	for range versionPages {
		page, err := s.API.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{
			SecretId: aws.String(secretID), IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(100), NextToken: next,
		})
		if err != nil {
			return nil, wrap("ListSecretVersionIds", secretID, err)
		}
		for _, v := range page.Versions {
			out = append(out, VersionInfo{ID: aws.ToString(v.VersionId), Stages: v.VersionStages, Created: aws.ToTime(v.CreatedDate)})
		}
		// moto ends its one page with an empty NextToken rather than none.
		if next = page.NextToken; aws.ToString(next) == "" {
			break
		}
	}
	return out, nil
}

// Retryable reports whether a failed Secrets Manager call is worth repeating unchanged: throttling,
// server faults, timeouts and transport failures are; refusals that only a change of
// configuration, permissions, KMS key or input can cure are not (access denied, not found,
// validation, limits, KMS and encryption failures, a ClientRequestToken conflict, a binary
// secret), and neither is a cancelled call. It is the one place that answers this question, for
// every caller of the store. An API error code it does not know is judged by its HTTP status.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrBinary) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) ||
		errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		// No answer arrived: a refused or reset connection, a DNS failure, a cut body.
		return true
	}
	code := api.ErrorCode()
	switch code {
	case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
		"RequestThrottled", "RequestThrottledException", "ProvisionedThroughputExceededException",
		"InternalServiceError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
		"ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException", "KMSThrottlingException":
		return true
	case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidClientTokenId",
		"ResourceNotFoundException", "ValidationException", "InvalidParameterException",
		"InvalidRequestException", "InvalidNextTokenException", "LimitExceededException",
		"DecryptionFailure", "EncryptionFailure", "ResourceExistsException", "MalformedPolicyDocumentException",
		"PreconditionNotMetException":
		return false
	}
	if strings.HasPrefix(code, "KMS") {
		// KMSAccessDenied, KMSDisabled, KMSInvalidState, KMSNotFound...: the key needs fixing.
		return false
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		st := re.HTTPStatusCode()
		return st == 429 || st >= 500
	}
	return api.ErrorFault() == smithy.FaultServer
}

// wrap reduces an SDK error to an *Error, marking not-found and conflict answers.
func wrap(op, secretID string, err error) error {
	e := &Error{Op: op, SecretID: secretID, Err: err}
	var notFound *types.ResourceNotFoundException
	var exists *types.ResourceExistsException
	var api smithy.APIError
	switch {
	case errors.As(err, &notFound):
		e.Code, e.Message, e.Err = notFound.ErrorCode(), notFound.ErrorMessage(), errors.Join(ErrNotFound, err)
	case errors.As(err, &exists):
		e.Code, e.Message, e.Err = exists.ErrorCode(), exists.ErrorMessage(), errors.Join(ErrConflict, err)
	case errors.As(err, &api):
		e.Code, e.Message = api.ErrorCode(), api.ErrorMessage()
	case errors.Is(err, context.DeadlineExceeded):
		e.Message = "timed out"
	case errors.Is(err, context.Canceled):
		e.Message = "cancelled"
	default:
		// Transport errors name the endpoint and the failure; they carry no secret values.
		e.Message = err.Error()
	}
	return e
}
