package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// Clock is the time a simulation runs on. Inside a synctest bubble it is the bubble's own clock
// (BubbleClock), so that every timer in the engine, the Clear client and the emulator runs on
// simulated time; outside one it is a fake.Clock (NewVirtualClock) that the simulation moves by hand.
type Clock interface {
	Now() time.Time
	// SleepUntil returns once the clock reads t or later.
	SleepUntil(t time.Time)
}

// BubbleClock is the time package's clock: simulated inside a synctest bubble.
type BubbleClock struct{}

// Now implements Clock.
func (BubbleClock) Now() time.Time { return time.Now().UTC() }

// SleepUntil implements Clock.
func (BubbleClock) SleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// NewVirtualClock returns a clock reading start that only moves when SleepUntil moves it: the one
// settable clock, fake.Clock. Timers elsewhere (the engine's write retries, the Clear client's
// timeout) still run on real time, so a simulation on it keeps those short (see
// SimConfig.ClearTimeout and WriteRetry).
func NewVirtualClock(start time.Time) *fake.Clock { return fake.NewClock(start.UTC()) }

// FaultRates are the probabilities of the simulation's random faults.
type FaultRates struct {
	// Per Clear request: a 5xx without a token issued; a token issued whose answer is lost (500);
	// a garbled 200 answer (a token issued and lost); no answer until the client's timeout.
	ClearServerError, ClearIssueThenFail, ClearMalformed, ClearHang float64
	// Per Secrets Manager call: a ThrottlingException before the call is applied.
	StoreError float64
	// Per PutSecretValue: the call is applied but its answer is lost (the caller sees a 500).
	StoreLostAnswer float64
	// Per process and tick: the process dies at a random step of its rotation, if it makes one.
	Crash float64
	// Per process and tick: the process restarts (a new engine with an empty cache).
	Restart float64
	// Per tick: Secrets Manager fails every call for OutageLength.
	Outage       float64
	OutageLength time.Duration
}

// DefaultFaults are the month simulation's fault rates: far worse than a healthy month, so that
// every recovery path runs many times.
var DefaultFaults = FaultRates{
	ClearServerError: 0.02, ClearIssueThenFail: 0.005, ClearMalformed: 0.005, ClearHang: 0.005,
	StoreError: 0.01, StoreLostAnswer: 0.005, Crash: 0.03, Restart: 0.001,
}

// SimConfig configures Simulate.
type SimConfig struct {
	Clock Clock
	// Days of simulated time; Tick is the schedule (default 5 minutes).
	Days int
	Tick time.Duration
	// Lifetime of Clear's tokens; zero means they never expire.
	Lifetime time.Duration
	// RenewBefore, MaxAge and DailyLimit configure the client as ROTATOR_RENEW_BEFORE,
	// ROTATOR_MAX_AGE and ROTATOR_DAILY_LIMIT do (DailyLimit zero: config.DefaultDailyLimit).
	RenewBefore, MaxAge time.Duration
	DailyLimit          int
	// Processes run the schedule side by side on the same secret (duplicate ticks); default 2.
	Processes int
	Seed      uint64
	Faults    FaultRates
	// ClearTimeout and WriteRetry configure the engine (zero: its defaults). A clock from NewVirtualClock wants
	// them short, since they run on real time.
	ClearTimeout, WriteRetry time.Duration
	// NewRotator builds a process's rotator; nil means the engine behind a NextCheck cache, as the
	// daemon drives it.
	NewRotator func(p *Process) Rotator
	// Stateless is set for a rotator that keeps no state document and makes no claims (the naive
	// baseline): the count invariants do not apply to it.
	Stateless bool
	// Log receives the engines' JSON logs (nil: discarded).
	Log io.Writer
	// APIClients is the number of API clients (client secrets) the client has: 1 (default) or 2,
	// used in turn (issue 10). With two, AWSCURRENT must never hold a token Clear has revoked
	// except after a rotation made in degraded mode (with the API client that issued it).
	APIClients int
}

// Rotator is one simulated rotator process's reaction to a schedule tick.
type Rotator interface {
	Tick(ctx context.Context)
}

// Runner is a rotator that keeps its own schedule, as the daemon does: the simulation starts Run
// when the process starts, cancels its context when the process restarts or the simulation ends,
// and never calls Tick. Its process dies by having every later call fail (a dead process's calls
// never land), since a daemon recovers panics.
type Runner interface {
	Run(ctx context.Context)
}

// Process is one incarnation of a simulated rotator process: its own view of Secrets Manager and
// of Clear, through which the simulation injects faults, kills it, and records what it did.
type Process struct {
	// Name is unique per incarnation; the engine uses it as its claim owner.
	Name  string
	API   store.API
	HTTP  *http.Client
	Clock Clock
	// Client is the configured client; its Clear source goes through HTTP.
	Client *rotation.Client
	// Engine is ready to use with API, Clock and the simulation's settings.
	Engine *rotation.Engine
	// Outcomes counts the engine's results, for rotators that use Engine.
	Outcomes map[rotation.Outcome]int

	sim *sim
	// runner is whether the process runs its own schedule (see Runner).
	runner bool
	dead   atomic.Bool
	stop   context.CancelFunc
	exited chan struct{}

	mu    sync.Mutex
	rng   *rand.Rand
	crash string // the armed crash point, or ""
	// lastClaim is the claim version the process landed in this tick, and rereadFor the claim
	// for which it has called Clear: between the two, a read of AWSCURRENT is the re-read.
	lastClaim, rereadFor string
}

