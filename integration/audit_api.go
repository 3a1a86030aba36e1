package integration

import (
	"net/http"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

func (s *Service) auditRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/audit", scope: apikey.ScopeAdmin, handle: s.listAudit, tag: "audit", id: "listAudit",
			summary: "The workspace's audit log, oldest first: every write with its source, actor and changes",
			query: []param{limitParam, cursorParam,
				{name: "record_id", description: "only the entries of this record", schema: map[string]any{"type": "string"}}},
			status: 200, response: "AuditList", errors: []int{400}},
	}
}

type auditList struct {
	Data       []*records.AuditEntry `json:"data"`
	NextCursor *string               `json:"next_cursor"`
}

func (s *Service) listAudit(w http.ResponseWriter, r *http.Request) error {
	limit, cursor, err := pageParams(r)
	if err != nil {
		return err
	}
	entries, err := s.store.ListAudit(r.Context(), workspaceOf(r), r.URL.Query().Get("record_id"), cursor, limit+1)
	if err != nil {
		return err
	}
	page := auditList{Data: entries}
	if len(entries) > limit {
		page.Data = entries[:limit]
		next := page.Data[limit-1].ID
		page.NextCursor = &next
	}
	if page.Data == nil {
		page.Data = []*records.AuditEntry{}
	}
	return writeJSON(w, http.StatusOK, page)
}
