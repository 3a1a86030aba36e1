package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/records"
)

var (
	_ records.Store = (*Store)(nil)
	_ records.Tx    = (*Tx)(nil)
)

// DefaultListLimit is how many records ListRecords answers when the query
// sets no limit.
const DefaultListLimit = 50

type recordRow struct {
	bun.BaseModel `bun:"table:records"`

	ID          string    `bun:"id,pk"`
	WorkspaceID string    `bun:"workspace_id"`
	Object      string    `bun:"object"`
	ExternalID  *string   `bun:"external_id"`
	Version     int64     `bun:"version"`
	Fields      string    `bun:"fields"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

func (r *recordRow) record() (*records.Record, error) {
	rec := &records.Record{
		ID: r.ID, Object: r.Object, Workspace: r.WorkspaceID, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal([]byte(r.Fields), &rec.Fields); err != nil {
		return nil, fmt.Errorf("store: record %s: fields: %w", r.ID, err)
	}
	if rec.Fields == nil {
		rec.Fields = records.Fields{}
	}
	return rec, nil
}

type auditRow struct {
	bun.BaseModel `bun:"table:audit_entries"`

	ID          string    `bun:"id,pk"`
	WorkspaceID string    `bun:"workspace_id"`
	Object      string    `bun:"object"`
	RecordID    string    `bun:"record_id"`
	Action      string    `bun:"action"`
	Source      string    `bun:"source"`
	Actor       string    `bun:"actor"`
	Changes     string    `bun:"changes"`
	CreatedAt   time.Time `bun:"created_at"`
}

type eventRow struct {
	bun.BaseModel `bun:"table:events"`

	ID          string    `bun:"id,pk"`
	WorkspaceID string    `bun:"workspace_id"`
	Type        string    `bun:"type"`
	Object      string    `bun:"object"`
	RecordID    string    `bun:"record_id"`
	Payload     string    `bun:"payload"`
	CreatedAt   time.Time `bun:"created_at"`
}

// Tx is the write side of the store inside InTx; it implements records.Tx.
type Tx struct {
	s          *Store
	tx         bun.Tx
	savepoints atomic.Int64
}

type txKey struct{}

// InTx runs fn in one transaction. The context fn receives carries the
// transaction: the store's reads called with it (GetRecord and the others)
// read inside the transaction, which matters on SQLite, where a read on
// another connection would not see the transaction's own writes. An InTx
// called with such a context runs fn in a savepoint of the outer transaction.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx records.Tx) error) error {
	if t := s.txFrom(ctx); t != nil {
		return t.Savepoint(ctx, func(ctx context.Context) error { return fn(ctx, t.asRecordsTx()) })
	}
	return s.runInTx(ctx, func(ctx context.Context, btx bun.Tx) error {
		t := &Tx{s: s, tx: btx}
		return fn(context.WithValue(ctx, txKey{}, t), t.asRecordsTx())
	})
}

func (s *Store) txFrom(ctx context.Context) *Tx {
	if t, ok := ctx.Value(txKey{}).(*Tx); ok && t.s == s {
		return t
	}
	return nil
}

// IDB answers the transaction carried by ctx, or the database. Storage code
// queries through it so that it reads its own transaction's writes.
func (s *Store) IDB(ctx context.Context) bun.IDB {
	if t := s.txFrom(ctx); t != nil {
		return t.tx
	}
	return s.db
}

// Savepoint runs fn inside SAVEPOINT; when fn fails its writes are rolled
// back alone and the transaction stays usable.
func (t *Tx) Savepoint(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	name := fmt.Sprintf("crmkit_sp_%d", t.savepoints.Add(1))
	if _, err := t.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	if err := fn(ctx); err != nil {
		if _, rerr := t.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
			return errors.Join(err, fmt.Errorf("store: rollback to savepoint: %w", rerr))
		}
		if _, rerr := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); rerr != nil {
			return errors.Join(err, fmt.Errorf("store: release savepoint: %w", rerr))
		}
		return err
	}
	if _, err := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return fmt.Errorf("store: release savepoint: %w", err)
	}
	return nil
}

// ReserveRecords bumps the workspace's record count by delta when the count
// stays within max, checking and bumping in one UPDATE so that concurrent
// writers cannot pass the cap between them. A negative delta always passes:
// a workspace above its cap (after a downgrade) may still delete.
func (t *Tx) ReserveRecords(ctx context.Context, workspace string, delta, max int64) error {
	res, err := t.tx.ExecContext(ctx,
		`UPDATE workspaces SET record_count = record_count + ?
		WHERE id = ? AND (? <= 0 OR ? <= 0 OR record_count + ? <= ?)`,
		delta, workspace, delta, max, delta, max)
	if err != nil {
		return fmt.Errorf("store: reserve records: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: reserve records: %w", err)
	} else if n == 1 {
		return nil
	}
	return t.reserveFailed(ctx, workspace, max)
}

// reserveFailed tells why a reservation under max updated no workspace.
func (t *Tx) reserveFailed(ctx context.Context, workspace string, max int64) error {
	exists, err := t.tx.NewSelect().Table("workspaces").Where("id = ?", workspace).Exists(ctx)
	if err != nil {
		return fmt.Errorf("store: reserve records: %w", err)
	}
	if !exists {
		return fmt.Errorf("store: workspace %s: %w", workspace, records.ErrNotFound)
	}
	return fmt.Errorf("store: workspace %s holds its plan's %d records: %w", workspace, max, records.ErrPlanLimit)
}

// InsertRecord stores r. Its times are stored in UTC to the microsecond, and
// r is updated to match what a read would answer. unique maps unique field
// names to the text of their values; empty values are not constrained, like
// an empty externalID. On a duplicate, the rows this call already wrote stay
// in the transaction: roll back (InTx or Savepoint) as for any error.
func (t *Tx) InsertRecord(ctx context.Context, r *records.Record, externalID string, unique map[string]string) error {
	row, err := newRecordRow(r, externalID)
	if err != nil {
		return err
	}
	// ON CONFLICT DO NOTHING reports a duplicate as zero rows instead of an
	// error, which on Postgres would abort the whole transaction.
	res, err := t.tx.NewInsert().Model(row).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return mapWriteErr("insert record", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: insert record: %w", err)
	} else if n == 0 {
		if externalID != "" {
			return fmt.Errorf("store: external id %q of %s: %w", externalID, r.Object, records.ErrDuplicate)
		}
		return fmt.Errorf("store: record id %s: %w", r.ID, records.ErrDuplicate)
	}
	return t.putUniqueValues(ctx, r, unique)
}

// UpdateRecord stores r if the stored version is r.Version-1. unique holds
// every unique value of the new state; the old ones are replaced.
func (t *Tx) UpdateRecord(ctx context.Context, r *records.Record, externalID string, unique map[string]string) error {
	row, err := newRecordRow(r, externalID)
	if err != nil {
		return err
	}
	if externalID != "" {
		taken, err := t.tx.NewSelect().Table("records").
			Where("workspace_id = ? AND object = ? AND external_id = ? AND id <> ?", r.Workspace, r.Object, externalID, r.ID).
			Exists(ctx)
		if err != nil {
			return fmt.Errorf("store: update record: %w", err)
		}
		if taken {
			return fmt.Errorf("store: external id %q of %s: %w", externalID, r.Object, records.ErrDuplicate)
		}
	}
	res, err := t.tx.NewUpdate().Model(row).
		Column("external_id", "version", "fields", "updated_at").
		Where("workspace_id = ? AND object = ? AND id = ? AND version = ?", r.Workspace, r.Object, r.ID, r.Version-1).
		Exec(ctx)
	if err != nil {
		return mapWriteErr("update record", err)
	}
	if err := t.checkWritten(ctx, res, r.Workspace, r.Object, r.ID); err != nil {
		return err
	}
	if _, err := t.tx.NewDelete().Table("record_unique_values").Where("record_id = ?", r.ID).Exec(ctx); err != nil {
		return fmt.Errorf("store: update record: unique values: %w", err)
	}
	return t.putUniqueValues(ctx, r, unique)
}

// DeleteRecord removes the record if its stored version is version (0
// matches any version). Its unique values go with it.
func (t *Tx) DeleteRecord(ctx context.Context, workspace, object, id string, version int64) error {
	res, err := t.tx.NewDelete().Table("records").
		Where("workspace_id = ? AND object = ? AND id = ?", workspace, object, id).
		Where("(? = 0 OR version = ?)", version, version).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: delete record: %w", err)
	}
	return t.checkWritten(ctx, res, workspace, object, id)
}

// checkWritten tells, for a guarded write that touched no row, whether the
// record is gone (ErrNotFound) or has another version (ErrConflict).
func (t *Tx) checkWritten(ctx context.Context, res sql.Result, workspace, object, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: write record: %w", err)
	}
	if n == 1 {
		return nil
	}
	return t.unwritten(ctx, workspace, object, id)
}

// unwritten tells why a write guarded by the record's version touched no
// row: the record is gone (ErrNotFound) or has another version
// (ErrConflict).
func (t *Tx) unwritten(ctx context.Context, workspace, object, id string) error {
	exists, err := t.tx.NewSelect().Table("records").
		Where("workspace_id = ? AND object = ? AND id = ?", workspace, object, id).Exists(ctx)
	if err != nil {
		return fmt.Errorf("store: write record: %w", err)
	}
	if !exists {
		return fmt.Errorf("store: %s %s: %w", object, id, records.ErrNotFound)
	}
	return fmt.Errorf("store: %s %s: %w", object, id, records.ErrConflict)
}

func (t *Tx) putUniqueValues(ctx context.Context, r *records.Record, unique map[string]string) error {
	fields := make([]string, 0, len(unique))
	for f, v := range unique {
		if v != "" {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	// One row per statement, so that a duplicate names its field.
	for _, f := range fields {
		res, err := t.tx.ExecContext(ctx,
			`INSERT INTO record_unique_values (workspace_id, object, field, value, record_id)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			r.Workspace, r.Object, f, unique[f], r.ID)
		if err != nil {
			return mapWriteErr("unique value", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: unique value: %w", err)
		} else if n == 0 {
			return fmt.Errorf("store: %s.%s value %q: %w", r.Object, f, unique[f], records.ErrDuplicate)
		}
	}
	return nil
}

