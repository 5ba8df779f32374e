package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/notify"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// signingSecretTTL is how long a signing secret read from Secrets Manager is used before it is read
// again, so that a changed secret (a second key added, the old one dropped) is picked up.
const signingSecretTTL = 5 * time.Minute

// Push is push delivery (issue 18) wired from the configuration: the notifier, the signing secret
// read from Secrets Manager, and the token secrets' ARNs.
type Push struct {
	app *App

	mu       sync.Mutex
	secret   notify.Secret
	secretAt time.Time
	arns     map[string]string
}

// push returns a's Push, built once.
func (a *App) pushOnce() *Push {
	a.pushInit.Do(func() { a.push = &Push{app: a, arns: map[string]string{}} })
	return a.push
}

// Notifier returns the notifier for a shell that retries as policy says and tells rec, or nil when
// push delivery is not configured.
func (a *App) Notifier(policy notify.Policy, log *slog.Logger, rec notify.Recorder) *notify.Notifier {
	cfg := a.Config.Notify
	urls := map[string]string{}
	for _, c := range a.Config.Clients {
		if c.WebhookURL != "" {
			urls[c.Name] = c.WebhookURL
		}
	}
	if len(urls) == 0 && cfg.HookCommand == nil {
		return nil
	}
	p := a.pushOnce()
	n := &notify.Notifier{URLs: urls, Secret: p.signingSecret, HTTP: notify.NewHTTPClient(), Policy: policy, Log: log, Recorder: rec,
		Current: p.current}
	if cfg.HookCommand != nil {
		n.Hook = &notify.Hook{Args: cfg.HookCommand, Stdin: cfg.HookStdin, Timeout: cfg.HookTimeout, Env: os.Environ(),
			Secrets: config.SecretEnv(), Hide: a.Config.Literals(), Log: log}
	}
	return n
}

