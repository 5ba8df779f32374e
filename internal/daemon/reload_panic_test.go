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
