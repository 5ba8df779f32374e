package rotation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// A rotation made while API client 2's secret cannot be read (degraded mode) keeps API client 2's
// bookkeeping (its day's count, blocks, backoff): once its secret is readable again it must not
// spend a second daily limit the same UTC day. The claim used to drop its entry, found by an audit.
func TestAnUnreadableSecretKeepsItsAPIClientsCount(t *testing.T) {
	w, c := newWorld(t, rig.Options{Lifetime: time.Hour, APIClients: 2, DailyLimit: 3})
	c.DailyLimit = 3
	id := mototest.Name(t, "client2")
	if _, err := w.SM.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(w.Secrets[1])}); err != nil {
		t.Fatal(err)
	}
	c.ClientSecret2, c.ClientSecretID2 = clear.ClientSecret{}, id
	e := w.Engine("a")
	expect(t, e.Rotate(context.Background(), c, false), rotation.Rotated) // API client 1
	for range 3 {
		w.Clock.Advance(2 * time.Minute)
		expect(t, e.Run(context.Background(), c, rotation.Request{Force: true, Slot: 2}, nil), rotation.Rotated)
	}
	w.Clock.Advance(2 * time.Minute)
	expect(t, e.Run(context.Background(), c, rotation.Request{Force: true, Slot: 2}, nil), rotation.Limited)
	before := w.Emu.RequestsToday(w.Secrets[1])

	// API client 2's secret cannot be read for a while; a forced rotation goes to API client 1.
	w.API.Fail(func(op string, in any) error {
		if g, ok := in.(*secretsmanager.GetSecretValueInput); ok && aws.ToString(g.SecretId) == id {
			return errors.New("injected: AccessDenied on client secret 2")
		}
		return nil
	})
	w.Clock.Advance(2 * time.Minute)
	r := e.Run(context.Background(), c, rotation.Request{Force: true, Slot: 1}, nil)
	expect(t, r, rotation.Rotated)
	w.API.Fail(nil)

	w.Clock.Advance(2 * time.Minute)
	r = e.Run(context.Background(), c, rotation.Request{Force: true, Slot: 2}, nil)
	if r.Outcome != rotation.Limited || w.Emu.RequestsToday(w.Secrets[1]) != before {
		t.Fatalf("API client 2 at its daily limit of 3 asked again the same day: outcome %s (%s); Clear saw %d requests from it today (was %d)",
			r.Outcome, r.Message, w.Emu.RequestsToday(w.Secrets[1]), before)
	}
}