// Crash points: where a process can die during a rotation.
const (
	crashBeforeClaim = "before-claim"  // the claim write never lands
	crashAfterClaim  = "after-claim"   // the claim lands; Clear is never called
	crashAtClear     = "at-clear"      // Clear issues a token; the answer dies with the process
	crashBeforeToken = "before-token"  // Clear answered; the token write never lands
	crashAfterToken  = "after-token"   // the token is stored; the process dies before returning
	crashAtReread    = "before-reread" // the claim landed; the process dies before re-reading
)

var crashPoints = []string{crashBeforeClaim, crashAfterClaim, crashAtClear, crashBeforeToken, crashAfterToken, crashAtReread}

// processDied is the panic that unwinds a simulated process at its crash point, the in-process
// equivalent of SIGKILL: nothing after it runs, and no write of the process lands afterwards.
type processDied struct{}

// errDied is what a dead Runner process's calls return.
var errDied = errors.New("simulated process died")

// Float64 draws from the process's own seeded stream.
func (p *Process) Float64() float64 { p.mu.Lock(); defer p.mu.Unlock(); return p.rng.Float64() }

func (p *Process) intN(n int) int { p.mu.Lock(); defer p.mu.Unlock(); return p.rng.IntN(n) }

// die kills the process if its armed crash point is point. A ticked process unwinds at once; a
// Runner process is marked dead, and the call fails.
func (p *Process) die(point string) error {
	if point == "" {
		return nil // a call that is no crash point (a failure record, the placeholder)
	}
	p.mu.Lock()
	hit := p.crash == point
	if hit {
		p.crash = ""
	}
	p.mu.Unlock()
	if !hit {
		return nil
	}
	p.sim.mu.Lock()
	p.sim.crashesAt[point]++
	p.sim.faults++
	p.sim.mu.Unlock()
	if !p.runner {
		panic(processDied{})
	}
	if !p.dead.Swap(true) {
		p.sim.mu.Lock()
		p.sim.crashes++
		p.sim.mu.Unlock()
	}
	return errDied
}

// Report is what a simulation observed. Violations lists every broken invariant.
type Report struct {
	Days, Ticks int
	// RequestsPerDay counts the Clear requests per UTC day, from the simulation's own log of
	// requests (cross-checked against the emulator's count).
	RequestsPerDay []int
	Requests       int
	// MinimumRequests is the least number of requests the renewal policy needs for the period:
	// one per renewal interval (the time from issue to renewal: two thirds of the lifetime by
	// default, or MaxAge for tokens that never expire). LifetimeMinimum is one per lifetime.
	MinimumRequests, LifetimeMinimum int
	RenewalInterval                  time.Duration
	MaxPerDay, DaysAboveLimit        int
	DailyLimit                       int
	// Issued counts tokens Clear issued; Lost those issued and never stored.
	Issued, Stored, Lost int
	// LostClaims counts claims written (and counted) whose process never called Clear.
	LostClaims int
	// DeadMinutes counts sampled minutes in which AWSCURRENT did not hold a live token, split by
	// cause: Superseded (Clear issued a later token that was lost), Expired, OutageExpired: a
	// token that expired while Secrets Manager was down, or within outageRecovery of its end,
	// when no rotator could store a successor, and FaultExpired: a token that expired after every
	// schedule tick since it came due met an injected fault (a crash, a Secrets Manager or Clear
	// fault), so that every look at it could have failed. A look skipped (a backoff past a tick)
	// or failed without a fault leaves a tick clean, and the expiry is Expired: the rotator's.
	DeadMinutes, SupersededMinutes, ExpiredMinutes, OutageExpiredMinutes, FaultExpiredMinutes int
	// MaxDeadStretch is the longest run of dead minutes; MaxDeadAfterFault the longest run of them
	// in tick windows that met no fault, after the last that did: how long the rotator took to
	// recover once the faults let it.
	MaxDeadStretch, MaxDeadAfterFault time.Duration
	// WriteWindowSamples counts samples that caught a rotation between Clear's answer and the
	// token write, which the write then ended within seconds; they are not dead minutes.
	WriteWindowSamples int
	// MaxWriteWindow is the longest time from Clear's answer to the token stored as AWSCURRENT.
	MaxWriteWindow time.Duration
	// StoreCalls counts Secrets Manager calls by operation; Versions the versions written.
	StoreCalls map[string]int
	Versions   int
	Outcomes   map[rotation.Outcome]int
	Crashes    int
	// CrashesAt counts the crashes by crash point; ClearFaults counts the faults injected into
	// Clear's answers. Together they account for the requests that did not end in a stored token.
	CrashesAt   map[string]int
	ClearFaults int
	Restarts    int
	Outages     int
	// Tokens are every token Clear delivered to a process, for leak scans. (A token whose answer
	// was lost never reached a process, so it cannot leak from one.)
	Tokens []string
	Secret string
	// Secret2 is the second API client's secret ("" with one), for leak scans.
	Secret2    string
	Violations []string
	// Notes describe each expired sample: what AWSCURRENT and the state held. StretchNotes describe
	// each minute of the longest dead stretch (the first 40) the same way, with its cause.
	Notes, StretchNotes []string
}

