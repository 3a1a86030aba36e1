package store

import (
	"context"
	"fmt"

	"github.com/smartlite/crmkit/records"
)

var _ records.RowTx = rowTx{}

// rowTx is the records.RowTx InTx hands out on Postgres, where writing a
// row's reservation, record, audit entry and event as one statement saves
// three round trips. SQLite has no round trips to save, and there the
// pipeline's separate calls, which insert a batch's audit entries and events
// with one statement each, are faster.
type rowTx struct{ *Tx }

// asRecordsTx answers t as InTx hands it to its function.
func (t *Tx) asRecordsTx() records.Tx {
	if t.s.dialect == DialectPostgres {
		return rowTx{t}
	}
	return t
}

// WriteRow writes a created or updated record with its plan reservation,
// audit entry and event in one statement, and fails as ReserveRecords,
// InsertRecord, UpdateRecord, InsertAudit and InsertEvents would. It
// enqueues no fan-out job: EnqueueFanout does.
func (t rowTx) WriteRow(ctx context.Context, w *records.RowWrite) error {
	return t.writeRowPostgres(ctx, w)
}

// createRowSQL reserves a place of the plan (when $1), inserts the record
// unless a record holds its id or external id, and inserts the audit entry
// and the event only when the record was inserted. It answers whether the
// reservation and the insert took place, so that a plan limit and a
// duplicate are told apart without another statement.
//
// Parameters are bound, not formatted into the text, so the statement is
// prepared once per connection and planned once, not on every write.
const createRowSQL = `WITH reserve AS (
	UPDATE workspaces SET record_count = record_count + 1
	WHERE $1::boolean AND id = $2::text AND ($3::bigint <= 0 OR record_count + 1 <= $3::bigint)
	RETURNING 1
), rec AS (
	INSERT INTO records (id, workspace_id, object, external_id, version, fields, created_at, updated_at)
	SELECT $4::text, $2::text, $5::text, $6::text, $7::bigint, $8::jsonb, $9::timestamptz, $10::timestamptz
	WHERE NOT $1::boolean OR EXISTS (SELECT FROM reserve)
	ON CONFLICT DO NOTHING
	RETURNING 1
), audit AS (
	INSERT INTO audit_entries (id, workspace_id, object, record_id, action, source, actor, changes, created_at)
	SELECT $11::text, $12::text, $13::text, $14::text, $15::text, $16::text, $17::jsonb, $18::jsonb, $19::timestamptz
	FROM rec
), event AS (
	INSERT INTO events (id, workspace_id, type, object, record_id, payload, created_at)
	SELECT $20::text, $21::text, $22::text, $23::text, $24::text, $25::jsonb, $26::timestamptz
	FROM rec
)
SELECT (SELECT count(*) FROM reserve), (SELECT count(*) FROM rec)`

// updateRowSQL updates the record if it is at version $6 - 1 and no other
// record of the object holds the external id $1, clears its unique values
// (the caller puts the new ones), and inserts the audit entry and the event
// only when the record was updated. It answers whether the external id was
// taken and whether the record was updated.
const updateRowSQL = `WITH taken AS (
	SELECT FROM records
	WHERE $1::text IS NOT NULL AND workspace_id = $2::text AND object = $3::text AND external_id = $1::text AND id <> $4::text
	LIMIT 1
), rec AS (
	UPDATE records SET external_id = $1::text, version = $5::bigint, fields = $6::jsonb, updated_at = $7::timestamptz
	WHERE workspace_id = $2::text AND object = $3::text AND id = $4::text AND version = $5::bigint - 1
		AND NOT EXISTS (SELECT FROM taken)
	RETURNING 1
), uniq AS (
	DELETE FROM record_unique_values WHERE record_id = $4::text AND EXISTS (SELECT FROM rec)
), audit AS (
	INSERT INTO audit_entries (id, workspace_id, object, record_id, action, source, actor, changes, created_at)
	SELECT $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::jsonb, $15::jsonb, $16::timestamptz
	FROM rec
), event AS (
	INSERT INTO events (id, workspace_id, type, object, record_id, payload, created_at)
	SELECT $17::text, $18::text, $19::text, $20::text, $21::text, $22::jsonb, $23::timestamptz
	FROM rec
)
SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM rec)`

func (t *Tx) writeRowPostgres(ctx context.Context, w *records.RowWrite) error {
	r := w.Record
	row, err := newRecordRow(r, w.ExternalID)
	if err != nil {
		return err
	}
	a, err := newAuditRow(w.Audit)
	if err != nil {
		return err
	}
	e, err := newEventRow(w.Event)
	if err != nil {
		return err
	}
	var ext any
	if row.ExternalID != nil {
		ext = *row.ExternalID
	}
	var first, written int
	if w.Create {
		err = t.tx.Tx.QueryRowContext(ctx, createRowSQL,
			w.Reserve, row.WorkspaceID, w.Max,
			row.ID, row.Object, ext, row.Version, row.Fields, row.CreatedAt, row.UpdatedAt,
			a.ID, a.WorkspaceID, a.Object, a.RecordID, a.Action, a.Source, a.Actor, a.Changes, a.CreatedAt,
			e.ID, e.WorkspaceID, e.Type, e.Object, e.RecordID, e.Payload, e.CreatedAt,
		).Scan(&first, &written)
	} else {
		err = t.tx.Tx.QueryRowContext(ctx, updateRowSQL,
			ext, row.WorkspaceID, row.Object, row.ID, row.Version, row.Fields, row.UpdatedAt,
			a.ID, a.WorkspaceID, a.Object, a.RecordID, a.Action, a.Source, a.Actor, a.Changes, a.CreatedAt,
			e.ID, e.WorkspaceID, e.Type, e.Object, e.RecordID, e.Payload, e.CreatedAt,
		).Scan(&first, &written)
	}
	if err != nil {
		return mapWriteErr("write record", err)
	}
	switch {
	case w.Create && w.Reserve && first == 0:
		return t.reserveFailed(ctx, r.Workspace, w.Max)
	case !w.Create && first > 0, w.Create && written == 0 && w.ExternalID != "":
		return fmt.Errorf("store: external id %q of %s: %w", w.ExternalID, r.Object, records.ErrDuplicate)
	case w.Create && written == 0:
		return fmt.Errorf("store: record id %s: %w", r.ID, records.ErrDuplicate)
	case written == 0:
		return t.unwritten(ctx, r.Workspace, r.Object, r.ID)
	}
	return t.putUniqueValues(ctx, r, w.Unique)
}
