package gateway

import (
	"io"
	"net/http"
	"strings"

	"github.com/clear-rotator/clear-rotator/internal/ops"
)

// OpsHandler serves a standalone gateway's /healthz (200 while the process runs), /readyz (200
// once every client holds a live token) and /metrics (the gateway's families).
func (s *Service) OpsHandler() http.Handler {
	return ops.Handler(s.Ready, func(w io.Writer) {
		var b strings.Builder
		s.WriteMetrics(&b)
		io.WriteString(w, b.String())
	})
}
