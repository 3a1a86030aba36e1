package integration

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

func (s *Service) recordsFeature() feature {
	return feature{name: "records", routes: s.recordRoutes(), schemas: recordSchemas()}
}

func (s *Service) recordRoutes() []route {
	notFound := []int{400, 404}
	write := []int{400, 404, 409, 413, 422}
	return []route{
		{method: "GET", pattern: "/api/v1/records/{object}", scope: apikey.ScopeRead, handle: s.listRecords, tag: "records",
			id: "listRecords", summary: "List records of an object, oldest first, a page at a time",
			query: []param{limitParam, cursorParam,
				{name: "filter", style: "deepObject", description: "filter[field]=value keeps records whose field equals value",
					schema: map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}},
				{name: "updated_since", description: "keep records updated at or after this RFC 3339 time",
					schema: map[string]any{"type": "string", "format": "date-time"}}},
			status: 200, response: "RecordList", errors: notFound},
		{method: "GET", pattern: "/api/v1/records/{object}/{id}", scope: apikey.ScopeRead, handle: s.getRecord, tag: "records",
			id: "getRecord", summary: "Get one record", status: 200, response: "Record", errors: notFound},
		{method: "POST", pattern: "/api/v1/records/{object}", scope: apikey.ScopeWrite, handle: s.createRecord, tag: "records",
			id: "createRecord", summary: "Create a record", request: "RecordInput", status: 201, response: "Record",
			errors: append(write, 403)},
		{method: "PATCH", pattern: "/api/v1/records/{object}/{id}", scope: apikey.ScopeWrite, handle: s.updateRecord, tag: "records",
			id: "updateRecord", summary: "Change some fields of a record", headers: []param{ifMatchParam},
			request: "RecordInput", status: 200, response: "Record", errors: write},
		{method: "PUT", pattern: "/api/v1/records/{object}/external/{external_id}", scope: apikey.ScopeWrite, handle: s.upsertRecord,
			tag: "records", id: "upsertRecord",
			summary: "Create or update the record with this external id (201 when created, 200 when updated)",
			request: "RecordInput", status: 200, response: "Record", errors: append(write, 403)},
		{method: "DELETE", pattern: "/api/v1/records/{object}/{id}", scope: apikey.ScopeDelete, handle: s.deleteRecord, tag: "records",
			id: "deleteRecord", summary: "Delete a record", headers: []param{ifMatchParam}, status: 204, errors: []int{400, 404, 409}},
	}
}

var (
	ifMatchParam = param{name: "If-Match", description: "the version the change is based on, quoted or not; the write fails with 409 if the record has moved on",
		schema: map[string]any{"type": "string"}}
)

// recordInput is the body of create, update and upsert.
type recordInput struct {
	Fields records.Fields `json:"fields"`
}

