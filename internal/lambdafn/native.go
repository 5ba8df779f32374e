package lambdafn

// This file answers Secrets Manager's own rotation of a token secret (the console's "Rotate secret
// immediately", `aws secretsmanager rotate-secret`, a rotation schedule). Secrets Manager invokes
// the function four times per rotation, with {"SecretId", "ClientRequestToken", "Step"}; the token
// comes from the same engine as every other rotation: claim, count, limit, one request.
//
// Clear revokes the previous token of an API client the moment it issues a new one, so the new token
// cannot wait in AWSPENDING for finishSecret, which may come seconds later or never: createSecret
// stores it as version ClientRequestToken labelled AWSCURRENT and AWSPENDING at once. finishSecret
// then only tidies the labels up.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/fleet"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// PendingStage is the label Secrets Manager's rotation gives the version it creates.
const PendingStage = "AWSPENDING"

// StepAnswer is the answer to a Secrets Manager rotation step.
type StepAnswer struct {
	Step   Step   `json:"step"`
	Client string `json:"client"`
	// Version is the ClientRequestToken: the id of the version the rotation creates.
	Version string `json:"version"`
	Message string `json:"message"`
	// Result is the engine's result, for a createSecret that asked Clear.
	Result *rotation.Result `json:"result,omitempty"`
}

// rotationStep answers one step of Secrets Manager's rotation of a token secret.
func (h *Handler) rotationStep(ctx context.Context, e *rotation.Engine, ev Event, requestID string, log *slog.Logger) (any, error) {
	log = log.With("step", string(ev.Step), "version", ev.Token)
	fail := func(client, reason string, err error) (any, error) {
		serr := &StepError{Step: ev.Step, Client: client, Version: ev.Token, Reason: reason, Err: err}
		log.Error("the rotation step failed; Secrets Manager records the rotation as failed", "error", serr)
		return nil, serr
	}
	c, err := h.clientOfSecret(ctx, e, ev.SecretID)
	if err != nil {
		return fail("", err.Error(), err)
	}
	log = log.With("client", c.Name)
	ans := StepAnswer{Step: ev.Step, Client: c.Name, Version: ev.Token}

	switch ev.Step {
	case StepCreate:
		return h.createSecret(ctx, e, c, ev, ans, requestID, log, fail)

	case StepSet:
		// The token is Clear's to issue, and createSecret already has: there is no database
		// password to set anywhere.
		ans.Message = "nothing to set: Clear issued the token in createSecret"
		log.Info(ans.Message)
		return ans, nil

	case StepTest:
		tok, found, err := e.Version(ctx, c, ev.Token)
		switch {
		case err != nil:
			return fail(c.Name, err.Error(), err)
		case !found:
			return fail(c.Name, "version "+ev.Token+" does not exist: createSecret has not stored a token", nil)
		case tok == nil:
			// Secrets Manager's test of the rotation configuration (the template's RotationSchedule
			// does not rotate at once) copies the current value into a version of its own and
			// tests that alone: before the first token, the empty document.
			if unset, err := e.Unset(ctx, c, ev.Token); err == nil && unset {
				ans.Message = "version " + ev.Token + " holds the empty document the token secret has before its first token " +
					"(Secrets Manager's test of the rotation configuration): nothing to test"
				log.Info(ans.Message)
				return ans, nil
			}
			return fail(c.Name, "version "+ev.Token+" does not hold a well-formed token document", nil)
		}
		if now := e.Now().UTC(); tok.ValidTill != nil && !now.Before(*tok.ValidTill) {
			return fail(c.Name, "the token in version "+ev.Token+" expired at "+tok.ValidTill.UTC().Format(time.RFC3339), nil)
		}
		ans.Message = "version " + ev.Token + " holds a well-formed token document"
		log.Info(ans.Message)
		return ans, nil

	case StepFinish:
		msg, err := e.Finish(ctx, c, ev.Token, PendingStage)
		if err != nil {
			return fail(c.Name, err.Error(), err)
		}
		ans.Message = msg
		log.Info(msg)
		return ans, nil
	}
	return fail(c.Name, "unknown step", nil)
}