// signingSecret is the configured literal, or the secret read from Secrets Manager (AWSCURRENT),
// cached for signingSecretTTL.
func (p *Push) signingSecret(ctx context.Context) (notify.Secret, error) {
	cfg := p.app.Config.Notify
	if !cfg.WebhookSecret.IsZero() || cfg.WebhookSecretID == "" {
		return cfg.WebhookSecret, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.secret.IsZero() && time.Since(p.secretAt) < signingSecretTTL {
		return p.secret, nil
	}
	v, err := p.app.Engine.Store.Read(ctx, cfg.WebhookSecretID, rotation.CurrentStage)
	if err != nil {
		return notify.Secret{}, err
	}
	p.secret, p.secretAt = notify.NewSecret(v.Value), time.Now()
	return p.secret, nil
}

// CheckSigningSecret reads the webhook signing secret named by ROTATOR_WEBHOOK_SECRET_ID as a
// webhook's delivery does (signingSecret) and parses it as signing does (notify.ParseKeys), so that
// `rotator check` finds the secret every webhook would give up on. It does nothing when the secret
// is not read from Secrets Manager (a literal is validated with the configuration). Its errors
// never hold the value.
func (a *App) CheckSigningSecret(ctx context.Context) error {
	id := a.Config.Notify.WebhookSecretID
	if id == "" || !a.Config.Notify.WebhookSecret.IsZero() {
		return nil
	}
	s, err := a.pushOnce().signingSecret(ctx)
	if err != nil {
		return fmt.Errorf("reading the signing secret %s: %w", id, err)
	}
	if _, err := notify.ParseKeys(s); err != nil {
		return fmt.Errorf("the signing secret %s: %w", id, err)
	}
	return nil
}

// current reports whether ev's version is still AWSCURRENT of its token secret
// (notify.Notifier.Current): one DescribeSecret before each attempt, so that a token stored by
// another process supersedes this delivery.
func (p *Push) current(ctx context.Context, ev notify.Event) (bool, error) {
	if p.app.Engine == nil || p.app.Engine.Store == nil {
		return true, nil
	}
	stages, err := p.app.Engine.Store.Stages(ctx, ev.SecretID)
	if err != nil {
		return true, err
	}
	v, ok := stages[rotation.CurrentStage]
	return !ok || v == ev.VersionID, nil
}

// arn returns the token secret's ARN, or the id as configured when it cannot be learnt (a store
// built by hand without one, or a DescribeSecret that failed: the webhook still goes out).
func (p *Push) arn(ctx context.Context, id string) string {
	p.mu.Lock()
	if a, ok := p.arns[id]; ok {
		p.mu.Unlock()
		return a
	}
	p.mu.Unlock()
	if p.app.Store == nil {
		return id
	}
	_, arn, err := p.app.Store.Describe(ctx, id)
	if err != nil || arn == "" {
		return id
	}
	p.mu.Lock()
	p.arns[id] = arn
	p.mu.Unlock()
	return arn
}

// Event describes the token r stored for c, or false when r stored none. before is c's health
// before the attempt ("" when the shell does not know it); revoking is true for `rotator revoke`.
func (a *App) Event(ctx context.Context, c *rotation.Client, r rotation.Result, before rotation.Health, revoking bool) (notify.Event, bool) {
	if r.Stored == nil {
		return notify.Event{}, false
	}
	arn := a.pushOnce().arn(ctx, c.TokenSecretID)
	ev := notify.NewEvent(c.Name, arn, r.Stored.VersionID, r.Stored.Token, reasonOf(r.Stored, before, revoking))
	if a.Config.Notify.HookCommand != nil {
		ev.Previous = a.previousToken(ctx, c)
	}
	return ev, true
}

// previousStage labels the version AWSCURRENT left when the token was stored.
const previousStage = "AWSPREVIOUS"

// previousToken is the token in c's AWSPREVIOUS, the one the token just stored replaced, for the
// hook's output to be redacted of it (notify.Event.Previous); the zero value when there is none or
// it cannot be read. Only a hook prints what it likes, so only a hook costs this read.
func (a *App) previousToken(ctx context.Context, c *rotation.Client) clear.AccessToken {
	if a.Engine == nil || a.Engine.Store == nil {
		return clear.AccessToken{}
	}
	v, err := a.Engine.Store.Read(ctx, c.TokenSecretID, previousStage)
	if err != nil {
		return clear.AccessToken{}
	}
	doc, err := document.ParseToken([]byte(v.Value))
	if err != nil {
		return clear.AccessToken{}
	}
	return doc.AccessToken
}

// reasonOf is why stored was stored: revoke when the shell was revoking, forced when the rotation
// was asked for, healed when the token it replaced was no use to an ERP (before is the client's
// health as the attempt found it), scheduled otherwise. It lives here, with the engine's types,
// rather than in notify, so that push delivery does not depend on the engine.
func reasonOf(stored *rotation.Stored, before rotation.Health, revoking bool) notify.Reason {
	switch {
	case revoking:
		return notify.Revoke
	case stored != nil && stored.Forced:
		return notify.Forced
	case before == rotation.HealthNoToken || before == rotation.HealthExpired || before == rotation.HealthTokenLost:
		return notify.Healed
	}
	return notify.Scheduled
}

// ErrNotDelivered is the cause, for errors.Is, of a shell's error when a token was stored but the
// ERP could not be told; it is the fleet's, which rotate and revoke report.
var ErrNotDelivered = fleet.ErrNotDelivered

// Deliver returns push delivery for a fleet (fleet.Fleet.Deliver): each stored token is delivered
// with retries within the call (notify.Run), a final failure logged at error level by the notifier
// and told to rec. Nil when push delivery is not configured.
//
// A kind this process does not tell c of, while c's token secret is marked as told by it, is
// recorded as not delivered (Untold), whether or not push delivery is configured here: so Deliver
// is nil only when nothing can be recorded either.
func (a *App) Deliver(log *slog.Logger, rec notify.Recorder) func(ctx context.Context, c *rotation.Client, r rotation.Result, revoking bool) error {
	n := a.Notifier(notify.Run, log, rec)
	if n == nil && (a.Store == nil || a.Store.API == nil) {
		return nil
	}
	return func(ctx context.Context, c *rotation.Client, r rotation.Result, revoking bool) error {
		ev, ok := a.Event(ctx, c, r, "", revoking)
		if !ok {
			return nil
		}
		// Recorded first, at store time: a delivery may take a minute, and a newer token may be
		// stored and told meanwhile (Untold records only AWSCURRENT's).
		untold := a.Untold(ctx, c, n, ev, rec, log)
		var err error
		if n.Enabled(c.Name) {
			dctx, done := stopping(ctx)
			err = n.Deliver(dctx, ev)
			done()
		}
		return errors.Join(err, untold)
	}
}

// PushMarkPrefix starts the token secret's tags that mark it as told of its tokens by a kind of
// push delivery ("clear-rotator:push:webhook"): every delivery of that kind writes its mark,
// whether it succeeded or finally failed. A process that stores a token and does not tell a
// marked kind (a shell without the push settings, the Lambda for a hook) records it as not
// delivered (Untold). Remove a mark when no process tells that kind any more.
const PushMarkPrefix = "clear-rotator:push:"

// UntoldError is Untold's error: the token was stored but the kinds marked on the token secret,
// which this process does not tell, were not told of it.
type UntoldError struct {
	Kinds []string
}

func (e *UntoldError) Error() string {
	return fmt.Sprintf("the token secret is marked as told by %s (tag %s), which this process is not configured to tell: recorded as not delivered, for status (a warning says so when the tag could not be written); a daemon that tells it delivers it at its next check, and rotate or the Lambda at their next run; if no process tells it any more, remove the tag",
		strings.Join(e.Kinds, " and "), PushMarkPrefix+e.Kinds[0])
}

// Untold records, for each kind of push delivery that c's token secret is marked as told by
// (PushMarkPrefix) and that n (nil without push delivery) does not tell c of, the delivery of ev
// as failed: rec.Failed (an undelivered tag, which status shows and a resume delivers), and an
// error line. It returns an *UntoldError naming those kinds, or nil. A token secret that cannot
// be read is warned of, and counts as marked by nothing: that is all this process can know.
func (a *App) Untold(ctx context.Context, c *rotation.Client, n *notify.Notifier, ev notify.Event, rec notify.Recorder, log *slog.Logger) error {
	if a.Store == nil || a.Store.API == nil || len(n.Telling(c.Name, notify.Kinds)) == len(notify.Kinds) {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	record, err := a.readUndelivered(ctx, c)
	if err != nil {
		log.Warn("could not read whether the token secret is marked as told by push delivery", "client", c.Name, "error", err)
		return nil
	}
	if record.current != ev.VersionID {
		return nil // a newer token was stored since: its storer tells it, or records it
	}
	var untold []string
	for _, k := range record.marked {
		if !n.Tells(c.Name, k) {
			untold = append(untold, k)
		}
	}
	if len(untold) == 0 {
		return nil
	}
	at := time.Now()
	for _, k := range untold {
		if rec != nil {
			rec.Failed(ev, k, at)
		}
	}
	e := &UntoldError{Kinds: untold}
	log.Error("the ERP was not told of the new token", "client", c.Name, "kinds", untold, "version_id", ev.VersionID, "error", e)
	return e
}

// Resume returns the fleet's resumption of deliveries recorded as failed (fleet.Fleet.Resume): one
// attempt (notify.Once) at what Resumable finds, to the kinds not delivered, a failure logged and
// told to rec as Deliver's are. Nil when push delivery is not configured.
func (a *App) Resume(log *slog.Logger, rec notify.Recorder) func(ctx context.Context, c *rotation.Client) error {
	n := a.Notifier(notify.Once, log, rec)
	if n == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, c *rotation.Client) error {
		if !n.Enabled(c.Name) {
			return nil
		}
		ev, kinds, ok, err := a.ResumableBy(ctx, c, n, time.Now().Add(-RetryingTrust))
		if err != nil {
			log.Warn("could not read whether a delivery recorded as failed is to be resumed", "client", c.Name, "error", err)
			return nil
		}
		if !ok {
			return nil
		}
		log.Info("resuming a delivery recorded as failed", "client", c.Name, "kinds", kinds, "version_id", ev.VersionID, "webhook_id", ev.ID)
		ctx, done := stopping(ctx)
		defer done()
		return n.Only(kinds).Deliver(ctx, ev)
	}
}

// stopping returns ctx, ending when it does but with notify.ErrStopped as the cause, and
// reportReserve before its deadline. A run's context (the CLI's, the Lambda's) ends early only
// when the process is told to stop (a signal, the invocation's deadline), and it resumes nothing:
// the notifier reports each delivery cut short like one that finally failed (the error line, the
// undelivered tag a daemon resumes from). Past a Lambda's deadline the runtime is gone, so a
// delivery is given up early enough for that report to land before it.
func stopping(ctx context.Context) (context.Context, func()) {
	out, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(fmt.Errorf("%w (%v)", notify.ErrStopped, context.Cause(ctx))) })
	if end, ok := ctx.Deadline(); ok {
		early := time.AfterFunc(time.Until(end)-reportReserve, func() {
			cancel(fmt.Errorf("%w (the run's deadline is %s away: what is left of it records the delivery as failed)", notify.ErrStopped, reportReserve))
		})
		return out, func() { stop(); early.Stop(); cancel(nil) }
	}
	return out, func() { stop(); cancel(nil) }
}