// Unexplained is the number of Clear requests that did not end in a stored token and that no
// injected fault explains: each Clear fault, crash between Clear's answer and the token write, and
// Secrets Manager outage can spoil at most the one request it hits (no claim can be written during
// an outage, so an outage can only catch a request already in flight). Anything above zero means a
// fault cost more than one request.
func (r *Report) Unexplained() int {
	return (r.Requests - r.Stored) - (r.ClearFaults + r.CrashesAt[crashAtClear] + r.CrashesAt[crashBeforeToken] + r.Outages)
}

// Ratio is Requests over MinimumRequests.
func (r *Report) Ratio() float64 {
	if r.MinimumRequests == 0 {
		return math.Inf(1)
	}
	return float64(r.Requests) / float64(r.MinimumRequests)
}

// String summarises the report in one line.
func (r *Report) String() string {
	return fmt.Sprintf("%d days: %d Clear requests (minimum %d, ratio %.3f; one per lifetime %d), max %d/day (limit %d, %d days above), "+
		"issued %d, stored %d, lost %d, lost claims %d, Clear faults %d, dead minutes %d (superseded %d, expired %d, expired in an outage %d, expired after a fault at every tick %d, longest %s, longest after the last fault %s), write-window samples %d, max write window %s, "+
		"crashes %d %v, restarts %d, outages %d, outcomes %v, store calls %v",
		r.Days, r.Requests, r.MinimumRequests, r.Ratio(), r.LifetimeMinimum, r.MaxPerDay, r.DailyLimit, r.DaysAboveLimit,
		r.Issued, r.Stored, r.Lost, r.LostClaims, r.ClearFaults, r.DeadMinutes, r.SupersededMinutes, r.ExpiredMinutes, r.OutageExpiredMinutes, r.FaultExpiredMinutes, r.MaxDeadStretch, r.MaxDeadAfterFault, r.WriteWindowSamples, r.MaxWriteWindow,
		r.Crashes, r.CrashesAt, r.Restarts, r.Outages, r.Outcomes, r.StoreCalls)
}

// event is one thing a process did, in the order it did it.
type event struct {
	owner string
	kind  string // "claim" or "clear"
	day   string
}

type sim struct {
	cfg     SimConfig
	clock   Clock
	sm      *fake.SecretsManager
	emu     *emulator.Server
	secret  string
	secret2 string // the second API client's, or ""
	tokenID string
	log     *slog.Logger

	mu          sync.Mutex
	events      []event
	claimSeen   map[string]bool
	clearPerDay map[string]int
	stateCount  map[string]int // the last state written on each day, for that day
	tokens      []string
	answeredAt  map[string]time.Time // token -> when Clear answered with it
	// degradedBase holds the AWSCURRENT versions a claim asked to replace with the API client
	// that issued them (degraded mode): only those may be revoked while still in AWSCURRENT.
	degradedBase map[string]bool
	writeWindow  time.Duration
	stored       int
	inFlight     atomic.Int32
	outageUntil  time.Time
	violations   []string
	notes        []string
	outcomes     map[rotation.Outcome]int
	crashes      int
	crashesAt    map[string]int
	clearFaults  int
	// faults counts every fault injected (Secrets Manager errors and lost answers, outages' refused
	// calls, Clear faults, crashes), for FaultExpiredMinutes.
	faults      int
	restarts    int
	outages     int
	incarnation int
}

// fault counts an injected fault.
func (s *sim) fault() { s.mu.Lock(); s.faults++; s.mu.Unlock() }

func (s *sim) faultCount() int { s.mu.Lock(); defer s.mu.Unlock(); return s.faults }

func (s *sim) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 50 {
		s.violations = append(s.violations, s.clock.Now().Format(time.RFC3339)+": "+fmt.Sprintf(format, args...))
	}
}

