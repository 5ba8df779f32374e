package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// TestListVersions lists a secret's versions, the unlabelled ones included, with their creation
// times, against moto and the in-memory fake; on the fake, across pages (moto answers one page).
// The version quota's rule counts what it returns.
func TestListVersions(t *testing.T) {
	moto := mototest.Shared(t)
	t.Run("moto", func(t *testing.T) { listScenario(t, moto.Client(), 3, true) })
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	sm := fake.NewSecretsManager(func() time.Time { return at })
	t.Run("fake", func(t *testing.T) { listScenario(t, sm, 3, false) })
	// 250 versions are three pages of 100.
	t.Run("fake pages", func(t *testing.T) { listScenario(t, sm, 250, false) })
	if n := sm.Calls()["ListSecretVersionIds"]; n != 2+4 {
		t.Errorf("the fake answered %d listings, want 6 (a missing secret and one page; a missing secret and three pages)", n)
	}
	// No more than five pages are read, whatever the secret holds.
	t.Run("fake bound", func(t *testing.T) {
		big := fake.NewSecretsManager(func() time.Time { return at })
		listScenario(t, big, 600, false)
		if n := big.Calls()["ListSecretVersionIds"]; n != 1+5 {
			t.Errorf("%d listings, want 6 (a missing secret, then five pages)", n)
		}
	})
}

func listScenario(t *testing.T, api store.API, puts int, isMoto bool) {
	s := store.New(api)
	ctx := context.Background()
	id := mototest.Name(t, "versions")
	// moto answers a missing secret with a 500 (the SDK retries it for seconds), not
	// ResourceNotFoundException as Secrets Manager does.
	if _, err := s.ListVersions(ctx, id); !isMoto && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a missing secret: %v", err)
	}
	if err := s.Create(ctx, id, "v0", "test"); err != nil {
		t.Fatal(err)
	}
	for i := range puts {
		// Unlabelled versions: the ones Secrets Manager lists only with IncludeDeprecated.
		if _, err := s.Put(ctx, id, fmt.Sprintf("0a0a0a0a-0000-4000-8000-%012d", i), fmt.Sprintf("v%d", i+1), "SOME_LABEL"); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := s.ListVersions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := min(puts+1, 500); len(vs) != want {
		t.Fatalf("listed %d versions, want %d", len(vs), want)
	}
	labelled := 0
	for _, v := range vs {
		if v.ID == "" || v.Created.IsZero() {
			t.Fatalf("version %+v: no id or creation time", v)
		}
		if len(v.Stages) > 0 {
			labelled++
		}
	}
	if puts <= 3 && labelled != 2 {
		t.Fatalf("%d labelled versions, want 2 (AWSCURRENT and SOME_LABEL): %+v", labelled, vs)
	}
}
