package rig_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }

// rotateTwice makes a first rotation and a forced second one with the world's engine, and checks
// what the rig reports of them.
func rotateTwice(t *testing.T, w *rig.World) {
	e := w.Engine("rig-test")
	for i := range 2 {
		if res := e.Rotate(context.Background(), w.Client(), i > 0); res.Outcome != rotation.Rotated {
			t.Fatalf("rotation %d: %s (%s)", i+1, res.Outcome, res.Message)
		}
	}
	if !w.Live() {
		t.Fatal("AWSCURRENT does not hold a live token")
	}
	reqs := w.Requests()
	if len(reqs) != 2 || reqs[0].Token == "" || reqs[1].Token == "" || w.Issued() != 2 || w.ClearRequests() != 2 {
		t.Fatalf("requests %+v, issued %d, want two delivered tokens", reqs, w.Issued())
	}
	if st, _, ok := w.State(); !ok || len(st.APIClients) == 0 {
		t.Fatalf("no state with API clients: %+v", st)
	}
	if got := len(w.StoredTokens()); got != 2 {
		t.Fatalf("%d stored tokens, want 2", got)
	}
}

func TestWorldOnTheWire(t *testing.T) {
	rotateTwice(t, rig.New(t, rig.Options{Lifetime: time.Hour}))
}

func TestWorldInMemoryInABubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := rig.New(t, rig.Options{Memory: true, Lifetime: time.Hour, APIClients: 2})
		rotateTwice(t, w)
		if s := w.Requests(); s[0].Slot == s[1].Slot {
			t.Fatalf("two API clients alternate; both requests used slot %d", s[0].Slot)
		}
	})
}

func TestFaultHookAndShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := rig.New(t, rig.Options{Memory: true})
		b := rig.New(t, rig.Options{Share: a, Name: "other"})
		if a.Fake != b.Fake || a.TokenID == b.TokenID {
			t.Fatal("shared worlds must share the Secrets Manager and keep their own token secrets")
		}
		refused := errors.New("refused")
		a.API.Fail(func(op string, _ any) error {
			if op == "PutSecretValue" {
				return refused
			}
			return nil
		})
		if res := b.Engine("x").Rotate(context.Background(), b.Client(), false); res.Outcome == rotation.Rotated {
			t.Fatal("a rotation succeeded with every write refused")
		}
		a.API.Fail(nil)
		a.API.TakeCalls()
		if res := b.Engine("x").Rotate(context.Background(), b.Client(), false); res.Outcome != rotation.Rotated {
			t.Fatalf("rotation after the fault: %s (%s)", res.Outcome, res.Message)
		}
		if n, _ := a.API.TakeCalls(); n == 0 {
			t.Fatal("no calls counted")
		}
	})
}

func TestProcesses(t *testing.T) {
	w := rig.New(t, rig.Options{Lifetime: time.Hour})
	if r := w.Rotator("rotate", "--json"); r.Code != 0 {
		t.Fatalf("rotate: %s", r.Output())
	}
	w.MustCurrent()
	p := w.Daemon()
	p.Await("a finished round", 10*time.Second, func() bool { return p.Logged("round finished") })
	if code := p.Stop(syscall.SIGTERM, 70*time.Second); code != 0 {
		t.Fatalf("the daemon exited %d:\n%s", code, p.Output())
	}
}

// recordingTB is a testing.TB whose errors and cleanups the test inspects, to check the scan.
type recordingTB struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Cleanup(f func())               { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Errorf(format string, a ...any) { r.errs = append(r.errs, format) }

func TestLeakScanFindsSecretsAndTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, leak := range []string{"client secret", "delivered token", "nothing"} {
			tb := &recordingTB{TB: t}
			w := rig.New(tb, rig.Options{Memory: true, Lifetime: time.Hour})
			if res := w.Engine("x").Rotate(context.Background(), w.Client(), false); res.Outcome != rotation.Rotated {
				t.Fatalf("rotation: %s", res.Message)
			}
			switch leak {
			case "client secret":
				w.Logger().Info("oops", "secret", w.Secrets[0])
			case "delivered token":
				w.Record("output: " + w.Requests()[0].Token)
			}
			for i := len(tb.cleanups) - 1; i >= 0; i-- {
				tb.cleanups[i]()
			}
			if got := len(tb.errs) > 0; got != (leak != "nothing") {
				t.Errorf("%s leaked: scan reported %v", leak, tb.errs)
			}
		}
	})
}

// TestDaemonOnAnyPortSaysWhere starts the daemon with the ops listener on port 0, which the
// kernel picks, as the rig does to avoid two tests racing for a port: the "daemon started" line
// must name the address it actually listens on, and that address must answer.
func TestDaemonOnAnyPortSaysWhere(t *testing.T) {
	w := rig.New(t, rig.Options{Lifetime: time.Hour})
	p := w.Daemon("ROTATOR_HTTP_ADDR=127.0.0.1:0")
	var addr string
	p.Await("the daemon's start line", 10*time.Second, func() bool {
		addr = p.LoggedAttr("daemon started", "http_addr")
		return addr != ""
	})
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("the daemon logged http_addr %q, not the port it listens on", addr)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("the logged address %s does not answer: %v", addr, err)
	}
	resp.Body.Close()
}