func newRecordRow(r *records.Record, externalID string) (*recordRow, error) {
	if r.ID == "" || r.Workspace == "" || r.Object == "" {
		return nil, errors.New("store: record needs an id, a workspace and an object")
	}
	fields := r.Fields
	if fields == nil {
		fields = records.Fields{}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("store: record %s: fields: %w", r.ID, err)
	}
	r.CreatedAt = storedTime(r.CreatedAt)
	r.UpdatedAt = storedTime(r.UpdatedAt)
	row := &recordRow{
		ID: r.ID, WorkspaceID: r.Workspace, Object: r.Object, Version: r.Version,
		Fields: string(b), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if externalID != "" {
		row.ExternalID = &externalID
	}
	return row, nil
}

// storedTime is t as both dialects store it: UTC, to the microsecond, with
// now standing in for the zero time.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// InsertAudit writes the entries in one statement, giving an id and a time
// to those without.
func (t *Tx) InsertAudit(ctx context.Context, entries ...*records.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	rows := make([]auditRow, len(entries))
	for i, e := range entries {
		row, err := newAuditRow(e)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	if _, err := t.tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return mapWriteErr("insert audit", err)
	}
	return nil
}

// newAuditRow gives e an id and a time when it has none and answers its row.
func newAuditRow(e *records.AuditEntry) (auditRow, error) {
	if e.ID == "" {
		e.ID = records.NewID("aud")
	}
	e.CreatedAt = storedTime(e.CreatedAt)
	actor, err := json.Marshal(e.Actor)
	if err != nil {
		return auditRow{}, fmt.Errorf("store: audit actor: %w", err)
	}
	changes := e.Changes
	if changes == nil {
		changes = map[string]records.Change{}
	}
	ch, err := json.Marshal(changes)
	if err != nil {
		return auditRow{}, fmt.Errorf("store: audit changes: %w", err)
	}
	return auditRow{
		ID: e.ID, WorkspaceID: e.Workspace, Object: e.Object, RecordID: e.RecordID,
		Action: e.Action, Source: string(e.Source), Actor: string(actor), Changes: string(ch),
		CreatedAt: e.CreatedAt,
	}, nil
}

// InsertEvents writes the events in one statement, giving an id and a time
// to those without, and enqueues one records.FanoutArgs job per event through
// the store's River client in the same transaction.
func (t *Tx) InsertEvents(ctx context.Context, events ...*records.Event) error {
	return t.s.insertEvents(ctx, t.tx, t.tx.Tx, events)
}

// insertEvents writes events through conn and enqueues their fan-out jobs on
// sqlTx, which must be the transaction conn runs in. Tx.InsertEvents and
// PublishTx both come here, so a host's events are stored exactly as the
// pipeline's are.
func (s *Store) insertEvents(ctx context.Context, conn bun.IConn, sqlTx *sql.Tx, events []*records.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([]eventRow, len(events))
	for i, e := range events {
		row, err := newEventRow(e)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	if _, err := s.db.NewInsert().Conn(conn).Model(&rows).Exec(ctx); err != nil {
		return mapWriteErr("insert events", err)
	}
	return s.enqueueFanout(ctx, sqlTx, events)
}

// newEventRow gives e an id and a time when it has none and answers its row.
func newEventRow(e *records.Event) (eventRow, error) {
	if e.ID == "" {
		e.ID = records.NewID("evt")
	}
	e.CreatedAt = storedTime(e.CreatedAt)
	if e.RecordID == "" && e.Record != nil {
		e.RecordID = e.Record.ID
	}
	// Called directly, not through json.Marshal, which would scan and copy
	// the payload once more to check and compact what MarshalJSON wrote.
	payload, err := e.MarshalJSON()
	if err != nil {
		return eventRow{}, fmt.Errorf("store: event payload: %w", err)
	}
	return eventRow{
		ID: e.ID, WorkspaceID: e.Workspace, Type: e.Type, Object: e.Object, RecordID: e.RecordID,
		Payload: string(payload), CreatedAt: e.CreatedAt,
	}, nil
}

// EnqueueFanout enqueues one records.FanoutArgs job per event, already
// stored, through the store's River client in the transaction.
//
// It uses River's InsertManyFastTx: the jobs carry no unique options, so
// InsertManyTx's conflict handling and the job rows it reads back would be
// paid for and thrown away.
func (t *Tx) EnqueueFanout(ctx context.Context, events ...*records.Event) error {
	return t.s.enqueueFanout(ctx, t.tx.Tx, events)
}

func (s *Store) enqueueFanout(ctx context.Context, sqlTx *sql.Tx, events []*records.Event) error {
	if len(events) == 0 {
		return nil
	}
	jobs := make([]river.InsertManyParams, len(events))
	for i, e := range events {
		jobs[i] = river.InsertManyParams{Args: records.FanoutArgs{EventID: e.ID, Workspace: e.Workspace}}
	}
	if _, err := s.JobClient().InsertManyFastTx(ctx, sqlTx, jobs); err != nil {
		return fmt.Errorf("store: enqueue event fanout: %w", err)
	}
	return nil
}

// GetRecord answers the record, or ErrNotFound when the workspace holds no
// such record of that object.
func (s *Store) GetRecord(ctx context.Context, workspace, object, id string) (*records.Record, error) {
	return s.getRecord(ctx, workspace, object, "id", id, id)
}

// GetRecordByExternalID answers the record holding externalID, or ErrNotFound.
func (s *Store) GetRecordByExternalID(ctx context.Context, workspace, object, externalID string) (*records.Record, error) {
	return s.getRecord(ctx, workspace, object, "external_id", externalID, "external id "+externalID)
}

// Reads of one record by id and by external id. Their values are bound,
// not formatted into the text as bun does, so each is prepared once per
// connection: on Postgres pgx keeps statements by their text (a text it
// has not seen costs a round trip to prepare it, and takes a place in the
// connection's statement cache); on SQLite, which has no such cache,
// preparing (parsing and planning) took about a third of a read, so the
// statements are prepared once through database/sql and kept (see
// boundRows).
const (
	getRecordSQL = `SELECT id, workspace_id, object, external_id, version, fields, created_at, updated_at
	FROM records WHERE workspace_id = $1 AND object = $2 AND id = $3`
	getRecordByExternalIDSQL = `SELECT id, workspace_id, object, external_id, version, fields, created_at, updated_at
	FROM records WHERE workspace_id = $1 AND object = $2 AND external_id = $3`
)

// getRecord reads the record of the workspace and object whose column
// (id or external_id) is value; what names it in errors.
func (s *Store) getRecord(ctx context.Context, workspace, object, column, value, what string) (*records.Record, error) {
	q := getRecordSQL
	if column == "external_id" {
		q = getRecordByExternalIDSQL
	}
	var row recordRow
	return scanRecord(&row, s.queryOne(ctx, &row, q, workspace, object, value), object, what)
}

func scanRecord(row *recordRow, err error, object, what string) (*records.Record, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s %s: %w", object, what, records.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get record: %w", err)
	}
	return row.record()
}

