package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/smartlite/crmkit/records"
)

// The audit log's filters by record go to the AuditLog, whose index answers
// them; the filters by source and actor are applied to the entries read,
// auditBatch at a time. One page reads at most auditScan entries: a filter
// that matches little in a long log then shows what it found so far, and
// its next page goes on from there.
const (
	auditBatch = 200
	auditScan  = 25 * auditBatch
)

// auditSources are the sources the filter offers.
var auditSources = []records.Source{records.SourceAPI, records.SourceBulk, records.SourceImport,
	records.SourceInbound, records.SourceConnector, records.SourceUI}

type auditFilter struct {
	RecordID string
	Source   string
	Actor    string
}

// matches reports whether e passes the filters the AuditLog does not apply.
func (f auditFilter) matches(e *records.AuditEntry) bool {
	return (f.Source == "" || string(e.Source) == f.Source) && (f.Actor == "" || e.Actor.ID == f.Actor)
}

// query answers the filter as URL parameters.
func (f auditFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"record_id": f.RecordID, "source": f.Source, "actor": f.Actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

type auditRow struct {
	*records.AuditEntry
	// ActorName is the name of the API key that made the write, when the
	// actor is one of the workspace's keys.
	ActorName string
}

type auditData struct {
	Filter  auditFilter
	Sources []records.Source
	Entries []auditRow
	// Scanned is how many entries a filtered page read without filling
	// itself, when it stopped at the scan bound; 0 otherwise.
	Scanned int
	// Next is the URL of the next page, "" on the last.
	Next string
	// Filtered says a filter is set.
	Filtered bool
}

// auditPage shows the audit log oldest first, the order the log is read
// in, filtered by record, source and actor.
func (h *handler) auditPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, ws := r.Context(), req.id.Workspace
	q := r.URL.Query()
	f := auditFilter{RecordID: strings.TrimSpace(q.Get("record_id")), Source: q.Get("source"), Actor: strings.TrimSpace(q.Get("actor"))}
	if !slices.Contains(auditSources, records.Source(f.Source)) {
		f.Source = ""
	}
	d := auditData{Filter: f, Sources: auditSources, Filtered: f != auditFilter{}}
	cursor := q.Get("cursor")
	var kept []*records.AuditEntry
	// resume is where the next page starts: after the last entry kept when
	// the page filled up, after the last entry read when the scan stopped.
	resume := ""
	if f.Source == "" && f.Actor == "" {
		entries, err := h.audit.ListAudit(ctx, ws, f.RecordID, cursor, pageSize+1)
		if err != nil {
			return err
		}
		kept, resume = paged(entries, pageSize, func(e *records.AuditEntry) string { return e.ID })
	} else {
		scanned := 0
	scan:
		for {
			entries, err := h.audit.ListAudit(ctx, ws, f.RecordID, cursor, auditBatch)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if !f.matches(e) {
					continue
				}
				if len(kept) == pageSize {
					// One match beyond the page: there is a next page.
					resume = kept[pageSize-1].ID
					break scan
				}
				kept = append(kept, e)
			}
			scanned += len(entries)
			if len(entries) < auditBatch {
				break
			}
			cursor = entries[len(entries)-1].ID
			if scanned >= auditScan {
				resume = cursor
				if len(kept) < pageSize {
					d.Scanned = scanned
				}
				break
			}
		}
	}
	names := map[string]string{}
	for _, e := range kept {
		row := auditRow{AuditEntry: e}
		if e.Actor.Kind == "api_key" && e.Actor.ID != "" {
			name, seen := names[e.Actor.ID]
			if !seen {
				// A key deleted since, or never this workspace's, shows by
				// its id alone.
				if k, err := h.keys.Get(ctx, ws, e.Actor.ID); err == nil {
					name = k.Name
				} else if !isNotFound(err) {
					return err
				}
				names[e.Actor.ID] = name
			}
			row.ActorName = name
		}
		d.Entries = append(d.Entries, row)
	}
	if resume != "" {
		nq := f.query()
		nq.Set("cursor", resume)
		d.Next = h.base + "/audit?" + nq.Encode()
	}
	h.render(w, r, http.StatusOK, "audit", req, "Audit log", d)
	return nil
}
