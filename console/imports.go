package console

import (
	"io"
	"net/http"

	"github.com/smartlite/crmkit/ingest"
)

// Imports is what the console needs of spreadsheet imports;
// *ingest.Importer satisfies it.
type Imports interface {
	Spool(r io.Reader) (*ingest.Upload, error)
}

func (h *handler) importRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /imports", h.signedIn(func(w http.ResponseWriter, r *http.Request, req *request) error {
		return nil
	}))
}