func (s *Service) listRecords(w http.ResponseWriter, r *http.Request) error {
	q := records.ListQuery{Workspace: workspaceOf(r), Object: r.PathValue("object"), Limit: defaultLimit}
	for name, vals := range r.URL.Query() {
		val := vals[len(vals)-1]
		switch {
		case name == "limit":
			n, err := parseLimit(val)
			if err != nil {
				return err
			}
			q.Limit = n
		case name == "cursor":
			q.After = val
		case name == "updated_since":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return errBadRequest("invalid_parameter", "updated_since must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			q.UpdatedSince = t
		case strings.HasPrefix(name, "filter[") && strings.HasSuffix(name, "]"):
			field := name[len("filter[") : len(name)-1]
			if field == "" {
				return errBadRequest("invalid_parameter", "filter needs a field name: filter[field]=value")
			}
			if q.Filter == nil {
				q.Filter = map[string]string{}
			}
			q.Filter[field] = val
		default:
			return errBadRequest("invalid_parameter", "unknown query parameter "+strconv.Quote(name))
		}
	}
	// The pipeline pages records itself (a host's pipeline may page its own
	// way), so this list answers its cursor rather than cutting limit+1.
	recs, next, err := s.pipeline.List(r.Context(), q)
	var invalid *records.ValidationError
	if errors.As(err, &invalid) && len(q.Filter) > 0 {
		// The query, not a body, was wrong: 400 naming each filter.
		parts := make([]string, len(invalid.Fields))
		for i, f := range invalid.Fields {
			parts[i] = "filter[" + f.Field + "] " + f.Message
		}
		return errBadRequest("invalid_parameter", strings.Join(parts, "; "))
	}
	if err != nil {
		return err
	}
	p := page[*records.Record]{Data: recs, NextCursor: cursorOf(next)}
	if p.Data == nil {
		p.Data = []*records.Record{}
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Service) getRecord(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.pipeline.Get(r.Context(), workspaceOf(r), r.PathValue("object"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeRecord(w, http.StatusOK, rec)
}

func (s *Service) createRecord(w http.ResponseWriter, r *http.Request) error {
	var in recordInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	rec, err := s.pipeline.Create(r.Context(), s.apiWrite(r, in.Fields))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/records/"+url.PathEscape(rec.Object)+"/"+url.PathEscape(rec.ID))
	return writeRecord(w, http.StatusCreated, rec)
}

func (s *Service) updateRecord(w http.ResponseWriter, r *http.Request) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in recordInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	wr := s.apiWrite(r, in.Fields)
	wr.ID = r.PathValue("id")
	wr.ExpectedVersion = version
	rec, err := s.pipeline.Update(r.Context(), wr)
	if err != nil {
		return err
	}
	return writeRecord(w, http.StatusOK, rec)
}

func (s *Service) upsertRecord(w http.ResponseWriter, r *http.Request) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in recordInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	wr := s.apiWrite(r, in.Fields)
	wr.ExternalID = r.PathValue("external_id")
	wr.ExpectedVersion = version
	if err := s.sameExternalID(wr); err != nil {
		return err
	}
	rec, created, err := s.pipeline.Upsert(r.Context(), wr)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/records/"+url.PathEscape(rec.Object)+"/"+url.PathEscape(rec.ID))
	}
	return writeRecord(w, status, rec)
}

func (s *Service) deleteRecord(w http.ResponseWriter, r *http.Request) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	wr := s.apiWrite(r, nil)
	wr.ID = r.PathValue("id")
	wr.ExpectedVersion = version
	if _, err := s.pipeline.Delete(r.Context(), wr); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// apiWrite starts a pipeline write for the request: its workspace, object,
// source api, and the calling key as actor.
func (s *Service) apiWrite(r *http.Request, fields records.Fields) records.Write {
	if fields == nil {
		fields = records.Fields{}
	}
	return records.Write{
		Workspace: workspaceOf(r),
		Object:    r.PathValue("object"),
		Fields:    fields,
		Source:    records.SourceAPI,
		Actor:     records.Actor{Kind: "api_key", ID: keyIDOf(r)},
	}
}

// ifMatch reads the optional If-Match header as a record version: 3 and "3"
// mean version 3; absent or * means any version (0). A weak tag (W/"3") is
// refused: If-Match compares strongly (RFC 9110, 13.1.1), and versions are
// strong tags.
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	if strings.HasPrefix(v, "W/") {
		return 0, errBadRequest("invalid_if_match", "If-Match compares strong tags; send the version as \"3\", not W/\"3\"")
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, errBadRequest("invalid_if_match", "If-Match must be a record version such as \"3\"")
	}
	return n, nil
}

// sameExternalID refuses an upsert whose body names an external id other
// than the path's: which of the two was meant cannot be told.
func (s *Service) sameExternalID(wr records.Write) error {
	p, ok := s.pipeline.(interface {
		Object(name string) (*records.Object, bool)
	})
	if !ok {
		return nil
	}
	obj, ok := p.Object(wr.Object)
	if !ok || obj.ExternalID == "" {
		return nil
	}
	body, present := wr.Fields[obj.ExternalID]
	if !present || body == nil {
		return nil
	}
	if str, _ := body.(string); strings.TrimSpace(str) != strings.TrimSpace(wr.ExternalID) {
		return errInvalid(records.FieldError{Field: obj.ExternalID, Code: "external_id_mismatch",
			Message: "differs from the external id in the path; leave it out or send the same value"})
	}
	return nil
}

// writeRecord answers with a record and its version as the ETag, so a
// client can send it back in If-Match.
func writeRecord(w http.ResponseWriter, status int, rec *records.Record) error {
	w.Header()["Etag"] = []string{`"` + strconv.FormatInt(rec.Version, 10) + `"`}
	return writeJSON(w, status, rec)
}
