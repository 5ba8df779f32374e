package lambdafn_test

import (
	"os"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mototest.StopShared()
	os.Exit(code)
}
