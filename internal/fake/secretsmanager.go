package fake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// SecretsManager is an in-memory Secrets Manager with the semantics the rotator relies on:
// versions with staging labels, AWSCURRENT and AWSPREVIOUS moving on a default-staged put, custom
// labels moving alone, and ClientRequestToken idempotency (the same token with the same value is a
// no-op that returns the same version; with another value, ResourceExistsException). It answers
// with the SDK's own error types, so the real store.SecretsManager runs on top of it unchanged. It
// makes no network call, which is what lets the month simulation run inside a synctest bubble.
//
// It is safe for concurrent use; every call is atomic, as Secrets Manager's are.
type SecretsManager struct {
	// Now stamps versions; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	secrets map[string]*smSecret
	calls   map[string]int
}

// smSecret is one secret: its versions in creation order, and two indexes: by version id, and by
// label (the version that carries it). Versions are never pruned, and a month simulated in a
// synctest bubble stores thousands; finding a label by scanning them all made the fake the
// simulation's largest cost.
type smSecret struct {
	versions []*SMVersion
	byID     map[string]*SMVersion
	byLabel  map[string]*SMVersion
	tags     map[string]string
}

// SMVersion is one stored version of a secret.
type SMVersion struct {
	ID    string
	Value string
	// Binary is the value of a version stored as SecretBinary; Value is then empty.
	Binary  []byte
	Stages  []string
	Created time.Time
}

var _ store.API = (*SecretsManager)(nil)

// NewSecretsManager returns an empty fake whose clock is now (nil: time.Now).
func NewSecretsManager(now func() time.Time) *SecretsManager {
	return &SecretsManager{Now: now, secrets: map[string]*smSecret{}, calls: map[string]int{}}
}

func (f *SecretsManager) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Calls returns how many calls of each operation the fake answered, failed ones included.
func (f *SecretsManager) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.calls))
	for k, v := range f.calls {
		out[k] = v
	}
	return out
}

// Versions returns a copy of every version of id, oldest first.
func (f *SecretsManager) Versions(id string) []SMVersion {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[id]
	if s == nil {
		return nil
	}
	out := make([]SMVersion, len(s.versions))
	for i, v := range s.versions {
		out[i] = *v
		out[i].Stages = slices.Clone(v.Stages)
	}
	return out
}

// Stage returns the version of id that carries stage, if any.
func (f *SecretsManager) Stage(id, stage string) (SMVersion, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[id]
	if s == nil {
		return SMVersion{}, false
	}
	if v := s.labelled(stage); v != nil {
		c := *v
		c.Stages = slices.Clone(v.Stages)
		return c, true
	}
	return SMVersion{}, false
}

func (s *smSecret) labelled(stage string) *SMVersion { return s.byLabel[stage] }

// move gives stage to v, taking it from the version that held it, and returns that version.
func (s *smSecret) move(stage string, v *SMVersion) *SMVersion {
	from := s.byLabel[stage]
	if from == v {
		return nil
	}
	if from != nil {
		s.unlabel(stage, from)
	}
	v.Stages = append(v.Stages, stage)
	s.byLabel[stage] = v
	return from
}

// unlabel takes stage off v, which carries it.
func (s *smSecret) unlabel(stage string, v *SMVersion) {
	if i := slices.Index(v.Stages, stage); i >= 0 {
		v.Stages = slices.Delete(v.Stages, i, i+1)
	}
	delete(s.byLabel, stage)
}

// add stores a new version with stages, applying AWSCURRENT's rule: the version it leaves becomes
// AWSPREVIOUS.
func (s *smSecret) add(id, value string, binary []byte, stages []string, now time.Time) *SMVersion {
	v := &SMVersion{ID: id, Value: value, Binary: slices.Clone(binary), Created: now}
	s.versions = append(s.versions, v)
	s.byID[id] = v
	for _, st := range stages {
		from := s.move(st, v)
		if st == "AWSCURRENT" && from != nil {
			s.move("AWSPREVIOUS", from)
		}
	}
	return v
}

func smNotFound(msg string) error {
	return &types.ResourceNotFoundException{Message: aws.String(msg)}
}