// Simulate runs cfg.Days of the schedule against an in-memory Secrets Manager and the Clear
// emulator (served in memory), with random faults, crashes, restarts and duplicate ticks, and
// checks the invariants every simulated minute. It makes no network call, so it can run inside a
// synctest bubble with BubbleClock.
func Simulate(ctx context.Context, cfg SimConfig) *Report {
	if cfg.Tick <= 0 {
		cfg.Tick = 5 * time.Minute
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 2
	}
	if cfg.DailyLimit <= 0 {
		cfg.DailyLimit = config.DefaultDailyLimit
	}
	if cfg.Clock == nil {
		cfg.Clock = BubbleClock{}
	}
	s := &sim{
		cfg: cfg, clock: cfg.Clock,
		secret:       fmt.Sprintf("sim-client-secret-%016x", cfg.Seed^0x5eed),
		tokenID:      "sim/clear-token",
		claimSeen:    map[string]bool{},
		clearPerDay:  map[string]int{},
		stateCount:   map[string]int{},
		answeredAt:   map[string]time.Time{},
		outcomes:     map[rotation.Outcome]int{},
		crashesAt:    map[string]int{},
		degradedBase: map[string]bool{},
	}
	secrets := []string{s.secret}
	if cfg.APIClients == 2 {
		s.secret2 = fmt.Sprintf("sim-client-secret-2-%016x", cfg.Seed^0x2eed)
		secrets = append(secrets, s.secret2)
	}
	s.sm = fake.NewSecretsManager(cfg.Clock.Now)
	var emuNow func() time.Time
	if _, bubble := cfg.Clock.(BubbleClock); !bubble {
		emuNow = cfg.Clock.Now
	}
	s.emu = emulator.New(emulator.Options{Now: emuNow, Lifetime: cfg.Lifetime, Secrets: secrets})
	out := cfg.Log
	if out == nil {
		out = io.Discard
	}
	s.log = slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))

	master := rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6e7468))
	procs := make([]*Process, cfg.Processes)
	rotators := make([]Rotator, cfg.Processes)
	for i := range procs {
		procs[i], rotators[i] = s.spawn(ctx, master)
	}

	start := s.clock.Now().Truncate(time.Minute)
	end := start.Add(time.Duration(cfg.Days) * 24 * time.Hour)
	tickEvery := int(cfg.Tick / time.Minute)
	if tickEvery < 1 {
		tickEvery = 1
	}
	var dead, ticks int
	var rep Report
	stretch, afterFault := 0, 0
	var stretchNotes []string // the current dead stretch, minute by minute
	// The tick windows' faults, for FaultExpiredMinutes: the current window's start and the fault
	// count then, and the start of the last window that ended without a fault.
	window, windowFaults, lastClean := start, 0, start.Add(-cfg.Tick)
	for m := 0; ; m++ {
		now := start.Add(time.Duration(m) * time.Minute)
		if !now.Before(end) || ctx.Err() != nil {
			break
		}
		s.clock.SleepUntil(now)
		if m%tickEvery == 0 {
			if n := s.faultCount(); m > 0 {
				if n == windowFaults {
					lastClean = window
				}
				window, windowFaults = now, n
			}
			ticks++
			s.tick(ctx, master, now, procs, rotators)
		}
		// Sample the token secret as a consumer would, between ticks. A daemon runs on its own
		// timers, so a sample can fall between Clear's answer and the token write; a token stored
		// within seconds was that unavoidable write window, not a dead token.
		ok, superseded, due := s.sample()
		if !ok && superseded {
			s.clock.SleepUntil(now.Add(10 * time.Second))
			if ok, _, _ = s.sample(); ok {
				rep.WriteWindowSamples++
			}
		}
		if ok {
			stretch, afterFault, stretchNotes = 0, 0, nil
		} else {
			dead++
			stretch++
			s.mu.Lock()
			outage := now.Before(s.outageUntil.Add(outageRecovery))
			s.mu.Unlock()
			windowFaulted := s.faultCount() > windowFaults
			faulted := everyTickFaulted(start, cfg.Tick, due, lastClean, windowFaulted)
			// Dead minutes after the last tick window that met a fault: what the rotator took to
			// recover once the faults let it.
			if windowFaulted {
				afterFault = 0
			} else {
				afterFault++
			}
			if d := time.Duration(afterFault) * time.Minute; d > rep.MaxDeadAfterFault {
				rep.MaxDeadAfterFault = d
			}
			cause := "expired"
			switch {
			case superseded:
				rep.SupersededMinutes++
				cause = "superseded"
			case outage:
				rep.OutageExpiredMinutes++
				cause = "expired in an outage"
			case faulted:
				rep.FaultExpiredMinutes++
				cause = "expired after a fault at every tick"
			default:
				rep.ExpiredMinutes++
			}
			if len(stretchNotes) < 40 {
				stretchNotes = append(stretchNotes, s.deadNote(now, cause))
			}
			if d := time.Duration(stretch) * time.Minute; d > rep.MaxDeadStretch {
				rep.MaxDeadStretch = d
				rep.StretchNotes = slices.Clone(stretchNotes)
			}
		}
	}
	for _, p := range procs {
		s.retire(p)
	}
	return s.report(&rep, start, end, ticks, dead)
}

// everyTickFaulted reports whether every tick window (of length tick, from start) since due met
// an injected fault: no window that ended without one started at or after the first tick at or
// after due, the first look that found the token due (lastClean is the start of the last window
// that ended without a fault), and the current one has met one (current). Zero due (the token is
// not expired, or never comes due) is never explained so.
func everyTickFaulted(start time.Time, tick time.Duration, due, lastClean time.Time, current bool) bool {
	if due.IsZero() || !current {
		return false
	}
	first := start.Add((max(due.Sub(start), 0) + tick - 1) / tick * tick)
	return lastClean.Before(first)
}

