package cleartoken

// Unit tests: a world of the project's test rig in memory (its fake Secrets Manager, and in
// transport_test.go its Clear emulator), inside testing/synctest bubbles, so that TTLs, backoff and the maximum wait run on a fake clock
// and every figure is exact. integration_test.go runs the same behaviour against moto, the
// emulator and the real rotator.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// secret is the token secret of a rig world in memory (the project's one fake Secrets Manager and
// the Clear emulator), as a Source reads it: through the world's API, which counts the reads and
// fails the test unless each asks for AWSCURRENT explicitly.
type secret struct {
	w *rig.World
	// err, if set, is every read's answer instead of the secret's value.
	err error
	// attempts counts every GetSecretValue, failed ones too (count counts those that were answered).
	attempts atomic.Int64
	// failing, while set, fails every read with failure (for an outage that comes and goes while
	// reads are under way; err is for one set between reads).
	failing atomic.Bool
	failure error
}

func newSecret(t *testing.T) *secret {
	s := &secret{w: rig.New(t, rig.Options{Memory: true})}
	s.w.API.Fail(func(op string, in any) error {
		g, ok := in.(*secretsmanager.GetSecretValueInput)
		if !ok {
			return nil
		}
		s.attempts.Add(1)
		if aws.ToString(g.VersionStage) != "AWSCURRENT" || g.VersionId != nil {
			t.Errorf("GetSecretValue asked for stage %q, version %v; want AWSCURRENT", aws.ToString(g.VersionStage), g.VersionId)
		}
		if s.failing.Load() {
			return s.failure
		}
		return s.err
	})
	return s
}

// newFake returns a secret that holds a token document for tok.
func newFake(t *testing.T, tok string) *secret {
	s := newSecret(t)
	s.put(tok)
	return s
}

// api is what a Source reads.
func (s *secret) api() SecretsManager { return s.w.API }

// id is the secret's id.
func (s *secret) id() string { return s.w.TokenID }

// put stores a new version holding a token document for tok, and returns its version id.
func (s *secret) put(tok string) string { return s.w.StoreToken(tok) }

// setRaw stores a new version with any value, string or binary; it returns the version id.
func (s *secret) setRaw(str *string, bin []byte) string {
	return s.w.StoreInput(&secretsmanager.PutSecretValueInput{SecretString: str, SecretBinary: bin})
}

// count is the number of reads so far.
func (s *secret) count() int { return s.w.API.Calls()["GetSecretValue"] }

// noJitter makes backoff deterministic: every wait is its nominal length.
func noJitter(s *Source) { s.jitter = func() float64 { return 1 } }

// tokens of the tests; each is long and distinctive, so a leak scan cannot miss it.
const (
	tok1 = "1.11111111-aaaa-4aaa-8aaa-leaked-token-one_0123456789abcdef"
	tok2 = "1.22222222-bbbb-4bbb-8bbb-leaked-token-two_0123456789abcdef"
)

func TestTokenCachedForTTL(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id())
		ctx := context.Background()
		for range 100 {
			if got, err := src.Token(ctx); err != nil || got != tok1 {
				t.Fatalf("Token = %q, %v", got, err)
			}
		}
		if n := sm.count(); n != 1 {
			t.Fatalf("%d reads for 100 calls within the TTL, want 1", n)
		}
		sm.put(tok2)
		time.Sleep(DefaultTTL - time.Second)
		if got, _ := src.Token(ctx); got != tok1 || sm.count() != 1 {
			t.Fatalf("before the TTL: a new read (%d reads)", sm.count())
		}
		time.Sleep(time.Second)
		if got, _ := src.Token(ctx); got != tok2 || sm.count() != 2 {
			t.Fatalf("at the TTL: got the old token or no read (%d reads)", sm.count())
		}

		// WithTTL: 5 s, over a simulated minute of calls every 100 ms: 12 reads.
		sm2 := newFake(t, tok1)
		short := NewSource(sm2.api(), sm2.id(), WithTTL(5*time.Second))
		for range 600 {
			if _, err := short.Token(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := sm2.count(); n != 12 {
			t.Errorf("%d reads in a minute with a 5 s TTL, want 12", n)
		}
	})
}

func TestTokenPastValidTillIsReread(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newSecret(t)
		exp := time.Now().Add(10 * time.Second).UTC().Format(time.RFC3339)
		doc := `{"access_token":"` + tok1 + `","valid_till":"` + exp + `"}`
		sm.setRaw(&doc, nil)
		src := NewSource(sm.api(), sm.id())
		ctx := context.Background()
		if _, err := src.Token(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second)
		_, _ = src.Token(ctx) // past valid_till: re-read, which finds the same expired token
		_, _ = src.Token(ctx) // read when already expired: cached for the TTL, not re-read per call
		if n := sm.count(); n != 2 {
			t.Errorf("%d reads, want 2", n)
		}
	})
}