// GetSecretValue implements store.API.
func (f *SecretsManager) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["GetSecretValue"]++
	id := aws.ToString(in.SecretId)
	s := f.secrets[id]
	if s == nil {
		return nil, smNotFound("Secrets Manager can't find the specified secret.")
	}
	var v *SMVersion
	switch {
	case in.VersionId != nil:
		v = s.byID[*in.VersionId]
	case in.VersionStage != nil:
		v = s.labelled(*in.VersionStage)
	default:
		v = s.labelled("AWSCURRENT")
	}
	if v == nil {
		return nil, smNotFound("Secrets Manager can't find the specified secret value for staging label: " + aws.ToString(in.VersionStage))
	}
	out := &secretsmanager.GetSecretValueOutput{
		Name: aws.String(id), VersionId: aws.String(v.ID), SecretString: aws.String(v.Value),
		VersionStages: slices.Clone(v.Stages), CreatedDate: aws.Time(v.Created),
	}
	if v.Binary != nil {
		out.SecretString, out.SecretBinary = nil, slices.Clone(v.Binary)
	}
	return out, nil
}

// PutSecretValue implements store.API.
func (f *SecretsManager) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["PutSecretValue"]++
	id := aws.ToString(in.SecretId)
	s := f.secrets[id]
	if s == nil {
		return nil, smNotFound("Secrets Manager can't find the specified secret.")
	}
	token := aws.ToString(in.ClientRequestToken)
	if token == "" {
		token = newVersionID()
	}
	value := aws.ToString(in.SecretString)
	if v := s.byID[token]; v != nil {
		if v.Value != value || !bytes.Equal(v.Binary, in.SecretBinary) {
			return nil, &types.ResourceExistsException{Message: aws.String("A resource with the ID you requested already exists.")}
		}
		// Secrets Manager ignores a repeated request: the labels stay where they are.
		return &secretsmanager.PutSecretValueOutput{Name: aws.String(id), VersionId: aws.String(v.ID), VersionStages: slices.Clone(v.Stages)}, nil
	}
	stages := in.VersionStages
	if len(stages) == 0 {
		stages = []string{"AWSCURRENT"}
	}
	v := s.add(token, value, in.SecretBinary, stages, f.now())
	return &secretsmanager.PutSecretValueOutput{Name: aws.String(id), VersionId: aws.String(v.ID), VersionStages: slices.Clone(v.Stages)}, nil
}

// CreateSecret implements store.API.
func (f *SecretsManager) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CreateSecret"]++
	id := aws.ToString(in.Name)
	if f.secrets[id] != nil {
		return nil, &types.ResourceExistsException{Message: aws.String(fmt.Sprintf("The operation failed because the secret %s already exists.", id))}
	}
	s := &smSecret{byID: map[string]*SMVersion{}, byLabel: map[string]*SMVersion{}}
	f.secrets[id] = s
	token := aws.ToString(in.ClientRequestToken)
	if token == "" {
		token = newVersionID()
	}
	var vid *string
	if in.SecretString != nil || in.SecretBinary != nil {
		v := s.add(token, aws.ToString(in.SecretString), in.SecretBinary, []string{"AWSCURRENT"}, f.now())
		vid = aws.String(v.ID)
	}
	return &secretsmanager.CreateSecretOutput{Name: aws.String(id), VersionId: vid}, nil
}

// DescribeSecret implements store.API. VersionIdsToStages lists only the versions that carry a
// label, as Secrets Manager's does.
func (f *SecretsManager) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeSecret"]++
	id := aws.ToString(in.SecretId)
	s := f.secrets[id]
	if s == nil {
		return nil, smNotFound("Secrets Manager can't find the specified secret.")
	}
	stages := make(map[string][]string)
	for _, v := range s.byLabel {
		stages[v.ID] = slices.Clone(v.Stages)
	}
	var tags []types.Tag
	for _, k := range slices.Sorted(maps.Keys(s.tags)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(s.tags[k])})
	}
	return &secretsmanager.DescribeSecretOutput{Name: aws.String(id), VersionIdsToStages: stages, Tags: tags}, nil
}

// TagResource adds or replaces the secret's tags, as Secrets Manager's does.
func (f *SecretsManager) TagResource(ctx context.Context, in *secretsmanager.TagResourceInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	if err := f.retag(ctx, "TagResource", aws.ToString(in.SecretId), func(tags map[string]string) {
		for _, t := range in.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}); err != nil {
		return nil, err
	}
	return &secretsmanager.TagResourceOutput{}, nil
}

// UntagResource removes the secret's tags named; a key it does not have is no error.
func (f *SecretsManager) UntagResource(ctx context.Context, in *secretsmanager.UntagResourceInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.UntagResourceOutput, error) {
	if err := f.retag(ctx, "UntagResource", aws.ToString(in.SecretId), func(tags map[string]string) {
		for _, k := range in.TagKeys {
			delete(tags, k)
		}
	}); err != nil {
		return nil, err
	}
	return &secretsmanager.UntagResourceOutput{}, nil
}

