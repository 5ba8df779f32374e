package secret_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// gatewayKeyKind shows how another package declares a confidential type of its own.
type gatewayKeyKind struct{}

func (gatewayKeyKind) Name() string { return "gateway.Key" }

type gatewayKey = secret.Value[gatewayKeyKind]

// TestValueOfAnotherKind checks that a kind declared outside the package redacts everywhere,
// names itself in %#v, and compares by value; the clear package's tests cover every printing path
// for ClientSecret and AccessToken, which are the same type.
func TestValueOfAnotherKind(t *testing.T) {
	const raw = "gw-key-0123456789abcdef"
	k := secret.New[gatewayKeyKind](raw)
	var out strings.Builder
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%d"} {
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", struct{ k gatewayKey }{k})
	}
	b, _ := json.Marshal(map[string]gatewayKey{"k": k})
	out.Write(b)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "k", k)
	if strings.Contains(out.String(), raw) || !strings.Contains(out.String(), "gateway.Key("+secret.Marker+")") {
		t.Fatalf("output:\n%s", out.String())
	}
	if k != secret.New[gatewayKeyKind](raw) || k.Reveal() != raw || k.IsZero() || !(gatewayKey{}).IsZero() {
		t.Fatal("a Value does not compare by value")
	}
}
