package integration

import (
	"errors"
	"net/http"
	"slices"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

// eventsFeature is the event feed: the events webhooks deliver, for
// consumers that poll instead of receiving pushes.
func (s *Service) eventsFeature() feature {
	return feature{name: "events", schemas: eventSchemas(), routes: []route{
		{method: "GET", pattern: "/api/v1/events", scope: apikey.ScopeRead, handle: s.listEvents, tag: "events", id: "listEvents",
			summary: "The workspace's record events in the order they committed; poll with after= the last id seen",
			query: []param{limitParam,
				{name: "after", description: "the id of the last event already read; the feed answers what committed after it",
					schema: map[string]any{"type": "string"}},
				{name: "type", description: "only events of this type",
					schema: map[string]any{"type": "string", "enum": eventTypes}},
				{name: "object", description: "only events of records of this object", schema: map[string]any{"type": "string"}}},
			status: 200, response: "EventList", errors: []int{400}},
	}}
}

var eventTypes = []string{records.EventCreated, records.EventUpdated, records.EventDeleted}

func eventSchemas() map[string]any {
	return map[string]any{
		"Event": obj("A record event, in the shape webhooks deliver it.", []string{"id", "type", "created_at", "workspace_id", "data"}, map[string]any{
			"id":           str("Also the webhook-id header of its deliveries.", "example", "evt_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"type":         str("", "enum", eventTypes),
			"created_at":   dateTime(""),
			"workspace_id": str(""),
			"data": obj("", []string{"object", "record", "source", "actor"}, map[string]any{
				"object":  str(""),
				"record":  ref("Record"),
				"changes": map[string]any{"type": "object", "additionalProperties": ref("Change")},
				"source":  str(""),
				"actor":   ref("Actor"),
			}),
		}),
		"EventList": list("Event"),
	}
}

// listEvents answers a page of the feed. next_cursor is the id of the page's
// last event while more follow; a poller that reached the end keeps the id
// of the last event it read and asks again with after= that id.
func (s *Service) listEvents(w http.ResponseWriter, r *http.Request) error {
	pq, err := parsePage(r)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	q := records.EventQuery{Workspace: workspaceOf(r), After: v.Get("after"), Type: v.Get("type"), Object: v.Get("object"), Limit: pq.Limit + 1}
	if q.After == "" {
		q.After = pq.Cursor
	}
	if q.Type != "" && !slices.Contains(eventTypes, q.Type) {
		return errBadRequest("invalid_parameter", "type must be record.created, record.updated or record.deleted")
	}
	evs, err := s.store.EventFeed(r.Context(), q)
	if errors.Is(err, records.ErrNotFound) {
		return errBadRequest("invalid_parameter", "after names no event of this workspace")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pageOf(evs, pq.Limit, func(e *records.Event) string { return e.ID }))
}
