package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/smartlite/crmkit/records"
)

type auditData struct {
	Entries  []*records.AuditEntry
	RecordID string
	// Next is the URL of the next page, "" on the last.
	Next string
}

// auditPage shows the audit log oldest first, the order the log is read
// in, with a filter by record.
func (h *handler) auditPage(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	d := auditData{RecordID: strings.TrimSpace(q.Get("record_id"))}
	entries, err := h.audit.ListAudit(r.Context(), req.id.Workspace, d.RecordID, q.Get("cursor"), pageSize+1)
	if err != nil {
		return err
	}
	if len(entries) > pageSize {
		entries = entries[:pageSize]
		nq := url.Values{"cursor": {entries[pageSize-1].ID}}
		if d.RecordID != "" {
			nq.Set("record_id", d.RecordID)
		}
		d.Next = h.base + "/audit?" + nq.Encode()
	}
	d.Entries = entries
	h.render(w, r, http.StatusOK, "audit", req, "Audit log", d)
	return nil
}