// deadNote describes a dead minute: its cause, the AWSCURRENT version and the state document.
func (s *sim) deadNote(now time.Time, cause string) string {
	cur, _ := s.sm.Stage(s.tokenID, rotation.CurrentStage)
	st, _ := s.sm.Stage(s.tokenID, document.StateStage)
	s.mu.Lock()
	outage := s.outageUntil
	s.mu.Unlock()
	return fmt.Sprintf("%s: %s; AWSCURRENT %s; outage until %s; state %s",
		now.Format(time.RFC3339), cause, cur.ID, outage.Format(time.RFC3339), st.Value)
}

// outageRecovery is how long after a Secrets Manager outage ends a rotator may take to look again
// and store a successor: one daemon tick (five minutes) and a minute's retry.
const outageRecovery = 6 * time.Minute

// tick restarts the processes that died or are due a restart, arms crashes, and ticks the ticked
// ones side by side.
func (s *sim) tick(ctx context.Context, master *rand.Rand, now time.Time, procs []*Process, rotators []Rotator) {
	f := s.cfg.Faults
	if f.Outage > 0 && master.Float64() < f.Outage {
		s.mu.Lock()
		s.outageUntil = now.Add(f.OutageLength)
		s.outages++
		s.mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := range procs {
		p := procs[i]
		if p.dead.Load() || (f.Restart > 0 && master.Float64() < f.Restart) {
			s.retire(p)
			s.mu.Lock()
			s.restarts++
			s.mu.Unlock()
			procs[i], rotators[i] = s.spawn(ctx, master)
			p = procs[i]
		}
		p.mu.Lock()
		p.crash = ""
		if !p.runner {
			// A runner (a daemon) rotates on its own schedule, so the simulation's tick may fall
			// between its claim and the release of that claim: forgetting the claim here made
			// the release unrecognisable, and a released claim was then counted as lost.
			p.lastClaim, p.rereadFor = "", ""
		}
		if f.Crash > 0 && master.Float64() < f.Crash {
			p.crash = crashPoints[master.IntN(len(crashPoints))]
		}
		p.mu.Unlock()
		if p.runner {
			continue
		}
		r := rotators[i]
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					if _, ok := v.(processDied); !ok {
						panic(v)
					}
					p.dead.Store(true)
					s.mu.Lock()
					s.crashes++
					s.mu.Unlock()
				}
			}()
			r.Tick(ctx)
		})
	}
	wg.Wait()
}

// spawn starts a new incarnation of a rotator process.
func (s *sim) spawn(ctx context.Context, master *rand.Rand) (*Process, Rotator) {
	s.mu.Lock()
	s.incarnation++
	n := s.incarnation
	s.mu.Unlock()
	p := &Process{Name: fmt.Sprintf("proc-%d", n), Clock: s.clock, sim: s,
		rng: rand.New(rand.NewPCG(master.Uint64(), uint64(n))), Outcomes: map[rotation.Outcome]int{}}
	p.API = &procAPI{p: p}
	p.HTTP = &http.Client{Transport: &procClear{p: p}}
	cc, err := clear.NewClient("http://127.0.0.1:9", p.HTTP)
	if err != nil {
		panic(err)
	}
	p.Client = &rotation.Client{Clear: cc, Client: config.Client{
		Name: "erp", BaseURL: "http://127.0.0.1:9", ClientSecret: clear.NewClientSecret(s.secret),
		TokenSecretID: s.tokenID, DailyLimit: s.cfg.DailyLimit, RenewBefore: s.cfg.RenewBefore, MaxAge: s.cfg.MaxAge,
	}}
	if s.secret2 != "" {
		p.Client.ClientSecret2 = clear.NewClientSecret(s.secret2)
	}
	p.Engine = rotation.NewEngine(rotation.Engine{
		Store: store.New(p.API), Now: s.clock.Now, Rand: p.Float64, Log: s.log.With("process", p.Name),
		Owner: p.Name, ClearTimeout: s.cfg.ClearTimeout, WriteRetry: s.cfg.WriteRetry,
	})
	var r Rotator = &cachedEngine{p: p}
	if s.cfg.NewRotator != nil {
		r = s.cfg.NewRotator(p)
	}
	if run, ok := r.(Runner); ok {
		p.runner = true
		rctx, cancel := context.WithCancel(ctx)
		p.stop, p.exited = cancel, make(chan struct{})
		go func() {
			defer close(p.exited)
			run.Run(rctx)
		}()
	}
	return p, r
}

