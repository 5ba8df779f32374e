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
	"sync/atomic"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/secret"
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
	// AccessJSON says that AccessLog's loggers write JSON as logging.New does, so that the
	// gateway may encode the access lines itself (Options.AccessJSON).
	AccessJSON bool
}

// Service is a running gateway: its token and key watchers, its handler and its listener.
type Service struct {
	// set is the part a reload replaces: the clients' handler, holders and watchers.
	set    atomic.Pointer[clientSet]
	opts   ServiceOptions
	keyset *Keys
	access *slog.Logger
	reload sync.Mutex // one Reload at a time
	srv    *Server
	ln     net.Listener
	log    *slog.Logger
	batch  *BatchWriter // the access log's, when batched
	wctx   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// Addr is the address the gateway listens on (with port 0, the port the kernel chose).
	Addr string
	// TLS reports whether it serves TLS.
	TLS bool
}

// clientSet is the gateway for one list of clients: its handler, and each client's token holder
// and the watcher that feeds it (stopped by its cancel).
type clientSet struct {
	gw      *Gateway
	holders map[string]*Holder
	tokens  map[string]*tokenWatch
}

type tokenWatch struct {
	secretID string
	holder   *Holder
	watcher  *Watcher
	cancel   context.CancelFunc
}

// Start reads the key (when one is configured by id), looks once at every token secret, listens
// (unless Addr is empty: probes only), sends the clients' probes, and serves until Shutdown. It fails when the key cannot be read: a gateway that asks for a key
// it does not have would refuse every caller.
func Start(ctx context.Context, o ServiceOptions) (*Service, error) {
	g := o.Gateway
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{opts: o, log: log, wctx: wctx, cancel: cancel}
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
	s.keyset, s.access = keys, s.accessLog(o)
	set, err := s.build(o.Clients, o.Engine, nil)
	if err != nil {
		return fail(err)
	}
	s.set.Store(set)
	if g.Addr != "" {
		if err := s.listen(g); err != nil {
			return fail(err)
		}
		s.wg.Go(func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("gateway: the listener stopped", "error", err)
			}
		})
	}
	if keyWatcher != nil {
		s.wg.Go(func() { keyWatcher.Run(wctx) })
	}
	if g.ProbeInterval > 0 {
		s.wg.Go(func() { s.probes(wctx, g.ProbeInterval) })
	}
	return s, nil
}

// build makes the gateway for clients. A client whose token secret old already watches keeps
// its holder and watcher (and the token it holds); every other gets a new pair, which looks at its
// token secret once before build returns, and then watches it.
func (s *Service) build(clients []*rotation.Client, e Engine, old *clientSet) (*clientSet, error) {
	g, log := s.opts.Gateway, s.log
	set := &clientSet{holders: map[string]*Holder{}, tokens: map[string]*tokenWatch{}}
	var gcs []Client
	for _, c := range clients {
		tw := old.token(c.Name, c.TokenSecretID)
		if tw == nil {
			h := &Holder{}
			w := &Watcher{Store: s.opts.Store, SecretID: c.TokenSecretID, Changed: TokenFeed(h, log, c.Name), Poll: s.poll(), Log: log, What: "token"}
			h.OnWait = w.Nudge
			ctx, cancel := context.WithCancel(s.wctx)
			tw = &tokenWatch{secretID: c.TokenSecretID, holder: h, watcher: w, cancel: cancel}
			if _, err := w.Check(ctx); err != nil {
				log.Warn("gateway: the token secret could not be read at start; requests wait for it", "client", c.Name, "error", err)
			}
			s.wg.Go(func() { w.Run(ctx) })
		}
		set.holders[c.Name], set.tokens[c.Name] = tw.holder, tw
		gc := Client{Name: c.Name, BaseURL: c.BaseURL, Header: c.GatewayTokenHeader, Source: tw.holder, Confirm: tw.watcher.Check,
			ProbePath: c.ProbePath}
		if e != nil && c.HasClientSecret() {
			gc.Heal = s.healer(e, c, tw.holder, tw.watcher)
		}
		gcs = append(gcs, gc)
	}
	gw, err := New(Options{Clients: gcs, Keys: s.keyset, ReplayLimit: g.ReplayLimit, Hold: g.Hold,
		UpstreamTimeout: g.UpstreamTimeout, Transport: s.transport(), MaxConns: g.MaxConns, Log: log, AccessLog: s.access,
		AccessJSON: s.accessJSON(), Continues: old.gateway()})
	if err != nil {
		for name, tw := range set.tokens {
			if old.token(name, tw.secretID) == nil {
				tw.cancel()
			}
		}
		return nil, err
	}
	set.gw = gw
	return set, nil
}

