package console

import (
	"context"
	"net/http"

	"github.com/smartlite/crmkit/ingest"
)

// Inbound is what the console needs of inbound webhooks; *ingest.Inbound
// satisfies it.
type Inbound interface {
	Sources(ctx context.Context, workspace, after string, limit int) ([]*ingest.InboundSource, error)
}

func (h *handler) inboundRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /inbound", h.signedIn(func(w http.ResponseWriter, r *http.Request, req *request) error {
		return nil
	}))
}