// retire stops a process for good: a Runner's context is cancelled and its Run awaited, and its
// outcome counts are kept.
func (s *sim) retire(p *Process) {
	if p.stop != nil {
		p.stop()
		<-p.exited
		p.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for o, n := range p.Outcomes {
		s.outcomes[o] += n
	}
	p.Outcomes = map[rotation.Outcome]int{}
}

// cachedEngine drives the engine as the daemon does: it calls Rotate on a tick only once the
// NextCheck of its last result has come, so that an idle tick costs no call at all.
type cachedEngine struct {
	p    *Process
	next time.Time
}

func (c *cachedEngine) Tick(ctx context.Context) {
	if !c.next.IsZero() && c.p.Clock.Now().Before(c.next) {
		return
	}
	r := c.p.Engine.Rotate(ctx, c.p.Client, false)
	c.p.Outcomes[r.Outcome]++
	c.next = r.NextCheck
}

// sample checks AWSCURRENT: a token document (or the empty "{}" before the first rotation) that
// is live. It reports whether the token is live and, if not, whether a later token was issued
// (which revoked it, or, while AWSCURRENT still holds the placeholder, was never stored).
//
// due is when an expired token came due (its renewal time under the client's policy).
func (s *sim) sample() (live, superseded bool, due time.Time) {
	v, ok := s.sm.Stage(s.tokenID, rotation.CurrentStage)
	if !ok {
		return true, false, time.Time{} // nothing created yet: the first tick has not run
	}
	tok, err := document.ParseToken([]byte(v.Value))
	if err != nil {
		if strings.TrimSpace(v.Value) != "{}" {
			s.violate("AWSCURRENT holds something that is not a token document (%d bytes)", len(v.Value))
		}
		issued := s.issued() > 0
		return !issued, issued, time.Time{}
	}
	if s.emu.Live(tok.AccessToken.Reveal()) {
		return true, false, time.Time{}
	}
	now := s.clock.Now()
	expired := tok.ValidTill != nil && !now.Before(*tok.ValidTill)
	s.mu.Lock()
	degraded := s.degradedBase[v.ID]
	s.mu.Unlock()
	if s.secret2 != "" && !expired && !degraded {
		s.violate("AWSCURRENT (API client %d) holds a token Clear revoked, and no rotation asked its API client in degraded mode", tok.APIClient)
	}
	if expired {
		st, _ := s.sm.Stage(s.tokenID, document.StateStage)
		s.mu.Lock()
		if len(s.notes) < 20 {
			s.notes = append(s.notes, fmt.Sprintf("%s: AWSCURRENT %s (issued %s, valid till %s) expired; state %s",
				now.Format(time.RFC3339), v.ID, tok.IssuedAt.Format(time.RFC3339), tok.ValidTill.Format(time.RFC3339), st.Value))
		}
		s.mu.Unlock()
	}
	if expired {
		due, _ = timing.RenewAt(tok.IssuedAt, tok.ValidTill, s.cfg.RenewBefore, s.cfg.MaxAge)
	}
	return false, !expired, due
}

func (s *sim) report(rep *Report, start, end time.Time, ticks, dead int) *Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	rep.Days, rep.Ticks, rep.DailyLimit, rep.DeadMinutes = cfg.Days, ticks, cfg.DailyLimit, dead
	rep.Secret, rep.Secret2 = s.secret, s.secret2
	rep.Tokens = slices.Clone(s.tokens)
	rep.Crashes, rep.Restarts, rep.Outages = s.crashes, s.restarts, s.outages
	rep.CrashesAt, rep.ClearFaults = s.crashesAt, s.clearFaults
	rep.Notes = slices.Clone(s.notes)
	rep.Outcomes = s.outcomes
	rep.StoreCalls = s.sm.Calls()
	rep.Versions = len(s.sm.Versions(s.tokenID))
	rep.Issued = s.issued()
	rep.Stored = s.stored
	rep.Lost = rep.Issued - rep.Stored
	rep.MaxWriteWindow = s.writeWindow

	// Requests per day, and the emulator's own total as a cross-check of the log.
	for d := start; d.Before(end); d = d.Add(24 * time.Hour) {
		n := s.clearPerDay[timing.Day(d)]
		rep.RequestsPerDay = append(rep.RequestsPerDay, n)
		rep.Requests += n
		rep.MaxPerDay = max(rep.MaxPerDay, n)
		if n > cfg.DailyLimit || n > emulator.DefaultDailyLimit {
			rep.DaysAboveLimit++
		}
	}
	if got := s.emu.Requests(s.secret) + s.emu.Requests(s.secret2); got != rep.Requests {
		s.violations = append(s.violations, fmt.Sprintf("the emulator counted %d requests, the simulation's log %d", got, rep.Requests))
	}

	// The renewal policy's minimum: one request per renewal interval.
	validTill := start.Add(cfg.Lifetime)
	vt := &validTill
	if cfg.Lifetime <= 0 {
		vt = nil
	}
	if at, ok := timing.RenewAt(start, vt, cfg.RenewBefore, cfg.MaxAge); ok && at.After(start) {
		rep.RenewalInterval = at.Sub(start)
		rep.MinimumRequests = int(math.Ceil(float64(end.Sub(start)) / float64(rep.RenewalInterval)))
	} else {
		rep.MinimumRequests = 1
	}
	life := cfg.Lifetime
	if life <= 0 {
		life = rep.RenewalInterval
	}
	if life > 0 {
		rep.LifetimeMinimum = int(math.Ceil(float64(end.Sub(start)) / float64(life)))
	}

	if cfg.Stateless {
		// The naive baseline keeps no state and makes no claims.
		rep.Violations = s.violations
		return rep
	}
	// Lost claims: a claim whose owner's next event is not a request to Clear.
	lost := map[string]int{}
	last := map[string]int{} // owner -> index of its pending claim
	for i, e := range s.events {
		switch e.kind {
		case "claim":
			if j, ok := last[e.owner]; ok {
				lost[s.events[j].day]++
			}
			last[e.owner] = i
		case "release":
			delete(last, e.owner)
		case "clear":
			if _, ok := last[e.owner]; ok {
				delete(last, e.owner)
			} else {
				s.violations = append(s.violations, fmt.Sprintf("%s called Clear without a claim", e.owner))
			}
		}
	}
	for _, j := range last {
		lost[s.events[j].day]++
	}
	days := map[string]bool{}
	for d := range s.clearPerDay {
		days[d] = true
	}
	for d := range s.stateCount {
		days[d] = true
	}
	var sorted []string
	for d := range days {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	for _, d := range sorted {
		rep.LostClaims += lost[d]
		// A state document is the only record of the count, and it is written on every claim.
		if s.stateCount[d] != s.clearPerDay[d]+lost[d] {
			s.violations = append(s.violations, fmt.Sprintf("day %s: the state counts %d requests; Clear received %d and %d claims were lost",
				d, s.stateCount[d], s.clearPerDay[d], lost[d]))
		}
	}
	rep.Violations = s.violations
	return rep
}

// procAPI is a process's Secrets Manager: the shared fake, behind the process's faults, its crash
// points, and the recording of what landed.
type procAPI struct{ p *Process }

var errThrottled = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded", Fault: smithy.FaultClient}

func (a *procAPI) before() error {
	s := a.p.sim
	if a.p.dead.Load() {
		return errDied
	}
	s.mu.Lock()
	down := s.clock.Now().Before(s.outageUntil)
	s.mu.Unlock()
	if down {
		s.fault()
		return &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: "injected outage", Fault: smithy.FaultServer}
	}
	if f := s.cfg.Faults.StoreError; f > 0 && a.p.Float64() < f {
		s.fault()
		return errThrottled
	}
	return nil
}