// poll is how often a token secret is looked at: the gateway's Poll, or, with no listener (only
// probes, whose 401 looks at once), the probes' interval if that is longer: nobody else waits for
// a token there, and each look is a DescribeSecret.
func (s *Service) poll() time.Duration {
	if g := s.opts.Gateway; g.Addr == "" {
		return max(g.Poll, g.ProbeInterval)
	}
	return s.opts.Gateway.Poll
}

// transport is the one transport to Clear every client set shares, so that a reload keeps the
// connections.
func (s *Service) transport() http.RoundTripper {
	if s.opts.Transport == nil {
		s.opts.Transport = NewTransport(s.opts.Gateway.UpstreamTimeout, s.opts.Gateway.MaxConns)
	}
	return s.opts.Transport
}

func (cs *clientSet) gateway() *Gateway {
	if cs == nil {
		return nil
	}
	return cs.gw
}

// token returns the watch of client name if it watches secretID.
func (cs *clientSet) token(name, secretID string) *tokenWatch {
	if cs == nil {
		return nil
	}
	if tw := cs.tokens[name]; tw != nil && tw.secretID == secretID {
		return tw
	}
	return nil
}

// Reload serves clients from now on, healed by e: `rotator run`'s SIGHUP. Clients whose token
// secret is unchanged keep their token; requests in flight finish with the clients they started
// with. The gateway's own settings (address, key, TLS, limits) are those it started with. On an
// error the running clients stay.
func (s *Service) Reload(clients []*rotation.Client, e Engine) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	old := s.set.Load()
	set, err := s.build(clients, e, old)
	if err != nil {
		return err
	}
	s.set.Store(set)
	for name, tw := range old.tokens {
		if set.token(name, tw.secretID) != tw {
			tw.cancel()
		}
	}
	return nil
}

// ServeHTTP serves a request with the clients in force.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.set.Load().gw.ServeHTTP(w, r) }

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

// accessJSON is the writer the gateway may encode access lines on itself, or nil.
func (s *Service) accessJSON() io.Writer {
	if s.batch == nil || !s.opts.AccessJSON {
		return nil
	}
	return s.batch
}

// keys builds the key set: a literal key, or one read from Secrets Manager and followed.
func (s *Service) keys(ctx context.Context, o ServiceOptions) (*Keys, *Watcher, error) {
	return readKeys(ctx, o.Gateway, o.Store, s.log)
}

// CheckKey reads the key's secret named by g.KeyID as Start does, and fails as Start fails when it
// cannot be read or holds no usable key, so that `rotator check` finds a key the gateway would
// refuse to start with. It does nothing when no key's secret is configured. Its errors never hold
// the value.
func CheckKey(ctx context.Context, g *config.Gateway, st SecretReader) error {
	if g.KeyID == "" || !g.Key.IsZero() {
		return nil
	}
	_, _, err := readKeys(ctx, g, st, nil)
	return err
}

