package main

// Process tests of `rotator run`: the built binary (rig.World.Daemon), against moto (Secrets
// Manager) and the Clear emulator served over HTTP, observed the way an ERP and an orchestrator
// see it: by reading the secret, by probing the ops listener, and by signals. TestMain
// (main_test.go) stops moto and removes the built binaries.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// daemonLifetime is the emulator's token lifetime while the ERP watches. The daemon renews at two
// thirds of it (6 s after the stored issue time), and the token expires a third later (3 s). The
// daemon's one-second ticks and its one-second gap between two looks at a client make a renewal up
// to about a second late, which leaves two seconds for the renewal itself, a few milliseconds on an
// idle machine. The test build's rotation floor (500 ms) is far below the renewal interval, and a
// claim's lease does not depend on the lifetime (it is Clear's timeout plus timing.WriteWindow), so
// the short lifetime changes none of the daemon's rules, only how long the test waits for them.
const daemonLifetime = 9 * time.Second

// renewals is how many renewals the ERP watches; the SIGTERM below interrupts one more.
const renewals = 2

// writeWindow is how long the ERP may hold a token Clear has already revoked: Clear revokes the old
// token when it answers, and the daemon stores the new one straight after, so a read can fall in
// between. A read whose token was found revoked is tolerated only if a read starting no more than
// writeWindow after that finding returns the new token, live. The write takes a few milliseconds;
// the window is wide enough for a loaded machine's slow moto, and narrow enough that a token that
// expired well before its renewal (dead reads for seconds on end) fails the test.
const writeWindow = 3 * time.Second

// read is one poll of the ERP: when it began, when Secrets Manager answered, and when its token's
// liveness was checked; and the renewal point of the token it found.
type read struct {
	at, got, checked time.Time
	token            string
	renewAt          time.Time // two thirds of the stored lifetime; zero without a token or valid_till
	live             bool
}

