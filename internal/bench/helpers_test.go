package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

// countingAPI counts the Secrets Manager calls made through it, by operation.
type countingAPI struct {
	store.API
	mu    sync.Mutex
	calls map[string]int
}

func newCountingAPI(api store.API) *countingAPI {
	return &countingAPI{API: api, calls: map[string]int{}}
}

func (c *countingAPI) count(op string) { c.mu.Lock(); c.calls[op]++; c.mu.Unlock() }

// take returns the counts since the last take and resets them.
func (c *countingAPI) take() (total int, byOp map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byOp = c.calls
	c.calls = map[string]int{}
	for _, n := range byOp {
		total += n
	}
	return total, byOp
}

func (c *countingAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.count("GetSecretValue")
	return c.API.GetSecretValue(ctx, in, o...)
}

func (c *countingAPI) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	c.count("PutSecretValue")
	return c.API.PutSecretValue(ctx, in, o...)
}

func (c *countingAPI) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	c.count("CreateSecret")
	return c.API.CreateSecret(ctx, in, o...)
}

// percentile returns the p-th percentile (0-100) of ds by the nearest-rank method.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}