func (a *procAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if aws.ToString(in.VersionStage) == rotation.CurrentStage && a.p.claimed() {
		if err := a.p.die(crashAtReread); err != nil {
			return nil, err
		}
	}
	if err := a.before(); err != nil {
		return nil, err
	}
	return a.p.sim.sm.GetSecretValue(ctx, in, o...)
}

func (a *procAPI) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if err := a.before(); err != nil {
		return nil, err
	}
	return a.p.sim.sm.CreateSecret(ctx, in, o...)
}

// DescribeSecret implements store.API: the shared fake behind the process's faults.
func (a *procAPI) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	if err := a.before(); err != nil {
		return nil, err
	}
	return a.p.sim.sm.DescribeSecret(ctx, in, o...)
}

// UpdateSecretVersionStage implements store.API: the shared fake behind the process's faults.
func (a *procAPI) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, o ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	if err := a.before(); err != nil {
		return nil, err
	}
	return a.p.sim.sm.UpdateSecretVersionStage(ctx, in, o...)
}

func (a *procAPI) ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, o ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	if err := a.before(); err != nil {
		return nil, err
	}
	return a.p.sim.sm.ListSecretVersionIds(ctx, in, o...)
}

func (a *procAPI) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	s := a.p.sim
	value := aws.ToString(in.SecretString)
	isState := slices.Contains(in.VersionStages, document.StateStage)
	var st document.State
	isClaim := false
	if isState {
		var err error
		if st, err = document.ParseState([]byte(value)); err == nil && st.Claim != nil && st.Claim.Owner == a.p.Name {
			isClaim = true
		}
	}
	tok, tokErr := document.ParseToken([]byte(value))
	isToken := !isState && tokErr == nil
	var point string
	switch {
	case isClaim:
		point = crashBeforeClaim
	case isToken:
		point = crashBeforeToken
	}
	if err := a.p.die(point); err != nil {
		return nil, err
	}
	if err := a.before(); err != nil {
		return nil, err
	}
	out, err := s.sm.PutSecretValue(ctx, in, o...)
	if err != nil {
		return out, err
	}
	now := s.clock.Now()
	released := false
	s.mu.Lock()
	fresh := !s.claimSeen[aws.ToString(out.VersionId)]
	s.claimSeen[aws.ToString(out.VersionId)] = true
	if isState && fresh {
		day, n := stateDay(st), 0
		for _, a := range st.APIClients {
			if a.Day == day {
				n += a.Requests
			}
		}
		s.stateCount[day] = n
		if !isClaim && st.Claim == nil && aws.ToString(in.ClientRequestToken) == releaseToken(a.p.lastClaimID()) {
			// The owner gave its claim up without calling Clear, and uncounted the request.
			s.events = append(s.events, event{owner: a.p.Name, kind: "release", day: stateDay(st)})
			released = true
		}
		if isClaim {
			s.events = append(s.events, event{owner: a.p.Name, kind: "claim", day: stateDay(st)})
			if cur, ok := s.sm.Stage(s.tokenID, rotation.CurrentStage); ok && cur.ID == st.Claim.Base {
				if t, err := document.ParseToken([]byte(cur.Value)); err == nil && t.APIClient == st.Claim.Slot {
					s.degradedBase[cur.ID] = true
				}
			}
		}
	}
	if isToken && fresh {
		s.stored++
		if at, ok := s.answeredAt[tok.AccessToken.Reveal()]; ok {
			s.writeWindow = max(s.writeWindow, now.Sub(at))
		}
	}
	s.mu.Unlock()
	if isClaim && fresh {
		a.p.mu.Lock()
		a.p.lastClaim = aws.ToString(out.VersionId)
		a.p.mu.Unlock()
	}
	if released {
		// The claim is over: the process's next read of AWSCURRENT is a first read, not a
		// re-read (see claimed), as it is after a Clear request.
		a.p.mu.Lock()
		a.p.rereadFor = a.p.lastClaim
		a.p.mu.Unlock()
	}
	switch {
	case isClaim:
		point = crashAfterClaim
	case isToken:
		point = crashAfterToken
	}
	if err := a.p.die(point); err != nil {
		return nil, err
	}
	if f := s.cfg.Faults.StoreLostAnswer; f > 0 && a.p.Float64() < f {
		s.fault()
		return nil, &smithy.GenericAPIError{Code: "InternalServiceError", Message: "injected: answer lost after the write", Fault: smithy.FaultServer}
	}
	return out, nil
}