func TestConcurrentFirstReadsShareOneRead(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id())
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				if got, err := src.Token(context.Background()); err != nil || got != tok1 {
					t.Errorf("Token = %v", err)
				}
			})
		}
		wg.Wait()
		if n := sm.count(); n != 1 {
			t.Errorf("%d reads for 200 concurrent first calls, want 1", n)
		}
	})
}

// TestRefusedWaitsForNewerSingleFlight: 200 goroutines are refused the same token at once; the
// rotator stores the next one 1 s later. One wait serves them all: with backoff 100, 200, 400 and
// 800 ms the reads fall at 0, 0.1, 0.3, 0.7 and 1.5 s, so 5 reads, then everyone has the new token.
func TestRefusedWaitsForNewerSingleFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id(), noJitter)
		ctx := context.Background()
		old, err := src.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(time.Second); sm.put(tok2) }()
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		versions := map[string]int{} // of the newer token, by version id
		for range 200 {
			wg.Go(func() {
				got, err := src.Refused(ctx, old)
				if err == nil && got.Value() == tok2 {
					mu.Lock()
					versions[got.VersionID]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if _, v2 := sm.w.MustCurrent(); versions[v2] != 200 {
			t.Errorf("%d of 200 refused callers got the newer token's version", versions[v2])
		}
		if n := sm.count() - 1; n != 5 {
			t.Errorf("%d re-reads for 200 concurrent refusals, want 5 (one backoff sequence)", n)
		}
		if waited := time.Since(start); waited != 1500*time.Millisecond {
			t.Errorf("waited %s on the fake clock, want 1.5s", waited)
		}
		// A caller still holding the refused token later gets the cached newer one, without a read.
		n := sm.count()
		if got, err := src.Refused(ctx, old); err != nil || got.Value() != tok2 || sm.count() != n {
			t.Errorf("late refusal: %v, %d reads", err, sm.count()-n)
		}
	})
}

// TestRefusedWaitIsBounded: the rotator never stores a newer token. The wait ends at the maximum
// (10 s by default, here exactly, since backoff is not jittered) with KindNoNewer, after 10 reads
// (at 0, 0.1, 0.3, 0.7, 1.5, 3.1, 5.1, 7.1, 9.1 and 10 s), and the next Get is served the token
// the last read found.
func TestRefusedWaitIsBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id(), noJitter)
		ctx := context.Background()
		old, _ := src.Get(ctx)
		_, v1 := sm.w.MustCurrent()
		start := time.Now()
		_, err := src.Refused(ctx, old)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindNoNewer || e.VersionID != v1 {
			t.Fatalf("Refused = %v, want KindNoNewer for v1", err)
		}
		if waited := time.Since(start); waited != DefaultMaxWait {
			t.Errorf("waited %s, want %s", waited, DefaultMaxWait)
		}
		if n := sm.count() - 1; n != 10 {
			t.Errorf("%d re-reads during the wait, want 10", n)
		}
		// The wait's last read showed what AWSCURRENT holds: a Get is served that token, with no
		// other read (a review of cd6c13e: a second refusal right after held every Get for a wait).
		n := sm.count()
		if got, err := src.Get(ctx); err != nil || got.Value() != tok1 || sm.count() != n {
			t.Errorf("Get after a wait that ended without a newer token: %v, %d reads, want the token and no read", err, sm.count()-n)
		}

		// WithMaxWait shortens it, and jitter only ever shortens the steps.
		sm2 := newFake(t, tok1)
		src2 := NewSource(sm2.api(), sm2.id(), WithMaxWait(2*time.Second))
		old2, _ := src2.Get(ctx)
		start = time.Now()
		if _, err := src2.Refused(ctx, old2); !errors.As(err, &e) || e.Kind != KindNoNewer {
			t.Fatalf("Refused = %v", err)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("waited %s, want 2s", waited)
		}
	})
}

// TestRefusedCallerContext: a caller that gives up leaves the shared wait running for the others.
func TestRefusedCallerContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id())
		old, _ := src.Get(context.Background())
		go func() { time.Sleep(3 * time.Second); sm.put(tok2) }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var other Token
		var otherErr error
		done := make(chan struct{})
		go func() { other, otherErr = src.Refused(context.Background(), old); close(done) }()
		if _, err := src.Refused(ctx, old); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancelled caller: %v", err)
		}
		<-done
		if otherErr != nil || other.Value() != tok2 {
			t.Errorf("the other caller: %v", otherErr)
		}
	})
}