// createSecret asks Clear for the rotation's token and stores it as version ev.Token, AWSCURRENT and
// AWSPENDING at once; a version that already holds the token this rotation stored is a retried
// step.
func (h *Handler) createSecret(ctx context.Context, e *rotation.Engine, c *rotation.Client, ev Event, ans StepAnswer,
	requestID string, log *slog.Logger, fail func(client, reason string, err error) (any, error)) (any, error) {
	event := "rotation/" + ev.Token
	tok, found, err := e.Version(ctx, c, ev.Token)
	if err != nil {
		return fail(c.Name, err.Error(), err)
	}
	if found {
		// Secrets Manager's contract: createSecret puts a new version with this id. One that
		// exists already is this step's own work only when this rotation stored it (a retried
		// createSecret, which Secrets Manager sends after a failed or timed-out invocation);
		// any other version is not a token this rotation issued, and passing it off as one
		// would let testSecret and finishSecret promote an old token.
		if tok == nil {
			return fail(c.Name, "version "+ev.Token+" already exists but holds no token document; it was not written by this function", nil)
		}
		acted, err := e.Acted(ctx, c, event)
		if err != nil {
			return fail(c.Name, err.Error(), err)
		}
		if !acted {
			return fail(c.Name, "version "+ev.Token+" already exists and was not stored by this rotation; createSecret must create a new version: "+
				"start the rotation again with a new ClientRequestToken", nil)
		}
		ans.Message = "the version already holds the token this rotation stored: a retried step, nothing to do"
		log.Info(ans.Message)
		return ans, nil
	}
	// The guard every other rotation goes through: a client secret that is also another client's
	// would revoke that client's token with this request.
	if g := h.app.Guard; g != nil {
		if err := g.Refusal(ctx, c); err != nil {
			h.record(e, c, fleet.Refused(ctx, e, c, err), requestID, log)
			return fail(c.Name, err.Error(), err)
		}
	}
	log.Info("asking Clear for a new token for Secrets Manager's rotation")
	r := e.Run(ctx, c, rotation.Request{Force: true, Event: event, TokenVersion: ev.Token, Stages: []string{PendingStage}}, nil)
	h.record(e, c, r, requestID, log)
	h.tell(ctx, c, r, requestID, log) // push delivery (push.go)
	ans.Result = &r
	switch r.Outcome {
	case rotation.Rotated:
		ans.Message = "stored a new token as version " + ev.Token + ", labelled AWSCURRENT and AWSPENDING"
		log.Info(ans.Message)
		return ans, nil
	case rotation.Duplicate:
		// This step's rotation stored its token, or its claim is still live: only the version
		// itself says whether the step is done.
		tok, found, err := e.Version(ctx, c, ev.Token)
		if err == nil && found && tok != nil {
			ans.Message = "the version already holds the token this rotation stored: a retried step, nothing to do"
			log.Info(ans.Message)
			return ans, nil
		}
		return fail(c.Name, "an earlier delivery of this step is still asking Clear or storing the token (its claim is live); "+
			"a retry after it finishes finds the version, or asks again if it failed (a state written by an older version "+
			"that recorded the step without its token needs a new rotation)", r.Err)
	default:
		return fail(c.Name, fmt.Sprintf("%s: %s", r.Outcome, r.Message), r.Err)
	}
}

// unquoted is a Secrets Manager error about a secret id shownSecretID does not show, with neither
// that id nor Secrets Manager's message (which may quote it): its code only.
func unquoted(err error) error {
	var se *store.Error
	if !errors.As(err, &se) {
		return errors.New("the call failed")
	}
	c := *se
	c.SecretID, c.Message = "(the secret given)", ""
	return &c
}

// secretARN is the shape of the SecretId Secrets Manager puts in a rotation event: the secret's
// ARN, whose name part may hold only a secret name's characters.
var secretARN = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$`)

// shownSecretID names a rotation event's SecretId in an error: one Secrets Manager knows (exists),
// or an ARN, as Secrets Manager sends, is quoted; anything else only by its length, since it may be
// a value pasted in its place (see EventError).
func shownSecretID(id string, exists bool) string {
	if exists || secretARN.MatchString(id) {
		return fmt.Sprintf("secret %q", id)
	}
	return fmt.Sprintf("the secret given (%d characters, not shown: no secret has that id, and it is not a Secrets Manager ARN)", len([]rune(id)))
}

// clientOfSecret returns the configured client whose token secret is secretID. Secrets Manager
// sends the secret's full ARN, while the configuration usually names the secret, and may hold its
// ARN or a partial ARN. Rather than parse the name out of the ARN (a name may itself end in what
// looks like the random "-XXXXXX" suffix), it asks Secrets Manager: one DescribeSecret of the
// event's secret gives its name and ARN, and when neither is configured as such, the configured
// token secrets are described in turn and matched by ARN. An exact match of the configured id
// needs no call at all.
func (h *Handler) clientOfSecret(ctx context.Context, e *rotation.Engine, secretID string) (*rotation.Client, error) {
	for _, c := range h.app.Clients {
		if c.TokenSecretID == secretID {
			return c, nil
		}
	}
	ids := make([]string, len(h.app.Clients))
	for i, c := range h.app.Clients {
		ids[i] = c.TokenSecretID
	}
	notOurs := func(exists bool) string {
		return fmt.Sprintf("no configured client keeps its token in %s (configured token secrets: %s); "+
			"attach the function only to the token secrets it keeps", shownSecretID(secretID, exists), strings.Join(ids, ", "))
	}
	name, arn, err := e.Store.Describe(ctx, secretID)
	if err != nil {
		if !secretARN.MatchString(secretID) {
			err = unquoted(err)
		}
		return nil, fmt.Errorf("%s; describing the secret failed: %w", notOurs(false), err)
	}
	for _, c := range h.app.Clients {
		if c.TokenSecretID == name || (arn != "" && c.TokenSecretID == arn) {
			return c, nil
		}
	}
	if arn != "" {
		for _, c := range h.app.Clients {
			if _, carn, err := e.Store.Describe(ctx, c.TokenSecretID); err == nil && carn == arn {
				return c, nil
			}
		}
	}
	return nil, errors.New(notOurs(true))
}
