package cleartoken

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependsOnlyOnTheSDKAndTwoSmallPackages holds the package documentation's promise: an ERP that
// imports cleartoken pulls in the AWS SDK's Secrets Manager client, the standard library and two
// packages of the rotator's that use the standard library only, nothing else of the rotator's.
func TestDependsOnlyOnTheSDKAndTwoSmallPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/clear-rotator/clear-rotator/"
	allowed := map[string]bool{mod + "cleartoken": true, mod + "internal/secret": true, mod + "internal/apicall": true}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] && !strings.HasPrefix(p, "github.com/aws/") {
			t.Errorf("cleartoken depends on %s", p)
		}
	}
}
