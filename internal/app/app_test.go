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

// A client name no configured client could have (a client secret pasted into the Lambda event's
// "client", or --client) is never quoted back: the Lambda logs the error and answers it, and
// CloudWatch Logs keeps it (the Lambda audit's fifth finding). A name of the right shape still is.
func TestSelectNeverQuotesWhatCannotBeAName(t *testing.T) {
	a := &App{Clients: []*rotation.Client{{Client: config.Client{Name: "erp-ksa"}}}}
	pasted := "3eboH/vsr2VpGNFqDSXzVs0yNj0fMDJToPjs71V3WATqLtmzf9kyNBZ24mCNRJsDj2tEe72PxFDOPccR579w=="
	_, err := a.Select(pasted)
	if err == nil || strings.Contains(err.Error(), pasted[:12]) || !strings.Contains(err.Error(), "erp-ksa") {
		t.Errorf("err = %v", err)
	}
	if _, err := a.Select("erp-kas"); err == nil || !strings.Contains(err.Error(), `"erp-kas"`) {
		t.Errorf("a name of the right shape: %v", err)
	}
}
