package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/ops"

	"github.com/clear-rotator/clear-rotator/internal/app"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/gateway"
	"github.com/clear-rotator/clear-rotator/internal/logging"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// gatewayShutdown bounds how long SIGTERM waits for requests in flight through the gateway.
const gatewayShutdown = 30 * time.Second

// runGateway is `rotator gateway`: the standalone Clear gateway. It reads each client's token from
// its token secret (read-only rights suffice) and serves until ctx ends. With a client secret
// configured it also has the rotator's rights, and heals a revocation outside the rotator.
func runGateway(ctx context.Context, env Env, stderr io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := config.LoadForGateway(env.Lookup)
	if err != nil {
		return &usageError{err: fmt.Errorf("configuration:\n%w", err)}
	}
	gcfg := &cfg.Gateway
	log := newLogger(cfg, stderr)
	procs := gatewayProcs(env.Lookup)
	sm, err := app.SecretsManager(ctx)
	if err != nil {
		return &usageError{err: err}
	}
	a, err := app.New(cfg, sm, nil, log)
	if err != nil {
		return &usageError{err: err}
	}
	// A standalone gateway has no daemon delivering in the background: a token its heal stores is
	// delivered within the heal, retried as a command's are.
	after := deliverWithin(a)
	svc, err := gateway.Start(ctx, accessLog(gateway.ServiceOptions{Gateway: gcfg, Store: store.New(sm),
		Engine: gatewayEngine(a, after), Clients: a.Clients, Log: log}, cfg, stderr))
	if err != nil {
		return err
	}
	var opsSrv *http.Server
	opsAddr := ""
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			_ = svc.Shutdown(context.Background())
			return fmt.Errorf("ops listener (%s): %w; set it to another address, or empty to turn it off", config.EnvHTTPAddr, err)
		}
		// The daemon's ops port, with its probe protection: one of each.
		opsSrv, opsAddr = ops.Serve(ln, svc.OpsHandler(), ops.DefaultLimits, func(err error) {
			log.Error("the ops listener stopped", "error", err)
		}), ln.Addr().String()
	}
	log.Info("gateway started", "version", versionString(), "clients", len(cfg.Clients), "gateway_addr", svc.Addr,
		"tls", svc.TLS, "http_addr", opsAddr, "key", !gcfg.Key.IsZero() || gcfg.KeyID != "", "gomaxprocs", procs)
	reload := reloadEmbedded(svc, cfg.Gateway, deliverWithin)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			reloadStandalone(ctx, env, svc, reload, log)
		}
	}
	log.Info("shutting down the gateway: waiting for requests in flight", "grace", gatewayShutdown.String())
	sctx, cancel := context.WithTimeout(context.Background(), gatewayShutdown)
	defer cancel()
	err = svc.Shutdown(sctx)
	if opsSrv != nil {
		_ = opsSrv.Shutdown(sctx)
	}
	if err != nil {
		return fmt.Errorf("gateway shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// reloadStandalone loads the configuration again on SIGHUP and gives the gateway its clients;
// a configuration that does not load leaves the running one in force.
func reloadStandalone(ctx context.Context, env Env, svc *gateway.Service, reload func(context.Context, *app.App), log *slog.Logger) {
	log.Info("reloading the configuration")
	cfg, err := config.LoadForGateway(env.Lookup)
	if err != nil {
		log.Error("reload failed; keeping the previous configuration", "error", err)
		return
	}
	sm, err := app.SecretsManager(ctx)
	if err == nil {
		var a *app.App
		if a, err = app.New(cfg, sm, nil, log); err == nil {
			reload(ctx, a)
			return
		}
	}
	log.Error("reload failed; keeping the previous configuration", "error", err)
}

// startEmbedded starts the gateway `rotator run` serves when ROTATOR_GATEWAY_ADDR is set, or,
// without a listener, to send the probes of clients with a ROTATOR_PROBE_PATH; nil when neither
// is set. The daemon hands it each token the moment it is stored (an OnResult hook), and its
// watchers see tokens stored by any other rotator. It heals revocations with the daemon's engine;
// a SIGHUP gives it the reloaded clients (reloadEmbedded).
//
// after is handed each result of a heal, as the daemon's OnResult hooks are each check's (push
// delivery), so that a token the heal stores is told to the ERP like any other.
func startEmbedded(ctx context.Context, a *app.App, lookup config.LookupFunc, stderr io.Writer,
	after func(context.Context, *rotation.Client, rotation.Result)) (*gateway.Service, error) {
	gcfg := &a.Config.Gateway
	if !a.Config.StartsGateway() {
		return nil, nil
	}
	procs := runtime.GOMAXPROCS(0)
	if gcfg.Addr != "" {
		procs = gatewayProcs(lookup) // probes alone are no reason to change the daemon's
	}
	sm, err := app.SecretsManager(ctx)
	if err != nil {
		return nil, &usageError{err: err}
	}
	svc, err := gateway.Start(ctx, accessLog(gateway.ServiceOptions{Gateway: gcfg, Store: store.New(sm),
		Engine: gatewayEngine(a, after), Clients: a.Clients, Log: a.Log}, a.Config, stderr))
	if err != nil {
		return nil, err
	}
	if gcfg.Addr == "" {
		a.Log.Info("probes started", "clients", len(a.Config.Clients), "probe_interval", gcfg.ProbeInterval.String())
		return svc, nil
	}
	a.Log.Info("gateway started", "clients", len(a.Config.Clients), "gateway_addr", svc.Addr, "tls", svc.TLS,
		"key", !gcfg.Key.IsZero() || gcfg.KeyID != "", "embedded", true, "gomaxprocs", procs)
	return svc, nil
}

// gatewayProcs runs a process that serves the gateway on one processor (GOMAXPROCS=1) unless the
// environment sets GOMAXPROCS, and returns the setting in force.
//
// The gateway's work is a round trip to Clear per request, most of it in system calls. With more
// than one processor, Go's scheduler wakes and spins threads to spread that work, and on a small
// host shared with the ERP each wake-up costs more than it gives: on two cores beside wrk and
// nginx, one processor served 20.7k requests a second with a p99 of 1.1 ms, two 15.4-17.6k with
// 3.1-3.7 ms (BENCHMARKS.md 9). One processor still serves far more than an API client may send
// to Clear. A gateway that needs more says so with GOMAXPROCS. The start line shows the setting
// as the runtime reports it, so that the process tests check what is in force.
func gatewayProcs(lookup config.LookupFunc) int {
	if _, set := lookup("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
	return runtime.GOMAXPROCS(0)
}

// reloadEmbedded makes the gateway follow the clients a SIGHUP loaded (`rotator run`'s, or
// `rotator gateway`'s own). Its own settings
// (address, key, TLS, limits) are those it started with: a listener is not moved under its
// callers, and a changed one is said, not ignored.
//
// afterFor gives the heals' after (startEmbedded) for the reloaded configuration.
func reloadEmbedded(gw *gateway.Service, started config.Gateway,
	afterFor func(*app.App) func(context.Context, *rotation.Client, rotation.Result)) func(context.Context, *app.App) {
	return func(_ context.Context, a *app.App) {
		if a.Config.Gateway != started {
			a.Log.Warn("the gateway's own settings changed; they take effect at the next restart (its clients follow the reload)")
		}
		if err := gw.Reload(a.Clients, gatewayEngine(a, afterFor(a))); err != nil {
			a.Log.Error("the gateway keeps its previous clients", "error", err)
			return
		}
		a.Log.Info("the gateway serves the reloaded clients", "clients", len(a.Clients))
	}
}

// embeddedGateway runs the gateway as one of the daemon's services: it already serves when the
// daemon starts (startEmbedded bound it, so that a port in use is refused before anything runs),
// and stops after the daemon's last check.
type embeddedGateway struct{ *gateway.Service }

func (embeddedGateway) Start() error                     { return nil }
func (g embeddedGateway) Stop(ctx context.Context) error { return g.Shutdown(ctx) }

// writeMetricsTo adapts the gateway's metric writer to the daemon's.
func writeMetricsTo(s *gateway.Service) func(io.Writer) {
	return func(w io.Writer) {
		var b strings.Builder
		s.WriteMetrics(&b)
		io.WriteString(w, b.String())
	}
}

// accessLog sets o's access log: lines batched in front of stderr (so that no request waits for a
// write), in the rotator's level and format, the format chosen once as newLogger chooses it for
// stderr itself, since the batching writer is no terminal. Access lines are not coloured. When
// the format is JSON the gateway encodes its lines itself, in the same bytes.
func accessLog(o gateway.ServiceOptions, cfg *config.Config, stderr io.Writer) gateway.ServiceOptions {
	format := cfg.LogFormat
	if format == "" {
		format = logging.FormatJSON
		if logging.IsTerminal(stderr) {
			format = logging.FormatText
		}
	}
	o.AccessOut, o.AccessJSON = stderr, format == logging.FormatJSON
	o.AccessLog = func(w io.Writer) *slog.Logger {
		return logging.NewWith(w, logging.Options{Level: cfg.LogLevel, Format: format, NoColor: true})
	}
	return o
}

// checkGatewayHost is `rotator check --gateway`: the configuration loaded as `rotator gateway`
// loads it (config.LoadForGateway: a client secret is optional), then check's reads: each token
// secret, each client secret that is configured, the key's secret, the TLS pair, and what push
// delivery reads (a gateway with a client secret delivers the tokens its heal stores). It never
// calls Clear.
func checkGatewayHost(ctx context.Context, env Env, warnings []config.Warning, stdout, stderr io.Writer) error {
	cfg, err := config.LoadForGateway(env.Lookup)
	if err != nil {
		return &usageError{err: fmt.Errorf("configuration:\n%w", err)}
	}
	sm, err := app.SecretsManager(ctx)
	if err != nil {
		return &usageError{err: err}
	}
	a, err := app.New(cfg, sm, nil, newLogger(cfg, stderr))
	if err != nil {
		return &usageError{err: err}
	}
	return check(ctx, a, a.Clients, warnings, nil, true, stdout)
}

// readOnlyGatewayHint is the hint under a configuration refused for a client without a client
// secret when ROTATOR_GATEWAY_ADDR is set: the host may be meant as a read-only gateway, which
// `rotator gateway` serves without one; "" otherwise.
func readOnlyGatewayHint(lookup config.LookupFunc, err error) string {
	if addr, _ := lookup(config.EnvGatewayAddr); strings.TrimSpace(addr) == "" || !errors.Is(err, config.ErrNoClientSecret) {
		return ""
	}
	return "A gateway host that only reads the token secret needs no client secret: check it with 'rotator check --gateway'\n" +
		"and serve it with 'rotator gateway'; a client secret makes it a rotator (see docs/gateway.md)."
}

// checkGateway is check's look at what the gateway reads at start-up: the key's secret named by
// ROTATOR_GATEWAY_KEY_ID, read as gateway.Start reads it, when a gateway is started (serves), and
// the TLS pair. It prints a line for each, ok or FAIL, and returns the problems found. No line holds
// the key.
func checkGateway(ctx context.Context, a *app.App, serves bool, stdout io.Writer) int {
	failed := 0
	if g := &a.Config.Gateway; serves && g.KeyID != "" && g.Key.IsZero() {
		if err := gateway.CheckKey(ctx, g, a.Store); err != nil {
			failed++
			fmt.Fprintf(stdout, "gateway: FAIL: %s\n", strings.TrimPrefix(err.Error(), "gateway: "))
		} else {
			fmt.Fprintf(stdout, "gateway: ok: the key's secret %s holds a key\n", g.KeyID)
		}
	}
	if !checkGatewayTLS(a.Config.Gateway, stdout) {
		failed++
	}
	return failed
}

// checkGatewayTLS is check's look at the gateway's TLS pair, when one is configured: it loads the
// files as the gateway does at start-up (regular files, bounded), so that a pair `rotator run`
// would refuse is found before it is started. It reports whether the pair loads.
func checkGatewayTLS(g config.Gateway, stdout io.Writer) bool {
	if g.TLSCert == "" {
		return true
	}
	if _, err := gateway.NewCertReloader(g.TLSCert, g.TLSKey); err != nil {
		fmt.Fprintf(stdout, "gateway: FAIL: %v\n", err)
		return false
	}
	fmt.Fprintln(stdout, "gateway: ok: the TLS certificate and key load")
	return true
}

// gatewayReads says which variables `rotator gateway` reads, for its help: every client and global
// setting (with a client secret it heals through the engine, which reads them all), and of the
// daemon's, only its own and the ops listener's; not the schedule or the shutdown grace.
func gatewayReads(s config.Setting) bool {
	if s.Scope != config.DaemonOnly {
		return true
	}
	return s.Env == config.EnvHTTPAddr || strings.HasPrefix(s.Env, "ROTATOR_GATEWAY_")
}

// healEngine is what the gateway heals a revocation outside the rotator with: the App's Run, behind
// the guard every rotation goes through (a client secret that is also another client's must not be
// asked for a token: it would revoke that client's), and each result handed to after, as a daemon's
// check is handed to its hooks, so that a token the heal stores is push-delivered too.
type healEngine struct {
	app   *app.App
	after func(context.Context, *rotation.Client, rotation.Result)
}

func gatewayEngine(a *app.App, after func(context.Context, *rotation.Client, rotation.Result)) gateway.Engine {
	return healEngine{app: a, after: after}
}

func (h healEngine) Run(ctx context.Context, c *rotation.Client, req rotation.Request, cache *rotation.Cache) rotation.Result {
	r := h.app.Run(ctx, c, req, cache)
	if h.after != nil {
		h.after(ctx, c, r)
	}
	return r
}

// deliverWithin tells the ERP of a token a result stored, within the call (app.App.Deliver, as
// `rotator rotate` does), or records it as not delivered of a kind the token secret is marked as
// told by that this process does not tell; nil when it can do neither. A delivery that finally
// fails is logged and recorded on the token secret by the notifier, which status shows.
func deliverWithin(a *app.App) func(context.Context, *rotation.Client, rotation.Result) {
	d := a.Deliver(a.Log, a.Recorder(nil, a.Log))
	if d == nil {
		return nil
	}
	return func(ctx context.Context, c *rotation.Client, r rotation.Result) {
		if r.Stored != nil {
			_ = d(ctx, c, r, false)
		}
	}
}
