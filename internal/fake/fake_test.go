package fake_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Both fakes must fit the engine's interfaces.
var (
	_ rotation.Store       = (*fake.Store)(nil)
	_ rotation.TokenSource = (*fake.Clear)(nil)
)

func TestStoreNotFound(t *testing.T) {
	s := fake.NewStore()
	ctx := context.Background()
	if _, err := s.Read(ctx, "a", fake.StageCurrent); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of a missing secret: %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "a", "t1", "v"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("put to a missing secret: %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx, "a", "", "empty"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "a", fake.StageCurrent); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of a secret without versions: %v, want ErrNotFound", err)
	}
	var se *store.Error
	if _, err := s.Read(ctx, "a", "X"); !errors.As(err, &se) || se.Code != "ResourceNotFoundException" {
		t.Fatalf("error %v is not a *store.Error with the AWS code", err)
	}
}

func TestStoreStagesMoveLikeSecretsManager(t *testing.T) {
	s := fake.NewStore()
	ctx := context.Background()
	if err := s.Create(ctx, "a", "v0", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "a", "ignored", ""); err != nil {
		t.Fatalf("create of an existing secret: %v, want nil", err)
	}
	v0, _ := s.Read(ctx, "a", fake.StageCurrent)
	if v0.Value != "v0" {
		t.Fatalf("current = %q, want v0 (a second Create must not change it)", v0.Value)
	}
	id1, err := s.Put(ctx, "a", "t1", "v1")
	if err != nil || id1 != "t1" {
		t.Fatalf("put: %q, %v; want the request token as version id", id1, err)
	}
	if _, err := s.Put(ctx, "a", "s1", "state", "CUSTOM"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a", "t2", "v2"); err != nil {
		t.Fatal(err)
	}
	for stage, want := range map[string]string{fake.StageCurrent: "v2", fake.StagePrevious: "v1", "CUSTOM": "state"} {
		if v, _ := s.Read(ctx, "a", stage); v.Value != want {
			t.Errorf("%s = %q, want %q", stage, v.Value, want)
		}
	}
	if _, err := s.Put(ctx, "a", "s2", "state2", "CUSTOM"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Read(ctx, "a", "CUSTOM"); v.Value != "state2" || v.ID != "s2" {
		t.Errorf("CUSTOM = %+v, want s2/state2: a custom label moves to the new version", v)
	}
	if v, _ := s.Read(ctx, "a", fake.StageCurrent); v.Value != "v2" {
		t.Errorf("a custom-labelled put moved AWSCURRENT")
	}
	var stages [][]string
	for _, v := range s.Versions("a") {
		stages = append(stages, v.Stages)
	}
	want := [][]string{nil, {fake.StagePrevious}, nil, {fake.StageCurrent}, {"CUSTOM"}}
	if !slices.EqualFunc(stages, want, slices.Equal) {
		t.Errorf("stages by version = %v, want %v", stages, want)
	}
}

func TestStoreIdempotency(t *testing.T) {
	s := fake.NewStore()
	ctx := context.Background()
	_ = s.Create(ctx, "a", "v0", "")
	id, err := s.Put(ctx, "a", "tok", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a", "other", "v2"); err != nil {
		t.Fatal(err)
	}
	again, err := s.Put(ctx, "a", "tok", "v1")
	if err != nil || again != id {
		t.Fatalf("repeated put: %q, %v; want %q, nil", again, err, id)
	}
	if v, _ := s.Read(ctx, "a", fake.StageCurrent); v.Value != "v2" {
		t.Fatalf("a repeated put is a no-op, but AWSCURRENT became %q", v.Value)
	}
	if _, err := s.Put(ctx, "a", "tok", "different"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same token, other value: %v, want ErrConflict", err)
	}
	if got := s.Calls(fake.OpPut); got != 4 {
		t.Errorf("Calls(put) = %d, want 4", got)
	}
	if got := s.Writes(); got != 5 {
		t.Errorf("Writes = %d, want 5 (4 puts and a create)", got)
	}
}

func TestStoreFailuresAndCancellation(t *testing.T) {
	s := fake.NewStore()
	_ = s.Create(context.Background(), "a", "v0", "")
	boom := errors.New("throttled")
	s.FailWith(func(op, id string) error {
		if op == fake.OpRead {
			return boom
		}
		return nil
	})
	if _, err := s.Read(context.Background(), "a", fake.StageCurrent); !errors.Is(err, boom) {
		t.Fatalf("read with the hook failing: %v", err)
	}
	if _, err := s.Put(context.Background(), "a", "t", "v"); err != nil {
		t.Fatalf("put must not be affected by a read hook: %v", err)
	}
	s.FailWith(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx, "a", fake.StageCurrent); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled context: %v", err)
	}
	if v, ok := s.Value("a", fake.StageCurrent); !ok || v != "v" {
		t.Fatalf("Value = %q, %v", v, ok)
	}
}

func TestClearRevokesAndExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fake.NewClear("s3cret", time.Hour)
		ctx := context.Background()
		g1, err := c.Token(ctx, clear.NewClientSecret("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		if g1.ValidTill == nil || !g1.ValidTill.Equal(time.Now().Add(time.Hour)) {
			t.Fatalf("valid_till = %v, want now+1h", g1.ValidTill)
		}
		if !c.Live(g1.AccessToken.Reveal()) {
			t.Fatal("a fresh token is not live")
		}
		if _, err := clear.ParseResponse(200, []byte(`{"access_token":"`+g1.AccessToken.Reveal()+`","valid_till":null}`)); err != nil {
			t.Fatalf("the fake's token would not pass Clear's validation: %v", err)
		}
		g2, _ := c.Token(ctx, clear.NewClientSecret("s3cret"))
		if c.Live(g1.AccessToken.Reveal()) || !c.Live(g2.AccessToken.Reveal()) {
			t.Fatal("a new token must revoke the previous one")
		}
		time.Sleep(time.Hour)
		if c.Live(g2.AccessToken.Reveal()) {
			t.Fatal("a token is live at its valid_till")
		}
		_, err = c.Token(ctx, clear.NewClientSecret("wrong"))
		var ce *clear.Error
		if !errors.As(err, &ce) || ce.Kind != clear.KindAuth {
			t.Fatalf("wrong secret: %v, want a KindAuth *clear.Error", err)
		}
		if c.Requests() != 3 || len(c.Issued()) != 2 {
			t.Fatalf("requests %d, issued %d; want 3 and 2", c.Requests(), len(c.Issued()))
		}
	})
}

func TestClearNeverExpiring(t *testing.T) {
	c := fake.NewClear("", 0)
	g, err := c.Token(context.Background(), clear.NewClientSecret("any"))
	if err != nil || g.ValidTill != nil {
		t.Fatalf("grant %+v, %v; want a never-expiring token", g, err)
	}
}

func TestClearFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := fake.NewClear("s", time.Hour)
		c.Inject(fake.Fault{Err: fake.ServerError()}, fake.Fault{Delay: 10 * time.Second}, fake.Fault{Delay: time.Minute}, fake.Fault{Panic: "boom"})
		sec := clear.NewClientSecret("s")
		var ce *clear.Error
		if _, err := c.Token(context.Background(), sec); !errors.As(err, &ce) || ce.Kind != clear.KindTransient {
			t.Fatalf("first: %v, want the injected 500", err)
		}
		start := time.Now()
		if _, err := c.Token(context.Background(), sec); err != nil || time.Since(start) != 10*time.Second {
			t.Fatalf("second: %v after %s, want a token after 10s", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		issued := len(c.Issued())
		if _, err := c.Token(ctx, sec); !errors.As(err, &ce) || ce.Kind != clear.KindTransient || len(c.Issued()) != issued {
			t.Fatalf("third: %v, want a transient timeout and nothing issued", err)
		}
		func() {
			defer func() {
				if recover() != "boom" {
					t.Error("the Panic fault did not panic")
				}
			}()
			_, _ = c.Token(context.Background(), sec)
		}()
		if _, err := c.Token(context.Background(), sec); err != nil {
			t.Fatalf("after the faults: %v", err)
		}
	})
}

func TestClearDailyLimitResetsAtMidnightUTC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts at midnight UTC; move to the last minutes of the day.
		time.Sleep(23*time.Hour + 59*time.Minute)
		c := &fake.Clear{Secret: "s", Lifetime: time.Hour, DailyLimit: 2}
		sec := clear.NewClientSecret("s")
		for range 2 {
			if _, err := c.Token(context.Background(), sec); err != nil {
				t.Fatal(err)
			}
		}
		var ce *clear.Error
		if _, err := c.Token(context.Background(), sec); !errors.As(err, &ce) || ce.Kind != clear.KindRateLimited {
			t.Fatalf("third request of the day: %v, want 429", err)
		}
		time.Sleep(time.Minute)
		if _, err := c.Token(context.Background(), sec); err != nil {
			t.Fatalf("after midnight UTC: %v", err)
		}
	})
}