// reportReserve is the end of a run's deadline that a delivery leaves to report that it was cut
// short: the undelivered tag (tagLimit), the notifier's error line and metric, the run's answer.
const reportReserve = 5 * time.Second

// tagLimit bounds the write or the removal of an undelivered tag: a report, which must fit in
// reportReserve.
const tagLimit = 4 * time.Second

// UndeliveredTagPrefix starts the token secret's tags that record a delivery that finally failed,
// one per kind ("clear-rotator:undelivered:webhook"), so that `rotator status`, which reads only
// Secrets Manager, can show what the daemon, a CLI run or the Lambda could not deliver. The value
// names the version and when; the tag is removed when a delivery of that kind succeeds.
const UndeliveredTagPrefix = "clear-rotator:undelivered:"

// tagger is the part of the Secrets Manager API that tags a secret; the SDK client has it.
type tagger interface {
	TagResource(ctx context.Context, params *secretsmanager.TagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error)
	UntagResource(ctx context.Context, params *secretsmanager.UntagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UntagResourceOutput, error)
}

// Recorder returns a notify.Recorder that tells next (when not nil) and records each failed
// delivery as a tag on the token secret, removing it once a delivery of that kind succeeds. A tag
// that cannot be written is logged and otherwise ignored: it is a report, not the delivery.
func (a *App) Recorder(next notify.Recorder, log *slog.Logger) notify.Recorder {
	return &tagRecorder{a: a, next: next, log: log}
}

