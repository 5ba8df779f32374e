// Package app wires the rotator together from its configuration: the Secrets Manager client, one
// Clear client per configured API client, and the rotation engine. The CLI, the daemon and the
// Lambda all start here, so they share every rule and differ only in how they are driven.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// App is a configured rotator.
type App struct {
	Config  *config.Config
	Engine  *rotation.Engine
	Clients []*rotation.Client
	Log     *slog.Logger

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
	a := &App{
		Config: cfg,
		Engine: &rotation.Engine{Store: store.New(api), Log: log, ClearTimeout: cfg.ClearTimeout},
		Log:    log,
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
		a.Clients = append(a.Clients, &rotation.Client{
			Name: c.Name, BaseURL: c.BaseURL, Clear: cc,
			ClientSecret: c.ClientSecret, ClientSecretID: c.ClientSecretID,
			ClientSecret2: c.ClientSecret2, ClientSecretID2: c.ClientSecretID2, TokenSecretID: c.TokenSecretID,
			DailyLimit: c.DailyLimit, RenewBefore: c.RenewBefore, MaxAge: c.MaxAge,
		})
	}
	return a, nil
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
	return nil, fmt.Errorf("no client named %q (configured: %v)", name, names)
}