func TestSecretErrors(t *testing.T) {
	t.Parallel()
	const secretValue = "LEAKED-SECRET-VALUE-9876543210"
	str := func(s string) *string { return &s }
	cases := []struct {
		name string
		str  *string
		bin  []byte
		err  error
		kind Kind
	}{
		{"missing", nil, nil, nil, KindNotFound}, // nothing stored: the fake's ResourceNotFoundException
		{"access denied", nil, nil, errors.New("AccessDeniedException: not allowed"), KindRead},
		{"binary", nil, []byte(`{"access_token":"` + secretValue + `"}`), nil, KindBinary},
		{"empty", str(""), nil, nil, KindNoToken},
		{"empty object", str(`{}`), nil, nil, KindNoToken},
		{"null token", str(`{"access_token":null}`), nil, nil, KindNoToken},
		{"empty token", str(`{"access_token":""}`), nil, nil, KindNoToken},
		{"cut short", str(`{"access_token":"` + secretValue), nil, nil, KindMalformed},
		{"plain string", str(secretValue), nil, nil, KindMalformed},
		{"bad character", str(`{"access_token":"` + secretValue + `x`), nil, nil, KindMalformed},
		{"array", str(`["` + secretValue + `"]`), nil, nil, KindMalformed},
		{"number token", str(`{"access_token":12345678901234567890}`), nil, nil, KindMalformed},
		{"object token", str(`{"access_token":{"v":"` + secretValue + `"}}`), nil, nil, KindMalformed},
		{"control character", str(`{"access_token":"` + secretValue + `\r\nX-Evil: 1"}`), nil, nil, KindMalformed},
		{"space", str(`{"access_token":"` + secretValue + ` more"}`), nil, nil, KindMalformed},
		{"oversized", str(`{"access_token":"` + strings.Repeat(secretValue, 200) + `"}`), nil, nil, KindMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			sm := newSecret(t)
			if tc.str != nil || tc.bin != nil {
				sm.setRaw(tc.str, tc.bin)
			}
			sm.err = tc.err
			src := NewSource(sm.api(), sm.id(), WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			_, err := src.Token(context.Background())
			var e *Error
			if !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("Token error = %v, want a *Error of kind %v", err, tc.kind)
			}
			if e.SecretID != sm.id() || !strings.Contains(err.Error(), sm.id()) {
				t.Errorf("the error does not name the secret: %v", err)
			}
			// The same error through the Transport, as an http.Client caller sees it.
			client := &http.Client{Transport: NewTransport(src, roundTripFunc(func(*http.Request) (*http.Response, error) {
				t.Error("a request was sent without a token")
				return nil, errors.New("unreachable")
			}))}
			_, herr := client.Get("https://clear.example/api")
			if !errors.As(herr, &e) || e.Kind != tc.kind {
				t.Errorf("http.Client error = %v, want kind %v", herr, tc.kind)
			}
			for _, out := range []string{err.Error(), fmt.Sprintf("%+v %#v", err, err), herr.Error(), logs.String()} {
				if strings.Contains(out, "LEAKED") || strings.Contains(out, "9876543210") {
					t.Errorf("part of the secret's value leaked: %s", out)
				}
			}
			t.Log(err)
		})
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	t.Parallel()
	sm := newFake(t, tok1)
	tok, err := NewSource(sm.api(), sm.id()).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("token", "t", tok)
	// An ERP keeps the token in its own structs, often in an unexported field, where fmt cannot
	// call String and prints the fields by reflection; %d and %x print a struct field by field.
	type erp struct {
		name string
		tok  Token
		ptr  *Token
	}
	held := &erp{name: "erp", tok: tok, ptr: &tok}
	var verbs strings.Builder // every verb, on the struct and on the token; vet would refuse those that do not fit, which is the point
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		verbs.WriteString(fmt.Sprintf(verb, *held) + fmt.Sprintf(verb, tok))
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("token", "t", tok, "erp", held)
	for _, out := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), fmt.Sprint(struct{ T Token }{tok}),
		verbs.String(), fmt.Sprintf("%+v", []*erp{held}), logs.String()} {
		if strings.Contains(out, "leaked-token") {
			t.Errorf("the token is printed: %s", out)
		}
	}
}

