package bench

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// answerClock notes when Clear's answer reached the engine.
type answerClock struct {
	rotation.TokenSource
	mu sync.Mutex
	at time.Time
}

func (a *answerClock) Token(ctx context.Context, s clear.ClientSecret) (clear.Grant, error) {
	g, err := a.TokenSource.Token(ctx, s)
	a.mu.Lock()
	a.at = time.Now()
	a.mu.Unlock()
	return g, err
}

// storeClock notes when the token write returned: from then on, a read of AWSCURRENT gets it.
type storeClock struct {
	store.API
	mu sync.Mutex
	at time.Time
}

func (s *storeClock) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	out, err := s.API.PutSecretValue(ctx, in, o...)
	if err == nil && len(in.VersionStages) == 0 {
		if _, perr := document.ParseToken([]byte(aws.ToString(in.SecretString))); perr == nil {
			s.mu.Lock()
			s.at = time.Now()
			s.mu.Unlock()
		}
	}
	return out, err
}

// BenchmarkRevocationGap measures, over 600 rotations against moto on loopback, the time from
// Clear's answer reaching the engine (the previous token is revoked from that moment) to the new
// token's PutSecretValue returning (from then on a read of AWSCURRENT gets it), and compares it
// with a bare PutSecretValue, interleaved one for one in the same run so that both see the same
// load: the same token document written again to the same secret, so that both writes also meet
// the same number of versions (moto slows down as a secret's versions pile up, since it never
// prunes them).
func BenchmarkRevocationGap(b *testing.B) {
	const rotations, warmup = 600, 20
	clk := fake.NewClock(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	w := rig.New(b, rig.Options{Clock: clk, Lifetime: time.Hour, DailyLimit: 250})
	client := w.Client()
	src := &answerClock{TokenSource: client.Clear}
	client.Clear = src
	// The engine writes and the bare puts go through the same SDK client (w.SM, without the rig's
	// fault hook and counts), and the engine logs nothing inside the measured gap.
	api := &storeClock{API: w.SM}
	e := w.Engine("bench-gap")
	e.Store, e.Log = store.New(api), slog.New(slog.DiscardHandler)
	sm, tokenID := w.SM, w.TokenID
	var gaps, puts []time.Duration
	for range b.N {
		gaps, puts = gaps[:0], puts[:0]
		for i := range rotations + warmup {
			clk.Advance(41 * time.Minute) // past the renewal point of a one-hour token
			r := e.Rotate(context.Background(), client, false)
			if r.Outcome != rotation.Rotated {
				b.Fatalf("rotation %d: %s: %s", i, r.Outcome, r.Message)
			}
			cur, _, ok := w.Read(rotation.CurrentStage)
			if !ok || !strings.Contains(cur, "access_token") {
				b.Fatalf("AWSCURRENT after rotation %d holds no token", i)
			}
			// The same token document again: AWSCURRENT keeps the same token, and the next rotation
			// replaces this version as it would the rotator's own.
			start := time.Now()
			if _, err := sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
				SecretId: aws.String(tokenID), SecretString: aws.String(cur), ClientRequestToken: aws.String(uuid())}); err != nil {
				b.Fatal(err)
			}
			bare := time.Since(start)
			if i < warmup {
				continue
			}
			api.mu.Lock()
			src.mu.Lock()
			gaps = append(gaps, api.at.Sub(src.at))
			src.mu.Unlock()
			api.mu.Unlock()
			puts = append(puts, bare)
		}
	}
	g50, g99, p50, p99 := percentile(gaps, 50), percentile(gaps, 99), percentile(puts, 50), percentile(puts, 99)
	g90, p90 := percentile(gaps, 90), percentile(puts, 90)
	b.ReportMetric(float64(g90)/float64(p90), "x-put-p90")
	b.ReportMetric(ms(g50), "gap-p50-ms")
	b.ReportMetric(ms(g99), "gap-p99-ms")
	b.ReportMetric(ms(p50), "put-p50-ms")
	b.ReportMetric(ms(p99), "put-p99-ms")
	b.ReportMetric(float64(g50)/float64(p50), "x-put-p50")
	b.ReportMetric(float64(g99)/float64(p99), "x-put-p99")
	b.Logf("revocation gap over %d rotations: p50 %s, p90 %s, p99 %s, max %s; bare PutSecretValue: p50 %s, p90 %s, p99 %s, max %s; ratio p50 %.2f, p90 %.2f, p99 %.2f",
		len(gaps), g50.Round(time.Microsecond), g90.Round(time.Microsecond), g99.Round(time.Microsecond), percentile(gaps, 100).Round(time.Microsecond),
		p50.Round(time.Microsecond), p90.Round(time.Microsecond), p99.Round(time.Microsecond), percentile(puts, 100).Round(time.Microsecond),
		float64(g50)/float64(p50), float64(g90)/float64(p90), float64(g99)/float64(p99))
}
