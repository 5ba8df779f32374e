package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// TestGatewayHealGoesThroughTheGuard: the engine the gateway heals a revocation with
// (gatewayEngine, what `rotator gateway` and `rotator run` give it) refuses a client whose client
// secret is also another client's, as every other rotation does, without asking Clear: the request
// would revoke the other client's token. Before, the gateway was given the bare engine, which asked.
func TestGatewayHealGoesThroughTheGuard(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	cfg, err := config.Load(envList(w.Env(sharedSecretClients(t, w)...)).Lookup)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, w.API, w.ClearHTTPClient(), w.Logger())
	if err != nil {
		t.Fatal(err)
	}
	var after []rotation.Result
	e := gatewayEngine(a, func(_ context.Context, _ *rotation.Client, r rotation.Result) { after = append(after, r) })
	r := e.Run(context.Background(), a.Clients[0], rotation.Request{Force: true, Event: "gateway/heal"}, nil)
	var shared *rotation.SharedSecretError
	if r.Outcome != rotation.Failed || !errors.As(r.Err, &shared) {
		t.Fatalf("heal of a client sharing its client secret: %s %v, want failed with a *rotation.SharedSecretError", r.Outcome, r.Err)
	}
	if n := w.ClearRequests(); n != 0 {
		t.Fatalf("%d request(s) to Clear with a shared client secret", n)
	}
	if len(after) != 1 || after[0].Outcome != rotation.Failed {
		t.Fatalf("after was handed %d result(s), want the one", len(after))
	}
}
