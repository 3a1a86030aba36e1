package records

import (
	"context"
	"encoding/json"
	"time"
)

// FieldType is the type of one field of an Object.
type FieldType string

// The field types an Object may use.
const (
	TypeString    FieldType = "string"
	TypeText      FieldType = "text"
	TypeNumber    FieldType = "number"
	TypeInteger   FieldType = "integer"
	TypeBoolean   FieldType = "boolean"
	TypeDate      FieldType = "date"     // "2006-01-02"
	TypeDateTime  FieldType = "datetime" // RFC 3339
	TypeEmail     FieldType = "email"
	TypeURL       FieldType = "url"
	TypePicklist  FieldType = "picklist"
	TypeReference FieldType = "reference"
)

// Field describes one field of an Object.
type Field struct {
	Name     string    `json:"name"`
	Type     FieldType `json:"type"`
	Required bool      `json:"required,omitempty"`
	// Unique fields may not hold the same value twice within one object of one
	// workspace. The external id field is always unique.
	Unique  bool     `json:"unique,omitempty"`
	Options []string `json:"options,omitempty"` // picklist values
	// Reference names the object a reference field points to.
	Reference string `json:"reference,omitempty"`
	// Min and Max bound number and integer fields, and the length of strings.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// ReadOnly fields cannot be written by callers; only rules set them.
	ReadOnly bool `json:"read_only,omitempty"`
}

// Object is a named schema of typed fields.
type Object struct {
	Name   string  `json:"name"`
	Fields []Field `json:"fields"`
	// ExternalID names the field that holds the id the record has in another
	// system; upserts match on it. Empty means the object has none.
	ExternalID string `json:"external_id,omitempty"`
}

// Fields is the JSON object of a record's field values. Values are the types
// encoding/json produces: string, float64, bool, nil.
type Fields map[string]any

// Record is one stored CRM record.
type Record struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Workspace string    `json:"-"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Fields    Fields    `json:"fields"`
}

// ExternalID returns the value of the record's external id field under obj,
// or "" when it has none.
func (r *Record) ExternalID(obj *Object) string {
	if obj == nil || obj.ExternalID == "" {
		return ""
	}
	s, _ := r.Fields[obj.ExternalID].(string)
	return s
}

// Source says through which path a write arrived.
type Source string

// The sources of writes.
const (
	SourceAPI       Source = "api"
	SourceBulk      Source = "bulk"
	SourceImport    Source = "import"
	SourceInbound   Source = "inbound"
	SourceConnector Source = "connector"
	SourceUI        Source = "ui"
)

// Actor is who made a write: an API key, a connector, an inbound source or a
// user, by id.
type Actor struct {
	Kind string `json:"kind"` // "api_key", "connector", "inbound_source", "user", "system"
	ID   string `json:"id"`
}

// Change is the before and after value of one changed field.
type Change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// Event types.
const (
	EventCreated = "record.created"
	EventUpdated = "record.updated"
	EventDeleted = "record.deleted"
)

// Event is one committed change of one record, as webhooks and feed readers
// see it.
type Event struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	CreatedAt time.Time         `json:"created_at"`
	Workspace string            `json:"workspace_id"`
	Object    string            `json:"-"`
	RecordID  string            `json:"-"`
	Record    *Record           `json:"-"` // the state after the write; for deletes, the last state
	Changes   map[string]Change `json:"-"`
	Source    Source            `json:"-"`
	Actor     Actor             `json:"-"`
}

// EventData is the "data" member of an event's JSON form.
type EventData struct {
	Object  string            `json:"object"`
	Record  *Record           `json:"record"`
	Changes map[string]Change `json:"changes,omitempty"`
	Source  Source            `json:"source"`
	Actor   Actor             `json:"actor"`
}

// MarshalJSON writes the event in the payload shape outbound webhooks send.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		CreatedAt time.Time `json:"created_at"`
		Workspace string    `json:"workspace_id"`
		Data      EventData `json:"data"`
	}
	return json.Marshal(plain{
		ID: e.ID, Type: e.Type, CreatedAt: e.CreatedAt.UTC(), Workspace: e.Workspace,
		Data: EventData{Object: e.Object, Record: e.Record, Changes: e.Changes, Source: e.Source, Actor: e.Actor},
	})
}

// UnmarshalJSON reads the payload shape MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var p struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		CreatedAt time.Time `json:"created_at"`
		Workspace string    `json:"workspace_id"`
		Data      EventData `json:"data"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = Event{ID: p.ID, Type: p.Type, CreatedAt: p.CreatedAt, Workspace: p.Workspace,
		Object: p.Data.Object, Record: p.Data.Record, Changes: p.Data.Changes, Source: p.Data.Source, Actor: p.Data.Actor}
	if e.Record != nil {
		e.RecordID = e.Record.ID
		e.Record.Workspace = e.Workspace
	}
	return nil
}

