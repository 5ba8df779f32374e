package rotation

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/store"
)

// Secrets Manager's own rotation (the Lambda's four steps) names a version and moves staging labels
// itself. What it needs of the token secret is here, behind the engine like every other read and
// write of it, so that the Lambda's shell holds no Secrets Manager code of its own.

// Version reads version id of c's token secret. found is false when there is no such version, or
// it holds no value yet (Secrets Manager's RotateSecret labels the version AWSPENDING before
// createSecret gives it one); tok is nil when its value is not a token document.
func (e *Engine) Version(ctx context.Context, c *Client, id string) (tok *document.Token, found bool, err error) {
	v, err := e.Store.ReadVersion(ctx, c.TokenSecretID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("reading version %s: %w", id, err)
	case v.Value == "":
		return nil, false, nil
	}
	t, perr := document.ParseToken([]byte(v.Value))
	if perr != nil {
		return nil, true, nil
	}
	return &t, true, nil
}

// Unset reports whether version id of c's token secret holds the document a token secret holds
// before its first token ("{}", what the engine and the SAM template create it with). Secrets
// Manager's test of a rotation configuration (RotateSecret without rotating at once) copies the
// current value into a version of its own and runs testSecret on it alone; before the first token
// that value is this document, which is no token and no fault either.
func (e *Engine) Unset(ctx context.Context, c *Client, id string) (bool, error) {
	v, err := e.Store.ReadVersion(ctx, c.TokenSecretID, id)
	if err != nil {
		return false, fmt.Errorf("reading version %s: %w", id, err)
	}
	return strings.TrimSpace(v.Value) == emptyDocument, nil
}

// Finish makes version id of c's token secret AWSCURRENT, unless a newer token is current already,
// and takes the label pending off it; it writes nothing when that is already so. It returns what it
// did, in words.
func (e *Engine) Finish(ctx context.Context, c *Client, id, pending string) (string, error) {
	secretID := c.TokenSecretID
	stages, err := e.Store.Stages(ctx, secretID)
	if err != nil {
		return "", fmt.Errorf("reading the staging labels: %w", err)
	}
	var done []string
	if cur := stages[CurrentStage]; cur != id {
		moved, err := e.promote(ctx, c, id, cur)
		if err != nil {
			return "", err
		}
		done = append(done, moved)
	}
	if stages[pending] == id {
		if err := e.Store.MoveStage(ctx, secretID, pending, "", id); err != nil {
			return "", fmt.Errorf("removing %s from version %s: %w", pending, id, err)
		}
		done = append(done, "removed "+pending)
	}
	if len(done) == 0 {
		return "version " + id + " is " + CurrentStage + " and " + pending + " is gone already: nothing to do", nil
	}
	return strings.Join(done, "; "), nil
}

// promote moves AWSCURRENT from version cur to version id, unless cur holds a newer token: another
// rotation (the schedule, an operator's force) may have stored one since createSecret, and moving
// AWSCURRENT back would hand ERP systems a token that Clear may already have revoked.
func (e *Engine) promote(ctx context.Context, c *Client, id, cur string) (string, error) {
	pending, found, err := e.Version(ctx, c, id)
	switch {
	case err != nil:
		return "", err
	case !found || pending == nil:
		return "", fmt.Errorf("version %s holds no token to make current", id)
	}
	current, err := e.Store.Read(ctx, c.TokenSecretID, CurrentStage)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("reading AWSCURRENT: %w", err)
	}
	if t, perr := document.ParseToken([]byte(current.Value)); err == nil && perr == nil && t.IssuedAt.After(pending.IssuedAt) {
		e.Log.Info("a newer token is already AWSCURRENT; leaving it there", "client", c.Name, "current_version", cur)
		return "left AWSCURRENT on the newer version " + cur, nil
	}
	if err := e.Store.MoveStage(ctx, c.TokenSecretID, CurrentStage, id, cur); err != nil {
		return "", fmt.Errorf("moving AWSCURRENT to version %s: %w", id, err)
	}
	return "moved AWSCURRENT to version " + id, nil
}
