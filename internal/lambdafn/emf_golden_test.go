package lambdafn_test

import (
	"errors"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// The function's EMF lines, byte for byte, for runs that rotate, find the token not due, cannot
// read Secrets Manager, are refused by Clear and then blocked. The template's alarms read these
// names and values; the golden file was written before the values came from rotation.Metrics and
// must not change.
func TestEMFLinesGolden(t *testing.T) {
	f := newFixture(t, time.Hour)
	c := f.clients[0]
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	f.clock.Advance(10*time.Minute + 300*time.Millisecond)
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	c.w.API.Fail(func(op string, _ any) error {
		if op == "GetSecretValue" {
			return errors.New("throttled")
		}
		return nil
	})
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	c.w.API.Fail(nil)
	f.emu.SetSecretActive(c.secret, false)
	_, _, _ = f.invoke(`{"action":"rotate","force":true}`)
	_, _, _ = f.invoke(`{"action":"scheduled"}`)
	f.clock.Advance(2 * time.Hour)
	_, _, _ = f.invoke(`{"action":"scheduled"}`)

	got := f.metrics.String()
	rig.Golden(t, filepath.Join("testdata", "emf.golden"), []byte(got), *update)
}
