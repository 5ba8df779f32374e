package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestProcessSharedClientSecretIsRefused: two clients whose client secret ids differ but hold the
// same value would each revoke the other's token. check already refuses them; rotate, revoke and
// the daemon refuse them too, without asking Clear (issue 19 item 14).
func TestProcessSharedClientSecretIsRefused(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	env := sharedSecretClients(t, w)

	wantCode(t, rotatorEnv(w, env, "rotate"), 1, "hold the same client secret")
	wantCode(t, rotatorEnv(w, env, "rotate", "--client", "b", "--force"), 1, "hold the same client secret")
	wantCode(t, rotatorEnv(w, env, "revoke", "--yes", "--client", "a"), 1, "hold the same client secret")
	// status says why nothing rotates them: blocked until the client secret changes.
	wantCode(t, rotatorEnv(w, env, "status", "--check", "--client", "b"), 1, "(until the client secret changes)")

	p := w.Daemon(append(env, "ROTATOR_HTTP_ADDR=")...)
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("the daemon started with two clients sharing a client secret:\n%s", p.Output())
	}
	if !strings.Contains(p.Output(), "hold the same client secret") {
		t.Fatalf("the daemon's refusal does not say why:\n%s", p.Output())
	}
	if w.ClearRequests() != 0 {
		t.Fatalf("%d request(s) to Clear with a shared client secret", w.ClearRequests())
	}
}

// sharedSecretClients configures two clients, a and b, whose client secret ids differ but whose
// secrets hold the same value (the world's first client secret), and returns the environment that
// selects them.
func sharedSecretClients(t *testing.T, w *rig.World) []string {
	t.Helper()
	var ids []string
	for _, n := range []string{"a", "b"} {
		id := w.TokenID + "-shared-secret-" + n
		if _, err := w.SM.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(w.Secrets[0])}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cfg := t.TempDir() + "/clients.yaml"
	yaml := "clients:\n" +
		"  - name: a\n    client_secret_id: " + ids[0] + "\n    token_secret_id: " + w.TokenID + "-a\n" +
		"  - name: b\n    client_secret_id: " + ids[1] + "\n    token_secret_id: " + w.TokenID + "-b\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"ROTATOR_CONFIG=" + cfg, "CLEAR_CLIENT_SECRET="}
}
