// Package app wires the rotator together from its configuration: the Secrets Manager client, one
// Clear client per configured API client, and the rotation engine. The CLI, the daemon and the
// Lambda all start here, so they share every rule and differ only in how they are driven.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

// App is a configured rotator.
type App struct {
	Config  *config.Config
	Engine  *rotation.Engine
	Clients []*rotation.Client
	Log     *slog.Logger
	// Guard refuses clients whose client secret is also another's; it reads the secrets at most
	// once per fleet.GuardTTL.
	Guard *fleet.Guard
	// Store is the engine's Secrets Manager store, for what only push delivery needs of it (the
	// token secret's ARN and tags); nil in an App built by hand.
	Store *store.SecretsManager

	// push is push delivery's state (notify.go), built on first use.
	pushInit sync.Once
	push     *Push
}

// SecretsManager builds a Secrets Manager client from the standard AWS configuration chain
// (AWS_REGION, AWS_ENDPOINT_URL, credentials from the environment, profile or role).
func SecretsManager(ctx context.Context) (*secretsmanager.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("no AWS region: set AWS_REGION")
	}
	return secretsmanager.NewFromConfig(cfg), nil
}

// New builds the engine and the clients of cfg. httpClient, if not nil, is the base for the Clear
// clients (tests inject faults through it).
func New(cfg *config.Config, api store.API, httpClient *http.Client, log *slog.Logger) (*App, error) {
	sm := store.New(api)
	a := &App{
		Config: cfg,
		Engine: rotation.NewEngine(rotation.Engine{Store: sm, Log: log, ClearTimeout: cfg.ClearTimeout}),
		Log:    log,
		Store:  sm,
	}
	for _, c := range cfg.Clients {
		hc := &http.Client{Timeout: cfg.ClearTimeout}
		if httpClient != nil {
			copied := *httpClient
			hc = &copied
		}
		cc, err := clear.NewClient(c.BaseURL, hc)
		if err != nil {
			return nil, fmt.Errorf("client %q: %w", c.Name, err)
		}
		a.Clients = append(a.Clients, &rotation.Client{Client: c, Clear: cc})
	}
	a.Guard = &fleet.Guard{Engine: a.Engine, All: a.Clients, TTL: fleet.GuardTTL}
	return a, nil
}

// Run looks at c through the engine, unless the Guard refuses it: the daemon's one look at a
// client.
func (a *App) Run(ctx context.Context, c *rotation.Client, req rotation.Request, cache *rotation.Cache) rotation.Result {
	if a.Guard == nil {
		return a.Engine.Run(ctx, c, req, cache)
	}
	return a.Guard.Run(ctx, c, req, cache)
}

// Select returns the named client, or every client when name is empty.
func (a *App) Select(name string) ([]*rotation.Client, error) {
	if name == "" {
		return a.Clients, nil
	}
	for _, c := range a.Clients {
		if c.Name == name {
			return []*rotation.Client{c}, nil
		}
	}
	names := make([]string, len(a.Clients))
	for i, c := range a.Clients {
		names[i] = c.Name
	}
	if !config.ValidName(name) {
		return nil, fmt.Errorf("no client by that name: a value of %d characters that no client name could be, not shown (configured: %v)", len(name), names)
	}
	if s := suggest.Closest(name, names); s != "" {
		return nil, fmt.Errorf("no client named %q; did you mean %q? (configured: %v)", name, s, names)
	}
	return nil, fmt.Errorf("no client named %q (configured: %v)", name, names)
}

// SharedSecrets reads every client secret of the configuration and fails, naming them, when two
// API clients hold the same value under different names: each rotation of one would revoke the
// other's token. The daemon refuses to start with such a configuration (and keeps its old one on
// a reload); `check` reports it, and the Guard refuses the clients concerned later on.
func (a *App) SharedSecrets(ctx context.Context) error {
	var errs []error
	for _, err := range a.Engine.SharedSecrets(ctx, a.Clients) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
