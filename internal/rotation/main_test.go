package rotation_test

import (
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

func TestMain(m *testing.M) { rig.Main(m, 0) }
