package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

var (
	update  = flag.Bool("update", false, "rewrite the golden files under testdata")
	errorID = regexp.MustCompile(`error_id [0-9a-f-]{36}`)
)

// TestResultJSONIsTheDocumentedShape pins the bytes of a Result as `rotator rotate --json`, `revoke
// --json` and the Lambda's answers carry it (README, docs/lambda.md), for results the engine itself
// makes on every path: rotated, not due, unreadable, refused, backing off, limited, busy after the
// claim, lost, duplicate, degraded, never expiring. The shape is the operators' contract; the golden
// file was written before Result stopped copying its Status's fields and must not change.
func TestResultJSONIsTheDocumentedShape(t *testing.T) {
	type scenario struct {
		name string
		o    rig.Options
		run  func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result
	}
	rotate := func(w *rig.World, c *rotation.Client, force bool) rotation.Result {
		return w.Engine("a").Rotate(context.Background(), c, force)
	}
	hour := rig.Options{Lifetime: time.Hour}
	scenarios := []scenario{
		{"rotated-then-not-due", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			return []rotation.Result{rotate(w, c, false), rotate(w, c, false)}
		}},
		{"never-expires", rig.Options{}, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			return []rotation.Result{rotate(w, c, false), rotate(w, c, false)}
		}},
		{"unreadable", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			w.API.Fail(func(op string, _ any) error {
				if op == "GetSecretValue" {
					return errors.New(`throttled <"&">`)
				}
				return nil
			})
			defer w.API.Fail(nil)
			return []rotation.Result{first, rotate(w, c, false)}
		}},
		{"server-error-then-backing-off", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			w.Emu.Inject(emulator.Fault{Status: 500})
			second := rotate(w, c, true)
			w.Emu.Inject(emulator.Fault{Status: 429})
			return []rotation.Result{first, second, rotate(w, c, true), rotate(w, c, false)}
		}},
		{"refused-then-blocked", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			w.Emu.SetSecretActive(w.Secrets[0], false)
			return []rotation.Result{first, rotate(w, c, true), rotate(w, c, true)}
		}},
		{"limited", rig.Options{Lifetime: time.Hour, DailyLimit: 1}, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			return []rotation.Result{rotate(w, c, false), rotate(w, c, true)}
		}},
		{"busy-after-claim", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			// Another rotator stores a token between this one's claim and its re-read.
			w.API.Fail(func(op string, in any) error {
				if p, ok := in.(*secretsmanager.PutSecretValueInput); ok && slices.Contains(p.VersionStages, document.StateStage) {
					_, err := w.SM.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
						SecretId: aws.String(w.TokenID), ClientRequestToken: aws.String("00000000-0000-0000-0000-000000000001"),
						SecretString: aws.String(`{"access_token":"other-rotators-token-value"}`)})
					if err != nil {
						t.Errorf("storing another rotator's token: %v", err)
					}
				}
				return nil
			})
			defer w.API.Fail(nil)
			w.Hide("other-rotators-token-value")
			return []rotation.Result{first, rotate(w, c, true)}
		}},
		{"lost-and-released", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			w.API.Fail(func(op string, in any) error {
				if p, ok := in.(*secretsmanager.PutSecretValueInput); ok && !slices.Contains(p.VersionStages, document.StateStage) {
					return errors.New("token write refused")
				}
				return nil
			})
			defer w.API.Fail(nil)
			return []rotation.Result{first, rotate(w, c, true)}
		}},
		{"lost-not-released", hour, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			puts := 0
			w.API.Fail(func(op string, in any) error {
				if _, ok := in.(*secretsmanager.PutSecretValueInput); ok {
					if puts++; puts > 1 {
						return errors.New("every write after the claim refused")
					}
				}
				return nil
			})
			defer w.API.Fail(nil)
			return []rotation.Result{first, rotate(w, c, true)}
		}},
		{"revoke-twice", rig.Options{Lifetime: time.Hour, APIClients: 2}, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			var out []rotation.Result
			for range 2 {
				for _, rv := range w.Engine("a").Revoke(context.Background(), c, "event-1") {
					out = append(out, rv.Result)
				}
			}
			return out
		}},
		{"degraded", rig.Options{Lifetime: time.Hour, APIClients: 2}, func(t *testing.T, w *rig.World, c *rotation.Client) []rotation.Result {
			first := rotate(w, c, false)
			w.Emu.SetSecretActive(w.Secrets[1], false)
			second := rotate(w, c, true)
			return []rotation.Result{first, second, rotate(w, c, true), rotate(w, c, false)}
		}},
	}
	var got bytes.Buffer
	for _, s := range scenarios {
		inBubble(t, s.o, func(t *testing.T, w *rig.World, c *rotation.Client) {
			results := s.run(t, w, c)
			got.WriteString("== " + s.name + "\n")
			for _, r := range results {
				b, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				got.Write(b)
				got.WriteByte('\n')
			}
			// As the CLI writes it: indented, inside its answer.
			enc := json.NewEncoder(&got)
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string][]rotation.Result{"results": results[len(results)-1:]}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Clear's error_id is random: it is Clear's, not the rotator's.
	out := errorID.ReplaceAll(got.Bytes(), []byte("error_id ID"))
	rig.Golden(t, filepath.Join("testdata", "result_json.golden"), out, *update)
}

// TestREADMENamesEveryResultKey fails when the README's paragraph on `rotate --json` leaves out a
// key of the result document, or an outcome.
func TestREADMENamesEveryResultKey(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("**`rotate --json`**"))
	if i < 0 {
		t.Fatal("README.md has no paragraph on **`rotate --json`**")
	}
	para, _, _ := bytes.Cut(data[i:], []byte("\n\n"))
	var keys map[string]any
	b, _ := json.Marshal(rotation.Result{})
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for k := range keys {
		names = append(names, k)
	}
	for _, o := range []rotation.Outcome{rotation.Rotated, rotation.NotDue, rotation.Busy, rotation.Duplicate, rotation.Limited, rotation.Blocked, rotation.Failed} {
		names = append(names, string(o))
	}
	for _, k := range names {
		if !bytes.Contains(para, []byte("`"+k+"`")) {
			t.Errorf("the README's paragraph on rotate --json does not name `%s`", k)
		}
	}
}