// retag is a call of op that changes the tags of secret id with change, atomically.
func (f *SecretsManager) retag(ctx context.Context, op, id string, change func(tags map[string]string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	s := f.secrets[id]
	if s == nil {
		return smNotFound("Secrets Manager can't find the specified secret.")
	}
	if s.tags == nil {
		s.tags = map[string]string{}
	}
	change(s.tags)
	return nil
}

// UpdateSecretVersionStage implements store.API with Secrets Manager's rules: a label attached to
// a version can only be moved by naming that version in RemoveFromVersionId, a named version must
// exist and hold the label, AWSCURRENT cannot be removed without moving it, and moving AWSCURRENT
// makes the version it leaves AWSPREVIOUS.
func (f *SecretsManager) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["UpdateSecretVersionStage"]++
	id := aws.ToString(in.SecretId)
	s := f.secrets[id]
	if s == nil {
		return nil, smNotFound("Secrets Manager can't find the specified secret.")
	}
	stage, to, from := aws.ToString(in.VersionStage), aws.ToString(in.MoveToVersionId), aws.ToString(in.RemoveFromVersionId)
	invalid := func(msg string) error { return &types.InvalidParameterException{Message: aws.String(msg)} }
	if stage == "" {
		return nil, invalid("You must specify a staging label.")
	}
	if to == "" && from == "" {
		return nil, invalid("You must specify MoveToVersionId or RemoveFromVersionId.")
	}
	var toV, fromV *SMVersion
	if to != "" {
		if toV = s.byID[to]; toV == nil {
			return nil, smNotFound("Secrets Manager can't find the specified secret version: " + to)
		}
	}
	if from != "" {
		if fromV = s.byID[from]; fromV == nil {
			return nil, smNotFound("Secrets Manager can't find the specified secret version: " + from)
		}
		if !slices.Contains(fromV.Stages, stage) {
			return nil, invalid("The staging label " + stage + " is not attached to version " + from + ".")
		}
	}
	if holder := s.labelled(stage); holder != nil && holder != toV && holder != fromV {
		return nil, invalid("The staging label " + stage + " is currently attached to version " + holder.ID +
			", so you must explicitly reference that version in RemoveFromVersionId.")
	}
	if toV == nil {
		if stage == "AWSCURRENT" {
			return nil, invalid("You can't remove the staging label AWSCURRENT without moving it to another version.")
		}
		s.unlabel(stage, fromV)
		return &secretsmanager.UpdateSecretVersionStageOutput{Name: aws.String(id)}, nil
	}
	left := s.move(stage, toV)
	if stage == "AWSCURRENT" && left != nil {
		s.move("AWSPREVIOUS", left)
	}
	return &secretsmanager.UpdateSecretVersionStageOutput{Name: aws.String(id)}, nil
}

// ListSecretVersionIds implements store.API: the versions in creation order (Secrets Manager
// promises none), only the labelled ones unless IncludeDeprecated, MaxResults (default 100, at
// most 100) a page, NextToken the position of the next page.
func (f *SecretsManager) ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListSecretVersionIds"]++
	id := aws.ToString(in.SecretId)
	s := f.secrets[id]
	if s == nil {
		return nil, smNotFound("Secrets Manager can't find the specified secret.")
	}
	size := int(aws.ToInt32(in.MaxResults))
	if size == 0 {
		size = 100
	}
	if size < 1 || size > 100 {
		return nil, &types.InvalidParameterException{Message: aws.String("MaxResults must be between 1 and 100.")}
	}
	// With IncludeDeprecated every version is listed, in creation order: page through them
	// without copying, since a simulated month stores thousands and the engine lists them before
	// every request to Clear.
	list := s.versions
	if !aws.ToBool(in.IncludeDeprecated) {
		list = nil
		for _, v := range s.versions {
			if len(v.Stages) > 0 {
				list = append(list, v)
			}
		}
	}
	from := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(list) {
			return nil, &types.InvalidNextTokenException{Message: aws.String("The NextToken value is invalid.")}
		}
		from = n
	}
	to := min(from+size, len(list))
	out := &secretsmanager.ListSecretVersionIdsOutput{Name: aws.String(id)}
	for _, v := range list[from:to] {
		out.Versions = append(out.Versions, types.SecretVersionsListEntry{
			VersionId: aws.String(v.ID), VersionStages: slices.Clone(v.Stages), CreatedDate: aws.Time(v.Created)})
	}
	if to < len(list) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}

// newVersionID returns a random UUID-shaped version id, as Secrets Manager generates.
func newVersionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
