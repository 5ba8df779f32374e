package app

import (
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// An unknown --client is named with the closest configured one, as an unknown command, flag or
// variable is (an audit's walk-through: --client erp-kas, with erp-ksa configured, said nothing
// of it).
func TestSelectSuggestsTheClosestName(t *testing.T) {
	a := &App{Clients: []*rotation.Client{{Client: config.Client{Name: "erp-ksa"}}, {Client: config.Client{Name: "erp-india"}}}}
	if _, err := a.Select("erp-kas"); err == nil || !strings.Contains(err.Error(), `did you mean "erp-ksa"?`) {
		t.Errorf("err = %v", err)
	}
	if _, err := a.Select("zzzzzzzzzz"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a name close to none: %v", err)
	}
}