type tagRecorder struct {
	a    *App
	next notify.Recorder
	log  *slog.Logger
}

func (r *tagRecorder) api() tagger {
	if r.a.Store == nil {
		return nil
	}
	t, _ := r.a.Store.API.(tagger) // the SDK's client tags, and so does the in-memory fake
	return t
}

// Failed records the failure on the token secret, then tells next: the record comes first, so that
// a failure the metrics show is on record for status (and, for Delivered, a failure the metrics no
// longer show is off it). The record says whether the delivery goes on (Event.Retrying).
func (r *tagRecorder) Failed(ev notify.Event, kind string, at time.Time) {
	if r.next != nil {
		defer r.next.Failed(ev, kind, at)
	}
	r.record(ev, kind, at)
}

// StillRetrying implements notify.Refresher: the record of a delivery that goes on is renewed, so
// that the other processes leave it to its retrier (RetryingTrust).
func (r *tagRecorder) StillRetrying(ev notify.Event, kind string, at time.Time) {
	r.record(ev, kind, at)
}

// GaveUp implements notify.Finisher: the delivery recorded as going on ended undelivered, and its
// record is rewritten as final, for any process to take up.
func (r *tagRecorder) GaveUp(ev notify.Event, kind string, at time.Time) {
	ev.Retrying = false
	r.record(ev, kind, at)
}

// record writes the failure of ev's delivery of kind on the token secret, with the mark. A token no
// longer AWSCURRENT is not recorded, only the mark: its failure, ending after a newer token was
// stored, would overwrite that token's record, and the newer token's storer tells it or records
// that it did not (Untold). A record that cannot be read within a quarter of tagLimit is written,
// as before this check, with the rest of tagLimit.
func (r *tagRecorder) record(ev notify.Event, kind string, at time.Time) {
	t := r.api()
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tagLimit)
	defer cancel()
	tags := []types.Tag{{Key: aws.String(UndeliveredTagPrefix + kind), Value: aws.String(undeliveredValue(ev, at))}, mark(kind)}
	rctx, rcancel := context.WithTimeout(ctx, tagLimit/4)
	if record, err := r.a.readRecord(rctx, ev.SecretID); err == nil && record.current != "" && record.current != ev.VersionID {
		tags = tags[1:]
	}
	rcancel()
	_, err := t.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(ev.SecretID), Tags: tags})
	if err != nil && r.log != nil {
		r.log.Warn("could not record the failed delivery on the token secret; rotator status will not show it",
			"client", ev.Client, "kind", kind, "error", reduceErr("TagResource", ev.SecretID, err))
	}
}