// TestDaemonProcess runs the daemon over a few renewals of short-lived tokens while an ERP polls
// the secret, then stops it during a slow Clear answer and restarts it. It checks that the ERP
// always holds a live token (but for the write window), that the daemon asks Clear exactly once per
// renewal point and never before it, that the ops endpoints tell the truth, that SIGHUP and SIGTERM
// behave, and (the world's leak scan) that no secret or token reaches the logs.
func TestDaemonProcess(t *testing.T) {
	w := world(t, rig.Options{Lifetime: daemonLifetime})
	secret := w.Secrets[0]

	started := time.Now()
	p := w.Daemon()
	p.Await("readiness", 15*time.Second, func() bool { code, _ := p.Get("/readyz"); return code == http.StatusOK })
	if code, body := p.Get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}

	// The ERP polls AWSCURRENT every 200ms until it has seen the daemon's first token and `renewals`
	// renewals, and holds a live token; after the first renewal, the daemon gets SIGHUP, so that the
	// next comes from the reloaded configuration. The watch ends at a renewal so that the rotation the SIGTERM below
	// interrupts, the next one, is a whole renewal interval away, and not that plus part of another.
	var reads []read
	seen, hup := 0, false
	deadline := time.Now().Add(time.Duration(renewals+2) * daemonLifetime) // the checks below say what is missing
	for {
		now := time.Now()
		if seen > renewals && reads[len(reads)-1].live || now.After(deadline) {
			break
		}
		tok, _, ok := w.Current() // fails the test if the ERP cannot read the secret
		r := read{at: now, got: time.Now()}
		if ok {
			r.token, r.live = tok.AccessToken.Reveal(), w.Emu.Live(tok.AccessToken.Reveal())
			if tok.ValidTill != nil {
				r.renewAt = tok.ValidTill.Add(-tok.ValidTill.Sub(tok.IssuedAt) / 3)
			}
		}
		r.checked = time.Now()
		if r.token != "" && (len(reads) == 0 || r.token != reads[len(reads)-1].token) {
			seen++
		}
		reads = append(reads, r)
		if seen == 2 && !hup {
			p.Signal(syscall.SIGHUP)
			hup = true
		}
		time.Sleep(200*time.Millisecond - time.Since(now))
	}
	finished := time.Now()
	requests := w.ClearRequests()

	// Every read holds a live token, except within the write window of a rotation.
	var bad []string
	for i, r := range reads {
		if r.live {
			continue
		}
		j := i + 1
		for j < len(reads) && reads[j].token == r.token {
			j++
		}
		if j == len(reads) || reads[j].at.Sub(r.checked) > writeWindow || !reads[j].live {
			bad = append(bad, r.at.Format(time.StampMilli))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d ERP reads found a token Clear does not accept, with no live successor within %s; the first at %s",
			len(bad), len(reads), writeWindow, strings.Join(bad[:min(5, len(bad))], ", "))
	}
	// No token was replaced before its renewal point, two thirds of its stored lifetime (issue time
	// to valid_till): no request was wasted. The daemon and the test share the machine's clock, and
	// the read that first returned a successor ended after the request that made it, so the check is
	// exact: it needs no allowance for the second to which stored times are truncated, nor for the
	// poll. Lateness is not asserted as a time window, which a loaded machine can stretch; that no
	// ERP read found a dead token (above) is the property that matters.
	var changes []time.Time
	for i, r := range reads {
		if i == 0 || r.token != reads[i-1].token {
			changes = append(changes, r.at)
		}
		if i == 0 || r.token == reads[i-1].token || reads[i-1].token == "" {
			continue
		}
		if prev := reads[i-1]; prev.renewAt.IsZero() {
			t.Errorf("token %d has no valid_till", len(changes)-1)
		} else if r.got.Before(prev.renewAt) {
			t.Errorf("token %d replaced its predecessor by %s, before its renewal point %s", len(changes),
				r.got.Format(time.StampMilli), prev.renewAt.Local().Format(time.StampMilli))
		} else {
			t.Logf("token %d seen %s after its predecessor's renewal point", len(changes), r.got.Sub(prev.renewAt).Round(time.Millisecond))
		}
	}
	// The most requests the run can justify: the first token, then one per renewal interval of at
	// least 2/3 of the lifetime less the second to which the stored issue time is truncated. At
	// least the first token and the renewals the ERP waited for, or the daemon did not renew.
	hi := 1 + int(finished.Sub(started)/(daemonLifetime*2/3-time.Second))
	if requests < 1+renewals || requests > hi {
		t.Errorf("%d requests to Clear in %s, want %d to %d", requests, finished.Sub(started).Round(time.Millisecond), 1+renewals, hi)
	}
	// Exactly one request per renewal point: the ERP sees every token, since each stays in place for
	// seconds; a request that began in the milliseconds between the ERP's last read and the count is
	// the only other possibility.
	if latest, _, _ := w.Current(); requests != len(changes) && (requests != len(changes)+1 || latest.AccessToken.Reveal() == reads[len(reads)-1].token) {
		t.Errorf("the ERP saw %d tokens, Clear issued %d", len(changes), requests)
	}
	t.Logf("%d requests to Clear in %s; %d ERP reads", requests, finished.Sub(started).Round(time.Millisecond), len(reads))

	// SIGHUP reloaded the (unchanged) configuration without a request of its own.
	if !p.Logged("reloaded the configuration") {
		t.Error("no reload logged after SIGHUP")
	}

	// The ops endpoints.
	if code, body := p.Get("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, body := p.Get("/metrics"); code != http.StatusOK || !strings.Contains(body, "# TYPE clear_rotator_checks_total counter") {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
	// The counter and Clear's count are read at different instants; a rotation may fall in between.
	p.Await("the rotated counter to match Clear's count", 5*time.Second, func() bool {
		return p.Metric(`clear_rotator_checks_total{client="default",outcome="rotated"}`) == fmt.Sprint(w.ClearRequests())
	})
	if v, want := p.Metric(`clear_rotator_requests_today{client="default",api_client="1"}`), w.Emu.RequestsToday(secret); v != fmt.Sprint(want) && time.Now().UTC().Hour() != 0 {
		t.Errorf("requests_today = %q, Clear counts %d", v, want)
	}
	for _, series := range []string{`clear_rotator_blocked{client="default"}`, `clear_rotator_checks_total{client="default",outcome="failed"}`} {
		if v := p.Metric(series); v != "0" {
			t.Errorf("%s = %q, want 0", series, v)
		}
	}
	if v := p.Metric(`clear_rotator_daily_limit{client="default"}`); v != "48" {
		t.Errorf("daily_limit = %q, want 48", v)
	}
	if v := p.Metric(`clear_rotator_token_expiry_timestamp_seconds{client="default"}`); v == "" {
		t.Error("no expiry metric")
	}
	if _, body := p.Get("/metrics"); !strings.Contains(body, `clear_rotator_build_info{version="`) || !strings.Contains(body, `,go_version="go`) ||
		strings.Contains(body, `version="clear-rotator`) {
		t.Errorf("no build_info with the version:\n%s", body)
	}

	// SIGTERM while Clear takes 3s to answer: the daemon waits, stores the token, and exits 0. The
	// token it stores lives a minute, so that the restart below finds it fresh however slowly a
	// loaded machine restarts the daemon.
	w.Emu.SetLifetime(time.Minute)
	w.Emu.Inject(emulator.Fault{Delay: 3 * time.Second})
	before, _ := w.MustCurrent()
	n := w.ClearRequests()
	p.Await("the next rotation", daemonLifetime+10*time.Second, func() bool { return w.ClearRequests() > n })
	sent := time.Now()
	if code := p.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, p.Output())
	}
	if waited := time.Since(sent); waited < 2*time.Second {
		t.Errorf("the daemon exited %s after SIGTERM, before Clear's delayed answer", waited)
	}
	if after, _, ok := w.Current(); !ok || after.AccessToken.Reveal() == before.AccessToken.Reveal() || !w.Emu.Live(after.AccessToken.Reveal()) {
		t.Fatal("after SIGTERM during a rotation AWSCURRENT holds no new live token")
	}
	for _, msg := range []string{"shutting down: no new checks; waiting for those in flight", "rotated the token", "stopped"} {
		if !p.Logged(msg) {
			t.Errorf("log lacks %q", msg)
		}
	}

	// A restart right after that rotation finds the token fresh in Secrets Manager: no request.
	n = w.ClearRequests()
	p2 := w.Daemon()
	p2.Await("readiness after the restart", 15*time.Second, func() bool { code, _ := p2.Get("/readyz"); return code == http.StatusOK })
	if v := p2.Metric(`clear_rotator_checks_total{client="default",outcome="not_due"}`); v != "1" {
		t.Errorf("not_due counter after the restart = %q, want 1", v)
	}
	if got := w.ClearRequests(); got != n {
		t.Errorf("the restarted daemon made %d requests, want none", got-n)
	}
	if code := p2.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestDaemonProcessReload changes a YAML configuration under a running daemon: SIGHUP adds a
