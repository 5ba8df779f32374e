package daemon

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/app"
)

// TestReloadThatPanicsKeepsRunning: issue 19 item 7, a failed reload never stops a running daemon.
// A Load that panics (a configuration no validation foresaw) used to take the daemon down with
// it; it is a failed reload like any other.
func TestReloadThatPanicsKeepsRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		a := h.client("a", time.Hour, 48)
		h.start(h.app(a), Options{})
		h.setLoad(func(context.Context) (*app.App, error) { panic("a hostile configuration") })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		if !strings.Contains(h.logs.String(), "reload failed; keeping the previous configuration") {
			t.Fatal("the failed reload was not logged")
		}
		time.Sleep(time.Hour)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h, "a", 2, time.Hour) // 00:00, 00:40
	})
}

// TestReloadHooks: the OnReload hooks get the configuration a SIGHUP loaded, in order, once the
// daemon has swapped it in; one that panics is logged and the next still runs, and the daemon
// goes on with the new configuration. A refused reload calls none.
func TestReloadHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "@every 5m")
		a := h.client("a", time.Hour, 48)
		b := h.client("b", time.Hour, 48)
		var got []string
		opts := Options{OnReload: []func(context.Context, *app.App){
			func(context.Context, *app.App) { panic("a broken hook") },
			func(_ context.Context, a *app.App) { got = append(got, a.Clients[len(a.Clients)-1].Name) },
		}}
		h.start(h.app(a), opts)
		h.setLoad(func(context.Context) (*app.App, error) { return nil, context.Canceled })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		if len(got) != 0 {
			t.Fatalf("a refused reload called the hooks: %v", got)
		}
		h.setLoad(func(context.Context) (*app.App, error) { return h.app(a, b), nil })
		h.reload <- syscall.SIGHUP
		synctest.Wait()
		if len(got) != 1 || got[0] != "b" {
			t.Fatalf("the hooks saw %v, want the reloaded clients once", got)
		}
		if !strings.Contains(h.logs.String(), "a reload hook panicked") {
			t.Error("the panicking hook was not logged")
		}
		time.Sleep(time.Hour)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		assertRenewals(t, h, "b", 2, time.Hour)
	})
}