// TestRefusedOlderTokenJoinsTheWait: two rotations in a row (an operator's two forces, say). A
// caller still holding the first token is refused while the cache holds the second, which Clear
// has refused too and which a wait is under way to replace. Refused returned the second token at
// once, since it differs from the one refused, and the caller's one retry was refused again. It
// must join the wait and get the third.
func TestRefusedOlderTokenJoinsTheWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const tok3 = "1.33333333-cccc-4ccc-8ccc-leaked-token-three_0123456789abcdef"
		sm := newFake(t, tok1)
		src := NewSource(sm.api(), sm.id(), noJitter)
		ctx := context.Background()
		first, _ := src.Get(ctx) // a slow request still carries it after both rotations
		sm.put(tok2)
		second, err := src.Refused(ctx, first)
		if err != nil || second.Value() != tok2 {
			t.Fatalf("first refusal: %v", err)
		}
		go func() { time.Sleep(time.Second); sm.put(tok3) }()
		waiting := make(chan Token)
		go func() { got, _ := src.Refused(ctx, second); waiting <- got }()
		synctest.Wait() // the wait for the second token's successor has begun
		got, err := src.Refused(ctx, first)
		if err != nil || got.Value() != tok3 {
			t.Errorf("the older token's refusal got %v (%v), want the third token, not the refused second", got, err)
		}
		if other := <-waiting; other.Value() != tok3 {
			t.Errorf("the second token's refusal got %v", other)
		}
	})
}

// Absurd options keep the defaults: a zero or negative TTL would re-read on every call (a read per
// ERP request), a zero wait would never wait for the rotator's newer token.
func TestOptionsKeepTheirDefaultsForAbsurdValues(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		s := NewSource(nil, "s", WithTTL(d), WithMaxWait(d), WithLogger(nil))
		if s.ttl != DefaultTTL || s.maxWait != DefaultMaxWait || s.log == nil {
			t.Errorf("options of %s: ttl %s, max wait %s, logger %v; want the defaults", d, s.ttl, s.maxWait, s.log)
		}
	}
}

// TestRefusedWaitIsBoundedWhenReadsAreSlow: Secrets Manager takes 9 s a read (throttled, with the
// SDK's own retries), well within DefaultReadTimeout. A refused caller is answered within the
// Source's WithMaxWait and a second, not after the whole read, nor after a last read started just
// before the deadline (the cleartoken audit's fifth finding), nor, when the token is refused while
// the TTL's re-read is under way, after that read and a whole wait (a review of its fix: the wait
// now runs from the refusal).
func TestRefusedWaitIsBoundedWhenReadsAreSlow(t *testing.T) {
	t.Parallel()
	for _, maxWait := range []time.Duration{2 * time.Second, DefaultMaxWait} {
		for _, duringReread := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s reread %v", maxWait, duringReread), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					sm := newFake(t, tok1)
					slow := &slowSM{SecretsManager: sm.api()}
					src := NewSource(slow, sm.id(), WithMaxWait(maxWait), noJitter)
					old, err := src.Get(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					slow.delay = 9 * time.Second
					var wg sync.WaitGroup
					if duringReread {
						time.Sleep(DefaultTTL)
						wg.Go(func() { _, _ = src.Token(t.Context()) }) // the re-read at the TTL
						time.Sleep(10 * time.Millisecond)
					}
					start := time.Now()
					_, err = src.Refused(t.Context(), old)
					if took := time.Since(start); err == nil || took > maxWait+minRead {
						t.Errorf("reads of 9 s: the refused caller was answered after %s (%v), want an error within %s", took, err, maxWait+minRead)
					}
					wg.Wait()
					time.Sleep(DefaultReadTimeout) // a read under way ends
				})
			})
		}
	}
}

// TestRefusedOlderTokenDuringARereadWaitsForTheSuccessor is TestRefusedOlderTokenJoinsTheWait with
// the second token refused while the TTL's re-read is under way: the wait for its successor is due
// after that read, and the older token's refusal must wait for it too, not be handed the second
// token the Source was told Clear refused (a review of 4d14b6a found nothing tested this).
func TestRefusedOlderTokenDuringARereadWaitsForTheSuccessor(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const tok3 = "1.33333333-cccc-4ccc-8ccc-leaked-token-three_0123456789abcdef"
		sm := newFake(t, tok1)
		slow := &slowSM{SecretsManager: sm.api()}
		src := NewSource(slow, sm.id(), noJitter)
		ctx := context.Background()
		first, _ := src.Get(ctx)
		sm.put(tok2)
		second, err := src.Refused(ctx, first)
		if err != nil || second.Value() != tok2 {
			t.Fatalf("first refusal: %v", err)
		}
		time.Sleep(DefaultTTL)
		slow.delay = time.Second
		go func() { _, _ = src.Get(ctx) }() // the re-read at the TTL: a second
		time.Sleep(10 * time.Millisecond)
		go func() { _, _ = src.Refused(ctx, second) }() // due after the read
		time.Sleep(10 * time.Millisecond)
		go func() { time.Sleep(2 * time.Second); sm.put(tok3) }()
		got, err := src.Refused(ctx, first)
		if err != nil || got.Value() != tok3 {
			t.Errorf("the older token's refusal got %v (%v), want the third token, not the refused second", got, err)
		}
		time.Sleep(DefaultMaxWait)
	})
}
