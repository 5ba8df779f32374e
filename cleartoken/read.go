package cleartoken

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	sec "github.com/clear-rotator/clear-rotator/internal/secret"
)

// stageCurrent is always asked for explicitly: Secrets Manager returns AWSCURRENT by default, but
// moto (and any layer that forgets the default) may not after a staging label moved.
const stageCurrent = "AWSCURRENT"

// maxTokenLength bounds a token the Source accepts. Clear's tokens are about 100 characters; a
// header of kilobytes means the secret holds something else.
const maxTokenLength = 4096

// Token is one token read from the secret, with the version that held it. Its String and LogValue
// methods never show the token itself, so it can be printed and logged.
type Token struct {
	// value is held as a secret.AccessToken, which fmt cannot print even by reflection: an ERP
	// may keep a Token in an unexported field of its own, where fmt cannot call String.
	value sec.AccessToken
	// VersionID is the Secrets Manager version the token was read from.
	VersionID string
	// ValidTill is the token's expiry as the rotator stored it; zero when the token never expires
	// or the document did not say.
	ValidTill time.Time
}

// Value returns the token itself, for the x-cleartax-auth-token header.
func (t Token) Value() string { return t.value.Reveal() }

// String describes the token without revealing it.
func (t Token) String() string {
	return "cleartoken.Token{version " + t.VersionID + ", " + itoa(len(t.Value())) + " chars, redacted}"
}

// GoString is String, so that %#v does not reveal the token either.
func (t Token) GoString() string { return t.String() }

// LogValue implements slog.LogValuer without the token.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("version_id", t.VersionID), slog.Time("valid_till", t.ValidTill))
}

func itoa(n int) string { return strconv.Itoa(n) }

// read makes one GetSecretValue of AWSCURRENT, given at most timeout, and parses the token
// document.
func (s *Source) read(ctx context.Context, timeout time.Duration) (Token, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(s.secretID),
		VersionStage: aws.String(stageCurrent),
	})
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return Token{}, &Error{Kind: KindNotFound, SecretID: s.secretID, Err: err}
		}
		if ctx.Err() == nil || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			// Not when the wait it serves was ended (Clear accepted the token): nothing failed.
			s.log.Warn("cleartoken: reading the token secret failed", "secret_id", s.secretID, "error", err)
		}
		return Token{}, &Error{Kind: KindRead, SecretID: s.secretID, Err: err}
	}
	if out == nil {
		return Token{}, &Error{Kind: KindRead, SecretID: s.secretID, Err: errors.New("no answer")}
	}
	version := aws.ToString(out.VersionId)
	if out.SecretString == nil {
		if len(out.SecretBinary) > 0 {
			return Token{}, &Error{Kind: KindBinary, SecretID: s.secretID, VersionID: version}
		}
		return Token{}, &Error{Kind: KindNoToken, SecretID: s.secretID, VersionID: version}
	}
	t, perr := parse(*out.SecretString)
	if perr != nil {
		perr.SecretID, perr.VersionID = s.secretID, version
		return Token{}, perr
	}
	t.VersionID = version
	return t, nil
}

// parse reads a token document. Its errors never quote the document: encoding/json's own errors
// can carry a piece of the input, so they are reduced to a description and a byte offset.
func parse(s string) (Token, *Error) {
	if s == "" {
		return Token{}, &Error{Kind: KindNoToken}
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		e := &Error{Kind: KindMalformed, detail: "not a JSON object"}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			e.detail = "not valid JSON (at byte " + itoa(int(se.Offset)) + ")"
		}
		return Token{}, e
	}
	raw, ok := doc["access_token"]
	if !ok || string(raw) == "null" {
		return Token{}, &Error{Kind: KindNoToken}
	}
	var tok string
	if err := json.Unmarshal(raw, &tok); err != nil {
		return Token{}, &Error{Kind: KindMalformed, detail: "access_token is not a string"}
	}
	if tok == "" {
		return Token{}, &Error{Kind: KindNoToken}
	}
	if err := sec.CheckToken(tok, maxTokenLength); err != nil {
		return Token{}, &Error{Kind: KindMalformed, detail: "access_token " + err.Error()}
	}
	t := Token{value: sec.NewAccessToken(tok)}
	// valid_till is advisory: a consumer relies on Clear's 401, not on the clock. An unreadable
	// value is ignored rather than refused.
	if raw, ok := doc["valid_till"]; ok {
		var vt string
		if json.Unmarshal(raw, &vt) == nil {
			if at, err := time.Parse(time.RFC3339, vt); err == nil {
				t.ValidTill = at
			}
		}
	}
	return t, nil
}
