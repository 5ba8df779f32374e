package main

import (
	"os"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
	"github.com/clear-rotator/clear-rotator/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mototest.StopShared()
	proctest.Cleanup()
	os.Exit(code)
}
