package integration

import (
	"net/http"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

func (s *Service) auditFeature() feature {
	return feature{name: "audit", routes: s.auditRoutes(), schemas: auditSchemas()}
}

func auditSchemas() map[string]any {
	return map[string]any{
		"Change": obj("A field's value before and after a write.", []string{"from", "to"}, map[string]any{
			"from": map[string]any{}, "to": map[string]any{},
		}),
		"Actor": obj("Who wrote.", []string{"kind", "id"}, map[string]any{
			"kind": str("", "enum", []string{"api_key", "connector", "inbound_source", "user", "system"}),
			"id":   str(""),
		}),
		"AuditEntry": obj("One write of one record.", []string{"id", "object", "record_id", "action", "source", "actor", "changes", "created_at"}, map[string]any{
			"id":         str("", "example", "aud_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"object":     str(""),
			"record_id":  str(""),
			"action":     str("", "enum", []string{"create", "update", "delete"}),
			"source":     str("The path the write came by.", "enum", []string{"api", "bulk", "import", "inbound", "connector", "ui"}),
			"actor":      ref("Actor"),
			"changes":    map[string]any{"type": "object", "additionalProperties": ref("Change")},
			"created_at": dateTime(""),
		}),
		"AuditList": list("AuditEntry"),
	}
}

func (s *Service) auditRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/audit", scope: apikey.ScopeAdmin, handle: s.listAudit, tag: "audit", id: "listAudit",
			summary: "The workspace's audit log, oldest first: every write with its source, actor and changes",
			query: []param{limitParam, cursorParam,
				{name: "record_id", description: "only the entries of this record", schema: map[string]any{"type": "string"}}},
			status: 200, response: "AuditList", errors: []int{400}},
	}
}

func (s *Service) listAudit(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]*records.AuditEntry, error) {
		return s.store.ListAudit(r.Context(), workspaceOf(r), r.URL.Query().Get("record_id"), cursor, limit)
	}, func(e *records.AuditEntry) string { return e.ID })(w, r)
}
