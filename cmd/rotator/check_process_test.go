package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// Process tests of what `rotator check` reads beside each client's secrets: the webhook's signing
// secret, the gateway's key and the hook command, each read as the process that uses it reads it.

// randomHex returns n random bytes in hex, for values the leak scan looks for.
func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// wantNotIn fails the test if value appears in r's output.
func wantNotIn(t *testing.T, r rig.Result, value string) {
	t.Helper()
	if strings.Contains(r.Stdout+r.Stderr, value) {
		t.Fatalf("the output shows the secret's value:\n%s", r.Output())
	}
}

// TestCheckReadsTheWebhookSigningSecret: check used to say ok with ROTATOR_WEBHOOK_SECRET_ID naming
// a secret that does not exist, or one that is no signing secret; every webhook would then fail.
func TestCheckReadsTheWebhookSigningSecret(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	rc := w.Receiver()
	good, bad := mototest.Name(t, "signing"), mototest.Name(t, "not-signing")
	w.CreateSecret(good, rc.Secret)
	badValue := "whsec_" + randomHex(t, 24) + "!"
	w.Hide(badValue)
	w.CreateSecret(bad, badValue)
	env := func(id string) []string {
		return []string{"ROTATOR_WEBHOOK_URL=" + rc.URL, "ROTATOR_WEBHOOK_SECRET_ID=" + id}
	}
	r := rotatorEnv(w, env("missing/signing"), "check")
	wantCode(t, r, 1, "webhook: FAIL: ")
	wantCode(t, r, 1, "ResourceNotFoundException")
	wantCode(t, r, 1, "rotator: 1 problem(s) found by the check")

	r = rotatorEnv(w, env(bad), "check")
	wantCode(t, r, 1, "webhook: FAIL: ")
	wantCode(t, r, 1, "invalid webhook signing secret")
	wantNotIn(t, r, badValue)
	wantCode(t, rotatorEnv(w, env(good), "check"), 0, "webhook: ok: the signing secret "+good)
	if w.ClearRequests() != 0 {
		t.Fatal("check called Clear")
	}
}

// TestCheckReadsTheGatewayKey: check used to say ok with ROTATOR_GATEWAY_KEY_ID naming a secret
// that does not exist or holds no usable key, which the gateway refuses to start with. Without a
// gateway to serve, the key is not read, as `rotator run` does not read it.
func TestCheckReadsTheGatewayKey(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	good, short := mototest.Name(t, "key"), mototest.Name(t, "short-key")
	goodValue, shortValue := randomHex(t, 16), randomHex(t, 4)
	w.Hide(goodValue, shortValue)
	w.CreateSecret(good, goodValue)
	w.CreateSecret(short, shortValue)
	env := func(id string) []string {
		return []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0", "ROTATOR_GATEWAY_KEY_ID=" + id}
	}
	r := rotatorEnv(w, env("missing/key"), "check")
	wantCode(t, r, 1, "gateway: FAIL: reading the key's secret missing/key")
	wantCode(t, r, 1, "rotator: 1 problem(s) found by the check")

	r = rotatorEnv(w, env(short), "check")
	wantCode(t, r, 1, "gateway: FAIL: the key's secret "+short+" holds no key of at least 16 characters")
	wantNotIn(t, r, shortValue)
	wantCode(t, rotatorEnv(w, env(good), "check"), 0, "gateway: ok: the key's secret "+good)

	r = rotatorEnv(w, []string{"ROTATOR_GATEWAY_KEY_ID=missing/key"}, "check")
	wantCode(t, r, 0, "ok")
	if strings.Contains(r.Stdout, "gateway:") {
		t.Fatalf("check read the key of a gateway that is not served:\n%s", r.Output())
	}
	if w.ClearRequests() != 0 {
		t.Fatal("check called Clear")
	}
}

// TestCheckFindsTheHookCommand: check used to say ok with a ROTATOR_HOOK_COMMAND whose program
// cannot be found or run, which every delivery then gives up on.
func TestCheckFindsTheHookCommand(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	dir := t.TempDir()
	script, plain := filepath.Join(dir, "reload-erp"), filepath.Join(dir, "not-executable")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := func(cmd string) []string { return []string{"ROTATOR_HOOK_COMMAND=" + cmd} }
	for _, cmd := range []string{filepath.Join(dir, "missing") + " --reload", "no-such-hook-" + randomHex(t, 4), plain} {
		r := rotatorEnv(w, hook(cmd), "check")
		wantCode(t, r, 1, "hook: FAIL: the hook command cannot be run: ")
		wantCode(t, r, 1, "rotator: 1 problem(s) found by the check")
	}
	wantCode(t, rotatorEnv(w, hook(script+" --reload"), "check"), 0, "hook: ok: "+script)
	if w.ClearRequests() != 0 {
		t.Fatal("check called Clear")
	}
}

