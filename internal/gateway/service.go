package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// Engine is what the gateway asks for a forced rotation after a revocation outside the rotator
// (rotation.Engine has it).
type Engine interface {
	Run(ctx context.Context, c *rotation.Client, req rotation.Request, cache *rotation.Cache) rotation.Result
}

// ServiceOptions configures a Service: the gateway as `rotator gateway` and `rotator run` serve
// it.
type ServiceOptions struct {
	Gateway *config.Gateway
	// Store reads the token secrets and the key's secret.
	Store SecretReader
	// Clients are the configured clients, each served under its name, with its token header. The
	// Engine heals their revocations; a client without a client secret (a standalone gateway with
	// read-only rights) is reported on, never healed. Engine nil: no client is healed.
	Engine  Engine
	Clients []*rotation.Client
	Log     *slog.Logger
	// Transport reaches Clear; nil means NewTransport.
	Transport http.RoundTripper
	// AccessOut, when set, is where the access log's lines go, through a BatchWriter the service
	// owns (flushed at Shutdown); AccessLog builds the logger that formats them on that writer.
	// Unset: the access log goes through Log, a write per line.
	AccessOut io.Writer
	AccessLog func(w io.Writer) *slog.Logger
}

// Service is a running gateway: its token and key watchers, its handler and its listener.
type Service struct {
	gw       *Gateway
	holders  map[string]*Holder
	watchers []*Watcher
	byName   map[string]*Watcher
	srv      *Server
	ln       net.Listener
	log      *slog.Logger
	batch    *BatchWriter // the access log's, when batched
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// Addr is the address the gateway listens on (with port 0, the port the kernel chose).
	Addr string
	// TLS reports whether it serves TLS.
	TLS bool
}

// Start reads the key (when one is configured by id), looks once at every token secret, listens,
// and serves until Shutdown. It fails when the key cannot be read: a gateway that asks for a key
// it does not have would refuse every caller.
func Start(ctx context.Context, o ServiceOptions) (*Service, error) {
	g := o.Gateway
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{holders: map[string]*Holder{}, byName: map[string]*Watcher{}, log: log, cancel: cancel}
	fail := func(err error) (*Service, error) {
		cancel()
		if s.batch != nil {
			_ = s.batch.Close()
		}
		return nil, err
	}

	keys, keyWatcher, err := s.keys(wctx, o)
	if err != nil {
		return fail(err)
	}
	var clients []Client
	for _, c := range o.Clients {
		h := &Holder{}
		w := &Watcher{Store: o.Store, SecretID: c.TokenSecretID, Changed: TokenFeed(h, log, c.Name), Poll: g.Poll, Log: log, What: "token"}
		h.OnWait = w.Nudge
		s.holders[c.Name], s.byName[c.Name] = h, w
		s.watchers = append(s.watchers, w)
		if _, err := w.Check(wctx); err != nil {
			log.Warn("gateway: the token secret could not be read at start; requests wait for it", "client", c.Name, "error", err)
		}
		gc := Client{Name: c.Name, BaseURL: c.BaseURL, Header: c.GatewayTokenHeader, Source: h, Confirm: w.Check}
		if o.Engine != nil && (!c.ClientSecret.IsZero() || c.ClientSecretID != "") {
			gc.Heal = s.healer(o.Engine, c, h, w)
		}
		clients = append(clients, gc)
	}
	gw, err := New(Options{Clients: clients, Keys: keys, ReplayLimit: g.ReplayLimit, Hold: g.Hold,
		UpstreamTimeout: g.UpstreamTimeout, Transport: o.Transport, MaxConns: g.MaxConns, Log: log, AccessLog: s.accessLog(o)})
	if err != nil {
		return fail(err)
	}
	s.gw = gw
	if err := s.listen(g); err != nil {
		return fail(err)
	}
	for _, w := range append(s.watchers, keyWatcher) {
		if w == nil {
			continue
		}
		s.wg.Go(func() { w.Run(wctx) })
	}
	s.wg.Go(func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("gateway: the listener stopped", "error", err)
		}
	})
	return s, nil
}

// accessLog returns the gateway's access logger: on a BatchWriter when o says where to, else nil
// (the gateway then logs through Log).
func (s *Service) accessLog(o ServiceOptions) *slog.Logger {
	if o.AccessOut == nil || o.AccessLog == nil {
		return nil
	}
	s.batch = NewBatchWriter(o.AccessOut, 0, 0)
	s.batch.OnDrop = func(n uint64) {
		s.log.Warn("gateway: access log lines dropped: the log's writer did not keep up", "lines", n, "total", s.batch.Dropped())
	}
	return o.AccessLog(s.batch)
}

