package store_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }

func TestSecretsManagerSemantics(t *testing.T) {
	moto := mototest.Shared(t)
	s := store.New(moto.Client())
	ctx := context.Background()
	id := mototest.Name(t, "secret")

	if _, err := s.Read(ctx, id, "AWSCURRENT"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	if err := s.Create(ctx, id, "{}", "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, id, "other", "test"); err != nil {
		t.Fatalf("creating an existing secret must not fail: %v", err)
	}
	if _, err := s.Read(ctx, id, "ROTATOR_STATE"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing stage: %v", err)
	}
	const tok = "0a0a0a0a-0000-4000-8000-000000000001"
	v1, err := s.Put(ctx, id, tok, "state-1", "ROTATOR_STATE")
	if err != nil {
		t.Fatal(err)
	}
	// The same token and value is a no-op returning the same version: a retried write is safe.
	again, err := s.Put(ctx, id, tok, "state-1", "ROTATOR_STATE")
	if err != nil || again != v1 {
		t.Fatalf("idempotent put: %q, %v (want %q)", again, err, v1)
	}
	// The same token with another value loses the compare-and-set.
	_, err = s.Put(ctx, id, tok, "state-2", "ROTATOR_STATE")
	var se *store.Error
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &se) || se.Code != "ResourceExistsException" {
		t.Fatalf("conflicting put: %v", err)
	}
	if strings.Contains(err.Error(), "state-2") {
		t.Fatal("the error holds the secret value")
	}
	cur, err := s.Read(ctx, id, "AWSCURRENT")
	if err != nil || cur.Value != "{}" {
		t.Fatalf("a custom-staged put must leave AWSCURRENT alone: %+v %v", cur, err)
	}
	st, err := s.Read(ctx, id, "ROTATOR_STATE")
	if err != nil || st.Value != "state-1" || st.ID != v1 {
		t.Fatalf("state: %+v %v", st, err)
	}
	if _, err := s.Put(ctx, id, "0a0a0a0a-0000-4000-8000-000000000002", "token"); err != nil {
		t.Fatal(err)
	}
	cur, _ = s.Read(ctx, id, "AWSCURRENT")
	prev, _ := s.Read(ctx, id, "AWSPREVIOUS")
	if cur.Value != "token" || prev.Value != "{}" {
		t.Fatalf("a default put must become AWSCURRENT and demote the old one: %q %q", cur.Value, prev.Value)
	}
}

type hangingTransport struct{}

func (hangingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	return nil, r.Context().Err()
}

func TestCallsHaveATimeout(t *testing.T) {
	moto := mototest.Shared(t)
	c := moto.Client(func(o *secretsmanager.Options) {
		o.HTTPClient = &http.Client{Transport: hangingTransport{}}
		o.RetryMaxAttempts = 1
	})
	s := &store.SecretsManager{API: c, Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := s.Read(context.Background(), "any", "AWSCURRENT")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a hung call returned %v after %v", err, time.Since(start))
	}
}