// TestCheckGatewayReadOnlyHost: a host that serves `rotator gateway` with read-only rights (a
// token secret, no client secret) could not be checked: check and status refused its
// configuration, asking for a client secret, which would turn the gateway into a rotator. `check
// --gateway` loads the configuration as `rotator gateway` does and reads what it reads; the
// refusal of the others, when ROTATOR_GATEWAY_ADDR is set, points at it.
func TestCheckGatewayReadOnlyHost(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	w.StoreToken(randomHex(t, 24))
	readOnly := []string{"CLEAR_CLIENT_SECRET=", "ROTATOR_GATEWAY_ADDR=127.0.0.1:0"}
	for _, args := range [][]string{{"check"}, {"status"}} {
		r := rotatorEnv(w, readOnly, args...)
		wantCode(t, r, 2, "neither CLEAR_CLIENT_SECRET nor CLEAR_CLIENT_SECRET_ID is set")
		wantCode(t, r, 2, "'rotator check --gateway'")
	}
	// Without a gateway the refusal is as it was.
	r := rotatorEnv(w, []string{"CLEAR_CLIENT_SECRET="}, "check")
	wantCode(t, r, 2, "neither CLEAR_CLIENT_SECRET nor CLEAR_CLIENT_SECRET_ID is set")
	if strings.Contains(r.Stderr, "--gateway") {
		t.Fatalf("the refusal without a gateway points at check --gateway:\n%s", r.Output())
	}

	r = rotatorEnv(w, readOnly, "check", "--gateway")
	wantCode(t, r, 0, "default: ok: token secret is readable; no client secret")
	wantCode(t, r, 0, "gateway on 127.0.0.1:0")
	// With a client secret the gateway heals, and check reads the client secret too.
	wantCode(t, rotatorEnv(w, []string{"ROTATOR_GATEWAY_ADDR=127.0.0.1:0"}, "check", "--gateway"), 0, "default: ok: client secret and token secret are readable")

	key := mototest.Name(t, "key")
	keyValue := randomHex(t, 16)
	w.Hide(keyValue)
	w.CreateSecret(key, keyValue)
	wantCode(t, rotatorEnv(w, append(readOnly, "ROTATOR_GATEWAY_KEY_ID="+key), "check", "--gateway"), 0, "gateway: ok: the key's secret "+key)
	r = rotatorEnv(w, append(readOnly, "ROTATOR_GATEWAY_KEY_ID=missing/key"), "check", "--gateway")
	wantCode(t, r, 1, "gateway: FAIL: reading the key's secret missing/key")
	wantCode(t, r, 1, "rotator: 1 problem(s) found by the check")

	// A YAML file whose entries name only what a read-only gateway needs.
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := "clients:\n" +
		"  - name: erp-a\n    base_url: " + w.ClearURL + "\n    token_secret_id: " + w.TokenID + "\n" +
		"  - name: erp-b\n    base_url: " + w.ClearURL + "\n    token_secret_id: " + w.TokenID + "-b\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file := []string{"ROTATOR_CONFIG=" + path, "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID=", "CLEAR_BASE_URL="}
	r = rotatorEnv(w, file, "check", "--gateway")
	wantCode(t, r, 0, "erp-a: ok: token secret is readable")
	wantCode(t, r, 0, "erp-b: ok: token secret "+w.TokenID+"-b does not exist yet")
	wantCode(t, r, 0, "gateway on 127.0.0.1:8480")
	wantCode(t, rotatorEnv(w, append(file, "ROTATOR_GATEWAY_ADDR=127.0.0.1:0"), "check"), 2, "'rotator check --gateway'")
	if w.ClearRequests() != 0 {
		t.Fatal("check called Clear")
	}
}

// Settings only the gateway's listener reads, given to `rotator run` without ROTATOR_GATEWAY_ADDR,
// do nothing: run and check say so, rather than start without a gateway in silence and print
// "gateway: ok" for a TLS pair nothing serves (an audit's walk-through).
func TestGatewaySettingsWithoutAnAddressAreNamed(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	dir := t.TempDir()
	rig.SelfSigned(t, dir, 1)
	env := []string{"ROTATOR_GATEWAY_TLS_CERT=" + filepath.Join(dir, "cert.pem"), "ROTATOR_GATEWAY_TLS_KEY=" + filepath.Join(dir, "key.pem"),
		"ROTATOR_GATEWAY_KEY=" + strings.Repeat("k", 32)}
	r := rotatorEnv(w, env, "check")
	wantCode(t, r, 0, "ROTATOR_GATEWAY_KEY, ROTATOR_GATEWAY_TLS_CERT, ROTATOR_GATEWAY_TLS_KEY: set, but ROTATOR_GATEWAY_ADDR is not: rotator run serves no gateway")
	if strings.Contains(r.Stdout+r.Stderr, strings.Repeat("k", 32)) {
		t.Fatal("the key was shown")
	}
}

// With a probe path, rotator run starts the gateway for the probes, which reads the key's secret:
// the key is not named as doing nothing (a review: the warning and check's key line disagreed).
func TestAKeyTheProbesReadIsNotIdle(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	r := rotatorEnv(w, []string{"ROTATOR_PROBE_PATH=/v1/ping", "ROTATOR_GATEWAY_KEY=" + strings.Repeat("k", 32)}, "check")
	if r.Code != 0 || strings.Contains(r.Stdout+r.Stderr, "rotator run serves no gateway") {
		t.Fatalf("exit %d:\n%s", r.Code, r.Output())
	}
}