// keys builds the key set: a literal key, or one read from Secrets Manager and followed.
func (s *Service) keys(ctx context.Context, o ServiceOptions) (*Keys, *Watcher, error) {
	g := o.Gateway
	switch {
	case g.Key != "":
		return NewKeys(NewKey(g.Key), nil), nil, nil
	case g.KeyID != "":
		keys := NewKeys(Key{}, nil)
		w := &Watcher{Store: o.Store, SecretID: g.KeyID, Changed: KeyFeed(keys, g.KeyGrace, s.log), Poll: g.Poll, Log: s.log, What: "key"}
		if _, err := w.Check(ctx); err != nil {
			return nil, nil, fmt.Errorf("gateway: reading the key's secret %s: %w", g.KeyID, err)
		}
		if !keys.Enabled() {
			return nil, nil, fmt.Errorf("gateway: the key's secret %s holds no key", g.KeyID)
		}
		return keys, w, nil
	}
	return nil, nil, nil
}

// listen binds the gateway's address with its limits, and TLS when configured.
func (s *Service) listen(g *config.Gateway) error {
	limits := DefaultLimits
	limits.MaxConns = g.MaxConns
	limits.Write = g.Hold + 2*g.UpstreamTimeout + 30*time.Second
	limits.Read = g.UpstreamTimeout
	s.srv = NewServer(s.gw, limits)
	var tlsConfig *tls.Config
	if g.TLSCert != "" {
		r, err := NewCertReloader(g.TLSCert, g.TLSKey)
		if err != nil {
			return err
		}
		tlsConfig = r.TLSConfig()
	}
	ln, err := net.Listen("tcp", g.Addr)
	if err != nil {
		return fmt.Errorf("gateway listener: %w", err)
	}
	s.Addr = ln.Addr().String()
	s.ln = LimitListener(ln, limits.MaxConns)
	if tlsConfig != nil {
		s.ln, s.TLS = tls.NewListener(s.ln, tlsConfig), true
	}
	return nil
}

// healer asks the engine for one forced rotation for a revoked version. The event id is the same
// in every gateway and daemon that sees the revocation, so they make one request between them.
func (s *Service) healer(e Engine, c *rotation.Client, h *Holder, w *Watcher) func(context.Context, string) {
	return func(ctx context.Context, version string) {
		// The engine forces whatever AWSCURRENT holds; a rotation that landed since the judgement
		// must not be followed by another.
		if cur, err := w.Check(ctx); err != nil || cur != version {
			w.Nudge()
			return
		}
		// Replaces closes the window between this look and the engine's own read: a token stored
		// meanwhile is not forced away. The token is stored under a version derived from the
		// revoked one, so that status can tell when the heal stored it (rotation.HealVersion).
		r := e.Run(ctx, c, rotation.Request{Force: true, Event: EventID(version), Replaces: version,
			TokenVersion: rotation.HealVersion(version)}, nil)
		s.log.Info("gateway: asked for a rotation after a revocation outside the rotator", "client", c.Name,
			"version", version, "outcome", string(r.Outcome), "message", r.Message)
		if r.Stored != nil {
			s.Stored(c.Name, r.Stored)
			return
		}
		w.Nudge()
	}
}

// Stored hands the gateway a token the moment it is stored (rotation.Result.Stored).
func (s *Service) Stored(client string, st *rotation.Stored) {
	if s == nil || st == nil {
		return
	}
	if h := s.holders[client]; h != nil {
		h.Set(Token{Value: st.Token.AccessToken, Version: st.VersionID, ValidTill: st.Token.ValidTill})
	}
}

// Ready reports whether every client holds a live token.
func (s *Service) Ready() (bool, string) {
	var missing []string
	for name, h := range s.holders {
		if t, ok := h.Current(); !ok || !t.Live(time.Now()) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("no-live-token: %d client(s)", len(missing))
	}
	return true, "ok"
}

// WriteMetrics appends the gateway's metric families.
func (s *Service) WriteMetrics(b *strings.Builder) {
	s.gw.WriteMetrics(b)
	var dropped uint64
	if s.batch != nil {
		dropped = s.batch.Dropped()
	}
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", MetricAccessLogDropped, MetricHelp[MetricAccessLogDropped],
		MetricAccessLogDropped, MetricAccessLogDropped, dropped)
}

// Handler is the gateway's handler, for tests that serve it themselves.
func (s *Service) Handler() http.Handler { return s.gw }

// Shutdown stops accepting, lets requests in flight finish within ctx, and stops the watchers.
func (s *Service) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	if s.batch != nil {
		_ = s.batch.Close() // the lines of the last requests
	}
	return err
}