// client, which is rotated at once while the unchanged one keeps its token; a broken file is
// refused and the running configuration kept.
func TestDaemonProcessReload(t *testing.T) {
	a := world(t, rig.Options{Lifetime: time.Hour, Name: "a"})
	b := rig.New(t, rig.Options{Share: a, Lifetime: time.Hour, Name: "b"})
	entry := func(name string, w *rig.World) string {
		return fmt.Sprintf("  - name: %s\n    base_url: %s\n    client_secret: %s\n    token_secret_id: %s\n", name, w.ClearURL, w.Secrets[0], w.TokenID)
	}
	path := filepath.Join(t.TempDir(), "rotator.yaml")
	if err := os.WriteFile(path, []byte("clients:\n"+entry("a", a)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The clients come from the file alone, not from the world's variables.
	p := a.Daemon("ROTATOR_CONFIG="+path, "CLEAR_BASE_URL=", "CLEAR_CLIENT_SECRET=", "ROTATOR_TOKEN_SECRET_ID=")
	p.Await("readiness", 15*time.Second, func() bool { code, _ := p.Get("/readyz"); return code == http.StatusOK })

	if err := os.WriteFile(path, []byte("clients:\n"+entry("a", a)+entry("b", b)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	p.Await("client b's first token", 10*time.Second, b.Live)
	if n := a.ClearRequests(); n != 1 {
		t.Errorf("the unchanged client made %d requests, want 1", n)
	}

	if err := os.WriteFile(path, []byte("clients: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	p.Await("the refused reload", 10*time.Second, func() bool { return p.Logged("reload failed; keeping the previous configuration") })
	if code, body := p.Get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a refused reload = %d %q", code, body)
	}
	if v := p.Metric(`clear_rotator_checks_total{client="b",outcome="rotated"}`); v != "1" {
		t.Errorf("client b's rotated counter = %q after the refused reload, want 1", v)
	}
	if code := p.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestDaemonProcessProbesUnderConnectionPressure holds the daemon's ops port with three times its
// connection cap of useless connections (silent, slowloris, idle keep-alive) from the probes' own
// address, each reconnecting a second after it is closed, and probes /healthz and /readyz as the
// kubelet does. (TestProbesAnsweredUnderConnectionPressure in internal/daemon adds a crowd from
// another address that reconnects at once, where no probe may fail.) Issue 19 item 11: 16 busy
// connections left 0 of 20 probes answered, so any pod that reaches the port could make the
// liveness probe restart the rotator.
func TestDaemonProcessProbesUnderConnectionPressure(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	p := w.Daemon()
	p.Await("readiness", 15*time.Second, func() bool { code, _ := p.Get("/readyz"); return code == http.StatusOK })

	probesSurvivePressure(t, p.Addr)
	if code := p.Stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// probesSurvivePressure crowds the ops port at addr with idle, silent and slow connections and
// probes /healthz and /readyz meanwhile. The crowd shares the probes' address, so it cannot be told
// from them but by behaviour; on a loaded machine a probe may lose a race with a burst of
// reconnects. What must never happen is what restarts the pod: probes of one path failing in a row
// (deploy/kubernetes restarts after 3). Before issue 19 item 11, 40 of 40 failed.
func probesSurvivePressure(t *testing.T, addr string) {
	t.Helper()
	crowd := rig.Press(t, addr, nil, 48, time.Second)
	time.Sleep(300 * time.Millisecond) // let the crowd take the port
	r := rig.Probes(addr, []string{"/healthz", "/readyz"}, 20, 50*time.Millisecond)
	crowd.Close()
	for _, e := range r.Errors {
		t.Log(e)
	}
	if r.Run > 1 || r.Failed > r.Sent/10 {
		t.Errorf("%d of %d probes unanswered under connection pressure, %d in a row", r.Failed, r.Sent, r.Run)
	}
}