// filterFieldRE is what a field name in a filter may look like. Names are
// passed as bound values, never spliced into SQL; the check also keeps them
// valid inside an SQLite JSON path.
var filterFieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// pageAfter narrows sel, over a table of workspace rows keyed by id, to one
// page of the workspace's rows: those after the id after ("" for the
// start), in id order, at most limit (DefaultListLimit when 0).
func pageAfter(sel *bun.SelectQuery, workspace, after string, limit int) *bun.SelectQuery {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	sel = sel.Where("workspace_id = ?", workspace)
	if after != "" {
		sel = sel.Where("id > ?", after)
	}
	return sel.Order("id").Limit(int64(limit))
}

// pageBefore narrows sel, over a table of workspace rows keyed by id, to
// one page of the workspace's rows newest first: those before the id
// before ("" for the newest), at most limit (DefaultListLimit when 0).
func pageBefore(sel *bun.SelectQuery, workspace, before string, limit int) *bun.SelectQuery {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	sel = sel.Where("workspace_id = ?", workspace)
	if before != "" {
		sel = sel.Where("id < ?", before)
	}
	return sel.OrderExpr("id DESC").Limit(int64(limit))
}

// ListEvents answers the workspace's events after the id after, in id order.
func (s *Store) ListEvents(ctx context.Context, workspace, after string, limit int) ([]*records.Event, error) {
	var rows []eventRow
	if err := pageAfter(s.IDB(ctx).NewSelect().Model(&rows), workspace, after, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	return eventsOf(rows)
}

// eventsOf decodes event rows.
func eventsOf(rows []eventRow) ([]*records.Event, error) {
	out := make([]*records.Event, len(rows))
	for i := range rows {
		e, err := rows[i].event()
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// event decodes the row's payload into the event it stores.
func (row *eventRow) event() (*records.Event, error) {
	e := new(records.Event)
	if err := json.Unmarshal([]byte(row.Payload), e); err != nil {
		return nil, fmt.Errorf("store: event %s: %w", row.ID, err)
	}
	e.Object, e.RecordID = row.Object, row.RecordID
	return e, nil
}

// GetEvent answers one event of the workspace, or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, workspace, id string) (*records.Event, error) {
	var row eventRow
	err := s.IDB(ctx).NewSelect().Model(&row).Where("workspace_id = ? AND id = ?", workspace, id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: event %s: %w", id, records.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get event: %w", err)
	}
	return row.event()
}

// ListAudit answers the workspace's audit entries in id order, those of one
// record when recordID is not "", after the id after, at most limit
// (DefaultListLimit when 0).
func (s *Store) ListAudit(ctx context.Context, workspace, recordID, after string, limit int) ([]*records.AuditEntry, error) {
	var rows []auditRow
	sel := s.IDB(ctx).NewSelect().Model(&rows)
	if recordID != "" {
		sel = sel.Where("record_id = ?", recordID)
	}
	if err := pageAfter(sel, workspace, after, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	out := make([]*records.AuditEntry, len(rows))
	for i, row := range rows {
		e := &records.AuditEntry{
			ID: row.ID, Workspace: row.WorkspaceID, Object: row.Object, RecordID: row.RecordID,
			Action: row.Action, Source: records.Source(row.Source), CreatedAt: row.CreatedAt.UTC(),
		}
		if err := json.Unmarshal([]byte(row.Actor), &e.Actor); err != nil {
			return nil, fmt.Errorf("store: audit %s actor: %w", row.ID, err)
		}
		if err := json.Unmarshal([]byte(row.Changes), &e.Changes); err != nil {
			return nil, fmt.Errorf("store: audit %s changes: %w", row.ID, err)
		}
		out[i] = e
	}
	return out, nil
}

// mapWriteErr wraps a unique violation the ON CONFLICT guards could not
// catch (a concurrent writer won the race) in records.ErrDuplicate.
func mapWriteErr(op string, err error) error {
	if IsUniqueViolation(err) {
		return fmt.Errorf("store: %s: %w: %w", op, records.ErrDuplicate, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// IsUniqueViolation tells whether err is a unique or primary key violation
// of Postgres (SQLSTATE 23505) or SQLite (SQLITE_CONSTRAINT_UNIQUE or
// SQLITE_CONSTRAINT_PRIMARYKEY).
func IsUniqueViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) && pg.SQLState() == "23505" {
		return true
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		const constraintUnique, constraintPrimaryKey = 2067, 1555
		c := lite.Code()
		return c == constraintUnique || c == constraintPrimaryKey
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}