// Superseded tells next; the tag, if any, still names a version that was not delivered.
func (r *tagRecorder) Superseded(ev notify.Event, kind string, at time.Time) {
	if r.next != nil {
		r.next.Superseded(ev, kind, at)
	}
}

// Delivered removes the kind's tag. A process that did not write it removes it too, since a CLI
// run or the Lambda may succeed where the daemon failed; the call is made only after a delivery,
// which is rare next to the checks.
func (r *tagRecorder) Delivered(ev notify.Event, kind string, at time.Time) {
	if r.next != nil {
		defer r.next.Delivered(ev, kind, at)
	}
	t := r.api()
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tagLimit)
	defer cancel()
	// Telling an older token clears nothing of a newer one's record. A record that cannot be read
	// within a quarter of tagLimit (the zero record) may be cleared, as before this check, with the
	// rest of tagLimit.
	rctx, rcancel := context.WithTimeout(ctx, tagLimit/4)
	record, _ := r.a.readRecord(rctx, ev.SecretID)
	rcancel()
	if record.names(kind, ev.VersionID) {
		if _, err := t.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String(ev.SecretID),
			TagKeys: []string{UndeliveredTagPrefix + kind}}); err != nil && r.log != nil {
			r.log.Warn("could not clear the record of a failed delivery on the token secret", "client", ev.Client, "kind", kind,
				"error", reduceErr("UntagResource", ev.SecretID, err))
		}
	}
	if _, err := t.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(ev.SecretID),
		Tags: []types.Tag{mark(kind)}}); err != nil && r.log != nil {
		r.log.Warn("could not mark the token secret as told by push delivery; a token stored where it is not configured will not be recorded as not delivered", "client", ev.Client, "kind", kind,
			"error", reduceErr("TagResource", ev.SecretID, err))
	}
}

// mark is the tag that marks a token secret as told by kind (PushMarkPrefix).
func mark(kind string) types.Tag {
	return types.Tag{Key: aws.String(PushMarkPrefix + kind), Value: aws.String("told")}
}

// Undelivered returns what the token secret of c records as not delivered, one record per kind,
// sorted; nil when nothing is. It is read whether or not this process has push
// delivery configured: the tag is written by whichever process failed (the daemon, say), and an
// operator's status, or push switched off since, must still show it.
func (a *App) Undelivered(ctx context.Context, c *rotation.Client) ([]fleet.Undelivered, error) {
	if a.Store == nil || a.Store.API == nil {
		return nil, nil
	}
	rec, err := a.readUndelivered(ctx, c)
	if err != nil {
		return nil, err
	}
	return rec.records(), nil
}

// undeliveredRecord is what one DescribeSecret of a token secret says of its deliveries: the
// undelivered tags, in the order Secrets Manager lists them, the version AWSCURRENT is on ("" when
// none is) and the secret's ARN. It is the one reading of the tags, for status (Undelivered) and
// for resuming (Resumable).
type undeliveredRecord struct {
	tags    []undeliveredTag
	current string
	arn     string
	marked  []string // the kinds the secret is marked as told by (PushMarkPrefix), sorted
}

// undeliveredTag is one undelivered tag: its kind ("webhook", "hook"), its value as written, and
// the version and reason parseUndelivered reads from it (no version when the value is malformed),
// and whether the process that wrote it goes on retrying the delivery.
type undeliveredTag struct {
	kind, value string
	version     string
	at          *time.Time
	reason      notify.Reason
	retrying    bool
}

// readUndelivered reads c's token secret's undelivered tags with one DescribeSecret. A missing
// secret is an error wrapping the SDK's *types.ResourceNotFoundException.
func (a *App) readUndelivered(ctx context.Context, c *rotation.Client) (undeliveredRecord, error) {
	return a.readRecord(ctx, c.TokenSecretID)
}

// readRecord reads what the token secret id records of its deliveries, with one DescribeSecret.
func (a *App) readRecord(ctx context.Context, id string) (undeliveredRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := a.Store.API.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		return undeliveredRecord{}, reduceErr("DescribeSecret", id, err)
	}
	return undeliveredOf(out), nil
}

// names reports whether a delivery of version of kind may clear r's record of kind: the version
// is AWSCURRENT (or AWSCURRENT is unknown), or the record names it, or there is none.
func (r undeliveredRecord) names(kind, version string) bool {
	if r.current == "" || r.current == version {
		return true
	}
	for _, t := range r.tags {
		if t.kind == kind {
			return t.version == version
		}
	}
	return true
}

