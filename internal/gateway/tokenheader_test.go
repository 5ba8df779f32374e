package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/config"
)

// The token header (ROTATOR_GATEWAY_TOKEN_HEADER) is checked by config, which cannot import the
// gateway: this test keeps the two in step. A header the gateway removes from every request (its
// own, a client secret, forwarding headers, hop-by-hop ones, Expect) or that Go's HTTP client
// writes itself (Host, Content-Length) would never carry the token to Clear, and every call would
// be refused; configuration refuses each, and accepts the headers a token may travel in.
func TestTokenHeaderRefusesWhatTheGatewayRemoves(t *testing.T) {
	load := func(h string) error {
		_, err := config.LoadForGateway(func(k string) (string, bool) {
			v, ok := map[string]string{config.EnvBaseURL: "https://api.clear.in", config.EnvTokenSecretID: "tokens/erp",
				config.EnvGatewayTokenHeader: h}[k]
			return v, ok
		})
		return err
	}
	refused := append(append([]string{"Host", "Content-Length", "Expect"}, hopHeaders...), droppedHeaders...)
	for _, h := range refused {
		if slices.Contains(tokenHeaders, h) {
			if err := load(strings.ToLower(h)); err != nil {
				t.Errorf("%s, a token header, was refused: %v", h, err)
			}
			continue
		}
		if err := load(strings.ToLower(h)); err == nil || !strings.Contains(err.Error(), "cannot carry the token") {
			t.Errorf("%s was accepted as the token header (err %v)", h, err)
		}
	}
	if err := load(http.CanonicalHeaderKey("x-custom-auth")); err != nil {
		t.Errorf("an ordinary header was refused: %v", err)
	}
}
