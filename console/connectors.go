package console

import (
	"context"
	"net/http"

	"github.com/smartlite/crmkit/connector"
)

// Connectors is what the console needs of pull connectors;
// *connector.Service satisfies it.
type Connectors interface {
	List(ctx context.Context, workspace, after string, limit int) ([]*connector.Connector, error)
}

func (h *handler) connectorRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /connectors", h.signedIn(func(w http.ResponseWriter, r *http.Request, req *request) error {
		return nil
	}))
}