// undeliveredOf reads the undelivered tags out of a DescribeSecret's answer.
func undeliveredOf(out *secretsmanager.DescribeSecretOutput) undeliveredRecord {
	rec := undeliveredRecord{arn: aws.ToString(out.ARN)}
	for v, stages := range out.VersionIdsToStages {
		if slices.Contains(stages, rotation.CurrentStage) {
			rec.current = v
		}
	}
	for _, t := range out.Tags {
		if kind, ok := strings.CutPrefix(aws.ToString(t.Key), PushMarkPrefix); ok && slices.Contains(notify.Kinds, kind) {
			rec.marked = append(rec.marked, kind)
		}
		kind, ok := strings.CutPrefix(aws.ToString(t.Key), UndeliveredTagPrefix)
		if !ok {
			continue
		}
		value := aws.ToString(t.Value)
		version, at, reason := parseUndelivered(value)
		rec.tags = append(rec.tags, undeliveredTag{kind: kind, value: value, version: version, at: at, reason: reason,
			retrying: slices.Contains(strings.Fields(value), retryingWord)})
	}
	slices.Sort(rec.marked)
	return rec
}

// records are status's records, sorted by their lines: every undelivered tag, whichever version it
// names.
func (r undeliveredRecord) records() []fleet.Undelivered {
	var out []fleet.Undelivered
	for _, t := range r.tags {
		out = append(out, fleet.Undelivered{Kind: t.kind, VersionID: t.version, At: t.at, Reason: string(t.reason),
			Superseded: r.current != "" && t.version != "" && t.version != r.current, Record: t.value})
	}
	slices.SortFunc(out, func(a, b fleet.Undelivered) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// due is what is to be resumed: the kinds, sorted, with a tag naming a version that can be read
// (one naming AWSCURRENT, or an older one: a delivery of the newer token of that kind would have
// removed the tag, so it was not told either, and the token to tell is AWSCURRENT's), and the reason
// of the last tag naming AWSCURRENT as Secrets Manager lists them (scheduled when none does); no
// kinds when none is due or no version is AWSCURRENT. With fresh not zero, a tag of AWSCURRENT's
// delivery that its writer goes on retrying, written after fresh, is left to it; one of an older
// token is no longer retried (the newer token superseded it), and leaves nothing to anyone.
func (r undeliveredRecord) due(fresh time.Time) (kinds []string, reason notify.Reason) {
	reason = notify.Scheduled
	for _, t := range r.tags {
		if r.current == "" || t.version == "" {
			continue
		}
		if t.version == r.current {
			reason = t.reason
		}
		if t.version == r.current && t.retrying && !fresh.IsZero() && t.at != nil && t.at.After(fresh) {
			continue
		}
		kinds = append(kinds, t.kind)
	}
	slices.Sort(kinds)
	return kinds, reason
}

// undeliveredValue is the undelivered tag's value: "version V at T reason R". It names the
// version, for status and for Resumable, and the event's reason, so that a resumed delivery says
// what the first one would have. Only letters, digits, spaces and _ . : / = + - @ are allowed in a
// tag's value, hence no punctuation.
func undeliveredValue(ev notify.Event, at time.Time) string {
	v := "version " + ev.VersionID + " at " + at.UTC().Format(time.RFC3339) + " reason " + string(ev.Reason)
	if ev.Retrying {
		v += " " + retryingWord
	}
	return v
}

// retryingWord ends the value of an undelivered tag whose writer goes on retrying the delivery (the
// daemon): RetryingTrust.
const retryingWord = "retrying"

// RetryingTrust is how long a process that resumes at each check or run (a daemon's check, rotate,
// the Lambda) leaves a delivery to the daemon that recorded it as failing and goes on retrying it:
// with several replicas, each would otherwise retry every failing delivery, and deliver it once
// each when the receiver comes back. The retrier renews its record every notify.RetryRecordEvery;
// a record older than three of those is taken for one whose retrier is gone (a replica killed
// without a word). A start or a reload resumes it at once, since the retrier may be itself.
const RetryingTrust = 3 * notify.RetryRecordEvery

// parseUndelivered reads undeliveredValue's fields back: the version, when (nil when it cannot be
// read), and the reason (Scheduled for a value without one, as older releases wrote, or with one
// this release does not know).
func parseUndelivered(value string) (version string, at *time.Time, reason notify.Reason) {
	f := strings.Fields(value)
	if len(f) < 2 || f[0] != "version" {
		return "", nil, ""
	}
	if i := slices.Index(f, "at"); i > 0 && i+1 < len(f) {
		if t, err := time.Parse(time.RFC3339, f[i+1]); err == nil {
			at = &t
		}
	}
	reason = notify.Scheduled
	if i := slices.Index(f, "reason"); i > 0 && i+1 < len(f) {
		if r := notify.Reason(f[i+1]); slices.Contains([]notify.Reason{notify.Scheduled, notify.Forced, notify.Healed, notify.Revoke}, r) {
			reason = r
		}
	}
	return f[1], at, reason
}

// NothingRecorded reports whether c's token secret holds no undelivered tag as a DescribeSecret
// made through the store within the last within found it (the engine's read in the check just
// made): a process that resumes at every check can then skip its own read. False when it cannot
// know.
func (a *App) NothingRecorded(c *rotation.Client, within time.Duration) bool {
	if a.Store == nil {
		return false
	}
	tags, at, ok := a.Store.Tags(c.TokenSecretID)
	if !ok || time.Since(at) > within {
		return false
	}
	for k := range tags {
		if strings.HasPrefix(k, UndeliveredTagPrefix) {
			return false
		}
	}
	return true
}

// Resumable returns the delivery of c's token in AWSCURRENT that a process recorded as failed (its
// undelivered tags: the daemon before it stopped, a replica, a CLI run, the Lambda), and the kinds
// ("webhook", "hook") not delivered; ok is false when there is none. A tag naming an older version
// asks for AWSCURRENT's token too: a delivery of the newer token of its kind would have removed it,
// so the ERP was told of neither (the newer stored where push delivery is not configured), and the
// older token is not the one to tell. The event's webhook-id is the version's, so a receiver that
// got it after all acts once.
func (a *App) Resumable(ctx context.Context, c *rotation.Client) (ev notify.Event, kinds []string, ok bool, err error) {
	return a.ResumableBy(ctx, c, nil, time.Time{})
}

// ResumableBy is Resumable for a process that tells what n tells (nil: every kind): the kinds are
// those it tells, and the token is read only when there are some. With fresh not zero, the
// deliveries a daemon goes on retrying, recorded after fresh, are left to it (RetryingTrust).
func (a *App) ResumableBy(ctx context.Context, c *rotation.Client, n *notify.Notifier, fresh time.Time) (ev notify.Event, kinds []string, ok bool, err error) {
	if a.Store == nil || a.Store.API == nil || a.Engine == nil || a.Engine.Store == nil {
		return notify.Event{}, nil, false, nil
	}
	rec, err := a.readUndelivered(ctx, c)
	if _, missing := errors.AsType[*types.ResourceNotFoundException](err); missing {
		return notify.Event{}, nil, false, nil // no token stored yet: nothing to tell
	}
	if err != nil {
		return notify.Event{}, nil, false, err
	}
	kinds, reason := rec.due(fresh)
	if n != nil {
		kinds = n.Telling(c.Name, kinds) // a kind this process does not tell is left to one that does
	}
	if len(kinds) == 0 {
		return notify.Event{}, nil, false, nil
	}
	v, err := a.Engine.Store.ReadVersion(ctx, c.TokenSecretID, rec.current)
	if err != nil {
		return notify.Event{}, nil, false, err
	}
	doc, err := document.ParseToken([]byte(v.Value))
	if err != nil {
		// Not a token document (written by hand?): nothing an ERP could be told of.
		return notify.Event{}, nil, false, fmt.Errorf("the token secret's AWSCURRENT is not a token document: %w", err)
	}
	arn := rec.arn
	if arn == "" {
		arn = c.TokenSecretID
	}
	ev = notify.NewEvent(c.Name, arn, rec.current, doc, reason)
	if a.Config.Notify.HookCommand != nil && slices.Contains(kinds, notify.KindHook) {
		ev.Previous = a.previousToken(ctx, c)
	}
	return ev, kinds, true, nil
}

// reduceErr keeps an SDK error's code and message, as the store does, for a log line.
func reduceErr(op, secretID string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		return &store.Error{Op: op, SecretID: secretID, Code: api.ErrorCode(), Message: api.ErrorMessage(), Err: err}
	}
	return &store.Error{Op: op, SecretID: secretID, Message: err.Error(), Err: err}
}
