package rig_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestConsumerHelpersInMemory: what a token consumer's unit tests use of a world in memory, inside
// a bubble: Issue (Clear revokes the previous token), StoreToken (AWSCURRENT), the business
// endpoints through Transport, and StoreInput for a value the rotator never writes.
func TestConsumerHelpersInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := rig.New(t, rig.Options{Memory: true})
		inv := w.HandleInvoices()
		client := &http.Client{Transport: w.Transport()}
		call := func(method, path, tok string) (int, string) {
			req, _ := http.NewRequest(method, w.ClearURL+path, strings.NewReader(`{"invoice":1}`))
			req.Header.Set(clear.HeaderAuthToken, tok)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}

		tok1 := w.Issue()
		v1 := w.StoreToken(tok1)
		if got, id := w.MustCurrent(); got.AccessToken.Reveal() != tok1 || id != v1 || !w.Live() {
			t.Fatalf("AWSCURRENT is not the stored live token (version %s, want %s)", id, v1)
		}
		if code, body := call(http.MethodPost, rig.InvoicePath, tok1); code != http.StatusOK || !strings.Contains(body, `"bytes":13`) {
			t.Fatalf("invoice with the live token: %d %s", code, body)
		}
		tok2 := w.Issue()
		if w.Live() || !w.Emu.Live(tok2) {
			t.Fatal("Issue did not revoke the stored token")
		}
		for _, path := range []string{rig.InvoicePath, rig.PingPath} {
			method := http.MethodPost
			if path == rig.PingPath {
				method = http.MethodGet
			}
			if code, body := call(method, path, tok1); code != http.StatusUnauthorized || !strings.Contains(body, "CLI-TOK-002") {
				t.Errorf("%s with a revoked token: %d %s, want Clear's 401", path, code, body)
			}
		}
		if inv.Count() != 2 {
			t.Errorf("the invoice endpoint answered %d requests, want 2", inv.Count())
		}
		if len(w.Requests()) != 2 {
			t.Errorf("%d token requests recorded, want the 2 of Issue (business calls are not)", len(w.Requests()))
		}

		other := rig.New(t, rig.Options{Share: w, Name: "binary"})
		other.StoreInput(&secretsmanager.PutSecretValueInput{SecretBinary: []byte("raw")})
		got, err := other.SM.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: &other.TokenID})
		if err != nil || got.SecretString != nil || string(got.SecretBinary) != "raw" {
			t.Fatalf("binary value: %v %+v", err, got)
		}
	})
}