// AuditEntry records one write: who, through which path, and the before and
// after of every changed field.
type AuditEntry struct {
	ID        string            `json:"id"`
	Workspace string            `json:"-"`
	Object    string            `json:"object"`
	RecordID  string            `json:"record_id"`
	Action    string            `json:"action"` // "create", "update", "delete"
	Source    Source            `json:"source"`
	Actor     Actor             `json:"actor"`
	Changes   map[string]Change `json:"changes"`
	CreatedAt time.Time         `json:"created_at"`
}

// FanoutArgs is the job enqueued, in the write's own transaction, for every
// event: the worker that handles it fans the event out to webhook endpoints.
// It satisfies river.JobArgs without this package importing River.
type FanoutArgs struct {
	EventID   string `json:"event_id"`
	Workspace string `json:"workspace_id"`
}

// Kind is the job kind of FanoutArgs.
func (FanoutArgs) Kind() string { return "crmkit_event_fanout" }

// Workspace is a tenant. Everything is isolated per workspace.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"created_at"`
}

// EventQuery selects events of one workspace for the event feed.
type EventQuery struct {
	Workspace string
	// After is the id of the last event the reader saw; "" reads from the
	// start.
	After string
	// Type and Object keep only events of that type and object, when set.
	Type, Object string
	Limit        int
}

// ListQuery selects records of one object of one workspace.
type ListQuery struct {
	Workspace string
	Object    string
	// Filter matches fields by equality of their JSON value's text.
	Filter map[string]string
	// FilterValues, when set, holds each of Filter's values as the field's
	// JSON value (a string, number or boolean), which Pipeline.List sets
	// from the object's schema. A store that matches JSON values by
	// containment (Postgres, whose index then serves the filter) compares
	// these, by type: "42" finds the string "42" and 42 the number. A
	// filter without one here is compared by its text.
	FilterValues map[string]any
	UpdatedSince time.Time
	// After is the cursor: the id of the last record of the previous page.
	After string
	Limit int
}

// Store is what the pipeline needs from persistence. The store package
// implements it on bun for Postgres and SQLite.
//
// Reads outside a transaction return ErrNotFound for a record that does not
// exist in the given workspace; a record of another workspace does not exist.
type Store interface {
	// InTx runs fn in one database transaction, committed when fn returns nil
	// and rolled back otherwise.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	GetRecord(ctx context.Context, workspace, object, id string) (*Record, error)
	GetRecordByExternalID(ctx context.Context, workspace, object, externalID string) (*Record, error)
	// ListRecords answers records ordered by id, at most q.Limit of them.
	ListRecords(ctx context.Context, q ListQuery) ([]*Record, error)
	// ListEvents answers the workspace's events with an id greater than after
	// (all when after is ""), ordered by id, at most limit of them.
	ListEvents(ctx context.Context, workspace, after string, limit int) ([]*Event, error)
	PlanStore
}

// Tx is the write side of Store, valid only inside InTx. Every method runs in
// the one transaction.
type Tx interface {
	// ReserveRecords adds delta (negative on delete) to the workspace's record
	// count, failing with ErrPlanLimit when the count would pass max (max 0
	// means no cap). The check and the bump are one statement, so the cap holds
	// under concurrent writers.
	ReserveRecords(ctx context.Context, workspace string, delta, max int64) error
	// InsertRecord stores a new record. externalID and unique values conflicting
	// with another record of the same object and workspace fail with an error
	// wrapping ErrDuplicate.
	InsertRecord(ctx context.Context, r *Record, externalID string, unique map[string]string) error
	// UpdateRecord stores r, whose Version is already the new version, only if
	// the stored version is r.Version-1; otherwise ErrConflict (or ErrNotFound
	// when the record is gone).
	UpdateRecord(ctx context.Context, r *Record, externalID string, unique map[string]string) error
	// DeleteRecord removes the record if its stored version is version.
	DeleteRecord(ctx context.Context, workspace, object, id string, version int64) error
	// InsertAudit and InsertEvents write many rows in one statement where the
	// database allows; InsertEvents also enqueues one FanoutArgs job per event.
	InsertAudit(ctx context.Context, entries ...*AuditEntry) error
	InsertEvents(ctx context.Context, events ...*Event) error
	// Savepoint runs fn so that its writes are undone alone when it fails,
	// leaving the rest of the transaction intact (partial batches).
	Savepoint(ctx context.Context, fn func(ctx context.Context) error) error
}