// lastClaimID is the version id of the claim the process last wrote this tick ("" if none).
func (p *Process) lastClaimID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastClaim
}

// releaseToken is the request token of the state write that releases claim claimID, as the engine
// derives it; "" for no claim.
func releaseToken(claimID string) string {
	if claimID == "" {
		return ""
	}
	return rotation.ReleaseToken(claimID)
}

// claimed reports whether the process's current rotation has landed a claim (so a read of
// AWSCURRENT now is the re-read).
func (p *Process) claimed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastClaim != "" && p.lastClaim != p.rereadFor
}

// procClear is a process's connection to Clear: the emulator, served in memory, behind the
// process's faults and crash point, recording every request and every token issued.
type procClear struct{ p *Process }

func (c *procClear) RoundTrip(req *http.Request) (*http.Response, error) {
	p, s := c.p, c.p.sim
	if p.dead.Load() {
		return nil, errDied
	}
	if n := s.inFlight.Add(1); n > 1 {
		s.violate("%d requests to Clear in flight at once for one client secret", n)
	}
	defer s.inFlight.Add(-1)
	now := s.clock.Now()
	s.mu.Lock()
	s.events = append(s.events, event{owner: p.Name, kind: "clear", day: timing.Day(now)})
	s.clearPerDay[timing.Day(now)]++
	s.mu.Unlock()
	p.mu.Lock()
	p.rereadFor = p.lastClaim
	p.mu.Unlock()

	f := s.cfg.Faults
	x := p.Float64()
	if x < f.ClearServerError+f.ClearIssueThenFail+f.ClearMalformed+f.ClearHang {
		s.mu.Lock()
		s.clearFaults++
		s.faults++
		s.mu.Unlock()
	}
	switch {
	case x < f.ClearServerError:
		s.emu.Inject(emulator.Fault{Status: 500 + p.intN(4)})
	case x < f.ClearServerError+f.ClearIssueThenFail:
		s.emu.Inject(emulator.Fault{IssueThenFail: true})
	case x < f.ClearServerError+f.ClearIssueThenFail+f.ClearMalformed:
		s.emu.Inject(emulator.Malformed())
	case x < f.ClearServerError+f.ClearIssueThenFail+f.ClearMalformed+f.ClearHang:
		s.emu.Inject(emulator.Fault{Hang: true})
	}
	before := s.issued()
	rec := httptest.NewRecorder()
	s.emu.ServeHTTP(rec, req)
	resp := rec.Result()
	body := rec.Body.Bytes()
	if s.issued() > before {
		// Every token Clear issues is recorded, delivered or not, for the leak scans.
		var g struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(body, &g) == nil && g.AccessToken != "" {
			s.mu.Lock()
			s.tokens = append(s.tokens, g.AccessToken)
			s.answeredAt[g.AccessToken] = s.clock.Now()
			s.mu.Unlock()
		}
	}
	if err := p.die(crashAtClear); err != nil {
		return nil, err
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// issued is the number of tokens Clear issued, for every API client.
func (s *sim) issued() int {
	n := s.emu.Issued(s.secret)
	if s.secret2 != "" {
		n += s.emu.Issued(s.secret2)
	}
	return n
}

// stateDay is the UTC day of the last request a state counts.
func stateDay(st document.State) string {
	day := ""
	for _, a := range st.APIClients {
		if a.Day > day {
			day = a.Day
		}
	}
	return day
}