// readKeys is the key set of g: nil when no key is configured.
func readKeys(ctx context.Context, g *config.Gateway, st SecretReader, log *slog.Logger) (*Keys, *Watcher, error) {
	switch {
	case !g.Key.IsZero():
		return NewKeys(NewKey(g.Key.Reveal()), nil), nil, nil
	case g.KeyID != "":
		keys := NewKeys(Key{}, nil)
		w := &Watcher{Store: st, SecretID: g.KeyID, Changed: KeyFeed(keys, g.KeyGrace, log), Poll: g.Poll, Log: log, What: "key"}
		if _, err := w.Check(ctx); err != nil {
			return nil, nil, fmt.Errorf("gateway: reading the key's secret %s: %w", g.KeyID, err)
		}
		if !keys.Enabled() {
			return nil, nil, fmt.Errorf("gateway: the key's secret %s holds no key of at least %d characters", g.KeyID, secret.MinGatewayKeyLength)
		}
		return keys, w, nil
	}
	return nil, nil, nil
}

// WriteLimit is how long the gateway's server gives a call to be answered: its longest course (a
// hold for a live token, an attempt, a hold for a newer one after a 401, the replay), and 30 s to
// write the answer out. A shorter limit would cut off a call the gateway is still entitled to
// hold.
func WriteLimit(hold, upstream time.Duration) time.Duration {
	return 2*hold + 2*upstream + 30*time.Second
}

// keyedOffLoopback refuses a listener bound beyond loopback without a key. The configuration
// refuses such an address already; this holds for the address as bound, whatever a host name
// resolved to (a "localhost" that a hosts file maps elsewhere), so that the gateway never serves
// the token to whoever reaches it.
func keyedOffLoopback(bound net.Addr, keyed bool) error {
	if a, ok := bound.(*net.TCPAddr); keyed || ok && a.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("gateway: bound %s, not a loopback address, and no key is set: set %s (or %s), or listen on 127.0.0.1",
		bound, config.EnvGatewayKeyID, config.EnvGatewayKey)
}

// listen binds the gateway's address with its limits, and TLS when configured.
func (s *Service) listen(g *config.Gateway) error {
	limits := DefaultLimits
	limits.MaxConns = g.MaxConns
	limits.Write = WriteLimit(g.Hold, g.UpstreamTimeout)
	limits.Read = g.UpstreamTimeout
	s.srv = NewServer(s, limits)
	var tlsConfig *tls.Config
	if g.TLSCert != "" {
		r, err := NewCertReloader(g.TLSCert, g.TLSKey)
		if err != nil {
			return err
		}
		r.Log = s.log
		tlsConfig = r.TLSConfig()
	}
	ln, err := net.Listen("tcp", g.Addr)
	if err != nil {
		return fmt.Errorf("gateway listener: %w", err)
	}
	if err := keyedOffLoopback(ln.Addr(), s.keyset != nil); err != nil {
		ln.Close()
		return err
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
	if h := s.set.Load().holders[client]; h != nil {
		h.Set(Token{Value: st.Token.AccessToken, Version: st.VersionID, ValidTill: st.Token.ValidTill})
	}
}

// Ready reports whether every client holds a live token.
func (s *Service) Ready() (bool, string) {
	var missing []string
	for name, h := range s.set.Load().holders {
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
	s.set.Load().gw.WriteMetrics(b)
	var dropped uint64
	if s.batch != nil {
		dropped = s.batch.Dropped()
	}
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", MetricAccessLogDropped, MetricHelp[MetricAccessLogDropped],
		MetricAccessLogDropped, MetricAccessLogDropped, dropped)
}

// Handler is the gateway's handler, for tests that serve it themselves.
func (s *Service) Handler() http.Handler { return s }

// Shutdown stops accepting, lets requests in flight finish within ctx, and stops the watchers
// and the probes.
func (s *Service) Shutdown(ctx context.Context) error {
	var err error
	if s.srv != nil {
		err = s.srv.Shutdown(ctx)
	}
	s.cancel()
	s.wg.Wait()
	if s.batch != nil {
		_ = s.batch.Close() // the lines of the last requests
	}
	return err
}
