package rig

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// API wraps a Secrets Manager (moto through the SDK client, or the in-memory fake) with the
// rig's one fault hook and a count of the calls that reached it. Engines built by a World use it;
// the test's own reads (World.Current and friends) bypass it, so that a fault never hides what
// was stored.
type API struct {
	// Next is the Secrets Manager the calls go to.
	Next store.API

	mu    sync.Mutex
	fail  func(op string, in any) error
	calls map[string]int
}

// Fail makes every later call for which f returns an error fail with that error, without
// reaching Next. op is the SDK method's name ("GetSecretValue"), in its input. A nil f removes
// the hook.
func (a *API) Fail(f func(op string, in any) error) {
	a.mu.Lock()
	a.fail = f
	a.mu.Unlock()
}

// Calls returns how many calls of each operation reached Next (failed ones are not counted).
func (a *API) Calls() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.calls)
}

// TakeCalls returns the calls counted since the last TakeCalls, and their total.
func (a *API) TakeCalls() (total int, byOp map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	byOp, a.calls = a.calls, nil
	for _, n := range byOp {
		total += n
	}
	return total, byOp
}

func (a *API) before(op string, in any) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		if err := a.fail(op, in); err != nil {
			return err
		}
	}
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[op]++
	return nil
}

// GetSecretValue implements store.API.
func (a *API) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if err := a.before("GetSecretValue", in); err != nil {
		return nil, err
	}
	return a.Next.GetSecretValue(ctx, in, o...)
}

// PutSecretValue implements store.API.
func (a *API) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if err := a.before("PutSecretValue", in); err != nil {
		return nil, err
	}
	return a.Next.PutSecretValue(ctx, in, o...)
}

// CreateSecret implements store.API.
func (a *API) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if err := a.before("CreateSecret", in); err != nil {
		return nil, err
	}
	return a.Next.CreateSecret(ctx, in, o...)
}

// DescribeSecret implements store.API.
func (a *API) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	if err := a.before("DescribeSecret", in); err != nil {
		return nil, err
	}
	return a.Next.DescribeSecret(ctx, in, o...)
}

// UpdateSecretVersionStage implements store.API.
func (a *API) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, o ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	if err := a.before("UpdateSecretVersionStage", in); err != nil {
		return nil, err
	}
	return a.Next.UpdateSecretVersionStage(ctx, in, o...)
}

// ListSecretVersionIds implements store.API.
func (a *API) ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, o ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	if err := a.before("ListSecretVersionIds", in); err != nil {
		return nil, err
	}
	return a.Next.ListSecretVersionIds(ctx, in, o...)
}

// tagger is the tagging part of the Secrets Manager API, which the SDK client and the fake have
// and store.API leaves out: push delivery records a failed delivery as a tag (app.App.Recorder).
type tagger interface {
	TagResource(ctx context.Context, params *secretsmanager.TagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error)
	UntagResource(ctx context.Context, params *secretsmanager.UntagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UntagResourceOutput, error)
}

// TagResource passes the call on, so that an engine built on the rig records a failed delivery as
// the real client does (without it the recorder found no tagging and wrote nothing).
func (a *API) TagResource(ctx context.Context, in *secretsmanager.TagResourceInput, o ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	t, err := a.tagging("TagResource", in)
	if err != nil {
		return nil, err
	}
	return t.TagResource(ctx, in, o...)
}

// UntagResource passes the call on, as TagResource does.
func (a *API) UntagResource(ctx context.Context, in *secretsmanager.UntagResourceInput, o ...func(*secretsmanager.Options)) (*secretsmanager.UntagResourceOutput, error) {
	t, err := a.tagging("UntagResource", in)
	if err != nil {
		return nil, err
	}
	return t.UntagResource(ctx, in, o...)
}

// tagging passes a tag call through the fault hook and returns the Secrets Manager under the rig
// that answers it.
func (a *API) tagging(op string, in any) (tagger, error) {
	if err := a.before(op, in); err != nil {
		return nil, err
	}
	t, ok := a.Next.(tagger)
	if !ok {
		return nil, errors.New("rig: the Secrets Manager under the rig does not tag")
	}
	return t, nil
}

var (
	_ store.API = (*API)(nil)
	_ tagger    = (*API)(nil)
)
