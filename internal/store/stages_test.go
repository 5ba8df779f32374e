package store_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// TestStagesAndMoveStage runs Stages, MoveStage and a Put that names AWSCURRENT against moto and
// against the in-memory fake.SecretsManager, which must agree with Secrets Manager. The one place
// where moto does not is pinned, so that a moto upgrade that fixes it is noticed.
func TestStagesAndMoveStage(t *testing.T) {
	moto := mototest.Shared(t)
	t.Run("moto", func(t *testing.T) { stagesScenario(t, moto.Client(), true) })
	t.Run("fake", func(t *testing.T) { stagesScenario(t, fake.NewSecretsManager(nil), false) })
}

func stagesScenario(t *testing.T, api store.API, isMoto bool) {
	s := store.New(api)
	ctx := context.Background()
	id := mototest.Name(t, "stages")
	stagesAre := func(what string, want map[string]string) {
		t.Helper()
		if got, err := s.Stages(ctx, id); err != nil || !maps.Equal(got, want) {
			t.Fatalf("%s: Stages = %v, %v; want %v", what, got, err, want)
		}
	}

	if _, err := s.Stages(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stages of a missing secret: %v", err)
	}
	if err := s.Create(ctx, id, "v0", "test"); err != nil {
		t.Fatal(err)
	}
	v0, err := s.Read(ctx, id, "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}

	// A Put whose stages include AWSCURRENT moves it, and AWSPREVIOUS follows, as with no stages.
	v1, err := s.Put(ctx, id, "0b0b0b0b-0000-4000-8000-000000000001", "v1", "AWSCURRENT", "MINE")
	if err != nil {
		t.Fatal(err)
	}
	stagesAre("after a Put with AWSCURRENT", map[string]string{"AWSCURRENT": v1, "MINE": v1, "AWSPREVIOUS": v0.ID})
	if cur, err := s.Read(ctx, id, "AWSCURRENT"); err != nil || cur.Value != "v1" {
		t.Fatalf("AWSCURRENT after a Put with AWSCURRENT: %+v %v", cur, err)
	}

	v2, err := s.Put(ctx, id, "0b0b0b0b-0000-4000-8000-000000000002", "v2", "AWSPENDING")
	if err != nil {
		t.Fatal(err)
	}
	stagesAre("after a pending Put", map[string]string{"AWSCURRENT": v1, "MINE": v1, "AWSPREVIOUS": v0.ID, "AWSPENDING": v2})

	// Promote AWSPENDING's version the way a rotation's finishSecret does.
	if err := s.MoveStage(ctx, id, "AWSCURRENT", v2, v1); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveStage(ctx, id, "AWSPENDING", "", v2); err != nil {
		t.Fatal(err)
	}
	stagesAre("after MoveStage", map[string]string{"AWSCURRENT": v2, "AWSPREVIOUS": v1, "MINE": v1})
	if cur, err := s.Read(ctx, id, "AWSCURRENT"); err != nil || cur.ID != v2 || cur.Value != "v2" {
		t.Fatalf("AWSCURRENT after MoveStage: %+v %v", cur, err)
	}

	// Moving a label without naming the version that holds it is refused by Secrets Manager
	// (InvalidParameterException). moto 5.2.1 moves it anyway; the test moves it back.
	err = s.MoveStage(ctx, id, "MINE", v0.ID, "")
	if isMoto {
		if err != nil {
			t.Fatalf("moto now refuses a move that does not name the holder (%v): drop this quirk", err)
		}
		if err := s.MoveStage(ctx, id, "MINE", v1, v0.ID); err != nil {
			t.Fatal(err)
		}
	} else {
		var se *store.Error
		if !errors.As(err, &se) || se.Op != "UpdateSecretVersionStage" || se.Code != "InvalidParameterException" || store.Retryable(err) {
			t.Fatalf("a move that does not name the holder: %v", err)
		}
	}
	// A label named on a version that does not hold it is refused by both.
	err = s.MoveStage(ctx, id, "AWSCURRENT", v0.ID, v1)
	if se := (*store.Error)(nil); !errors.As(err, &se) || store.Retryable(err) {
		t.Fatalf("a move from a version without the label: %v", err)
	}
	if err := s.MoveStage(ctx, mototest.Name(t, "missing"), "X", v0.ID, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MoveStage on a missing secret: %v", err)
	}

	// After UpdateSecretVersionStage moved AWSCURRENT, Secrets Manager's next AWSCURRENT put makes
	// the version it leaves (v2) AWSPREVIOUS. moto 5.2.1 gives AWSPREVIOUS to the version that was
	// current before the move (v1), because its idea of the default version does not follow
	// UpdateSecretVersionStage (see TOOLING.md), and it replaces that version's labels with
	// AWSPREVIOUS alone, so v1 loses MINE.
	//
	// moto's answer here is not even stable: when the versions were created within the same
	// second, it has also been seen to leave AWSCURRENT on v2. So only the fake, which keeps
	// Secrets Manager's documented rule, is held to it; moto is only asked to answer.
	v3, err := s.Put(ctx, id, "0b0b0b0b-0000-4000-8000-000000000003", "v3", "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}
	if isMoto {
		if got, err := s.Stages(ctx, id); err != nil || got["AWSCURRENT"] == "" {
			t.Fatalf("after an AWSCURRENT Put following a move: Stages = %v, %v", got, err)
		}
		return
	}
	stagesAre("after an AWSCURRENT Put following a move", map[string]string{"AWSCURRENT": v3, "AWSPREVIOUS": v2, "MINE": v1})
}

// TestReadBinary reports a binary secret as unsupported instead of reading it as empty.
func TestReadBinary(t *testing.T) {
	moto := mototest.Shared(t)
	api := moto.Client()
	ctx := context.Background()
	id := mototest.Name(t, "binary")
	if _, err := api.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretBinary: []byte("bytes")}); err != nil {
		t.Fatal(err)
	}
	v, err := store.New(api).Read(ctx, id, "AWSCURRENT")
	if !errors.Is(err, store.ErrBinary) || v.ID == "" || v.Value != "" {
		t.Fatalf("Read of a binary secret = %+v, %v; want its version id and ErrBinary", v, err)
	}
	if store.Retryable(err) {
		t.Fatal("a binary secret is not worth retrying")
	}
}
