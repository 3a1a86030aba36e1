package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

var _ ingest.InboundStore = (*Store)(nil)

type inboundSourceRow struct {
	bun.BaseModel `bun:"table:inbound_sources"`

	ID                      string     `bun:"id,pk"`
	WorkspaceID             string     `bun:"workspace_id"`
	Name                    string     `bun:"name"`
	Kind                    string     `bun:"kind"`
	Secret                  string     `bun:"secret"`
	PreviousSecret          string     `bun:"previous_secret"`
	PreviousSecretExpiresAt *time.Time `bun:"previous_secret_expires_at"`
	Mapping                 string     `bun:"mapping"`
	Enabled                 bool       `bun:"enabled"`
	MaxBodyBytes            int64      `bun:"max_body_bytes"`
	CreatedAt               time.Time  `bun:"created_at"`
	UpdatedAt               time.Time  `bun:"updated_at"`
}

type inboundEventRow struct {
	bun.BaseModel `bun:"table:inbound_events"`

	ID          string     `bun:"id,pk"`
	WorkspaceID string     `bun:"workspace_id"`
	SourceID    string     `bun:"source_id"`
	DedupKey    *string    `bun:"dedup_key"`
	Status      string     `bun:"status"`
	Headers     string     `bun:"headers"`
	Body        []byte     `bun:"body"`
	ReceivedAt  time.Time  `bun:"received_at"`
	ProcessedAt *time.Time `bun:"processed_at"`
	Attempts    int        `bun:"attempts"`
	Duplicates  int        `bun:"duplicates"`
	Written     *string    `bun:"written"`
	Error       *string    `bun:"error"`
}

func newInboundSourceRow(s *ingest.InboundSource) (*inboundSourceRow, error) {
	s.CreatedAt, s.UpdatedAt = storedTime(s.CreatedAt), storedTime(s.UpdatedAt)
	s.PreviousSecretExpiresAt = webhookTime(s.PreviousSecretExpiresAt)
	m, err := json.Marshal(s.Mapping)
	if err != nil {
		return nil, fmt.Errorf("store: inbound source mapping: %w", err)
	}
	return &inboundSourceRow{ID: s.ID, WorkspaceID: s.Workspace, Name: s.Name, Kind: s.Kind, Secret: s.Secret,
		PreviousSecret: s.PreviousSecret, PreviousSecretExpiresAt: s.PreviousSecretExpiresAt, Mapping: string(m),
		Enabled: s.Enabled, MaxBodyBytes: s.MaxBodyBytes, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}, nil
}

func (r *inboundSourceRow) source() (*ingest.InboundSource, error) {
	s := &ingest.InboundSource{ID: r.ID, Workspace: r.WorkspaceID, Name: r.Name, Kind: r.Kind, Secret: r.Secret,
		PreviousSecret: r.PreviousSecret, PreviousSecretExpiresAt: utcTime(r.PreviousSecretExpiresAt),
		Enabled: r.Enabled, MaxBodyBytes: r.MaxBodyBytes, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	spec, err := mapping.ParseSpec([]byte(r.Mapping))
	if err != nil {
		return nil, fmt.Errorf("store: inbound source %s mapping: %w", r.ID, err)
	}
	s.Mapping = spec
	return s, nil
}

// newInboundSourceRow is the row of src with its secrets sealed (see
// SealSecret).
func (s *Store) newInboundSourceRow(src *ingest.InboundSource) (*inboundSourceRow, error) {
	row, err := newInboundSourceRow(src)
	if err != nil {
		return nil, err
	}
	if err := s.sealSecrets(&row.Secret, &row.PreviousSecret); err != nil {
		return nil, err
	}
	return row, nil
}

// sourceOf is the source of r with its secrets opened (see OpenSecret).
func (s *Store) sourceOf(r *inboundSourceRow) (*ingest.InboundSource, error) {
	src, err := r.source()
	if err != nil {
		return nil, err
	}
	if err := s.openSecrets("store: inbound source "+r.ID+" secret", &src.Secret, &src.PreviousSecret); err != nil {
		return nil, err
	}
	return src, nil
}

func inboundSourceNotFound(id string) error {
	return fmt.Errorf("store: inbound source %s: %w", id, records.ErrNotFound)
}

// CreateInboundSource stores a new inbound source.
func (s *Store) CreateInboundSource(ctx context.Context, src *ingest.InboundSource) error {
	row, err := s.newInboundSourceRow(src)
	if err != nil {
		return err
	}
	if _, err := s.IDB(ctx).NewInsert().Model(row).Exec(ctx); err != nil {
		return mapWriteErr("insert inbound source", err)
	}
	return nil
}

// Reads of a source by id, bound (see boundRows): the delivery route reads
// one per request.
const (
	inboundSourceSQL = `SELECT id, workspace_id, name, kind, secret, previous_secret, previous_secret_expires_at,
	mapping, enabled, max_body_bytes, created_at, updated_at FROM inbound_sources WHERE id = $1`
	inboundSourceOfSQL = inboundSourceSQL + ` AND workspace_id = $2`
)

// GetInboundSource answers a source of the workspace, or of any workspace
// when workspace is "".
func (s *Store) GetInboundSource(ctx context.Context, workspace, id string) (*ingest.InboundSource, error) {
	var row inboundSourceRow
	var err error
	if workspace == "" {
		err = s.queryOne(ctx, &row, inboundSourceSQL, id)
	} else {
		err = s.queryOne(ctx, &row, inboundSourceOfSQL, id, workspace)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, inboundSourceNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get inbound source: %w", err)
	}
	return s.sourceOf(&row)
}

// ListInboundSources answers the workspace's sources in id order after
// the id after, at most limit (DefaultListLimit when 0).
func (s *Store) ListInboundSources(ctx context.Context, workspace, after string, limit int) ([]*ingest.InboundSource, error) {
	var rows []inboundSourceRow
	if err := pageAfter(s.IDB(ctx).NewSelect().Model(&rows), workspace, after, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list inbound sources: %w", err)
	}
	out := make([]*ingest.InboundSource, len(rows))
	for i := range rows {
		src, err := s.sourceOf(&rows[i])
		if err != nil {
			return nil, err
		}
		out[i] = src
	}
	return out, nil
}

// UpdateInboundSource stores every field of src but its id, workspace and
// creation time.
func (s *Store) UpdateInboundSource(ctx context.Context, src *ingest.InboundSource) error {
	row, err := s.newInboundSourceRow(src)
	if err != nil {
		return err
	}
	res, err := s.IDB(ctx).NewUpdate().Model(row).ExcludeColumn("id", "workspace_id", "created_at").
		Where("workspace_id = ? AND id = ?", src.Workspace, src.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: update inbound source: %w", err)
	}
	return oneInboundSource(res, src.ID)
}

func oneInboundSource(res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: inbound source %s: %w", id, err)
	}
	if n == 0 {
		return inboundSourceNotFound(id)
	}
	return nil
}

// DeleteInboundSource removes a source; its events go with it.
func (s *Store) DeleteInboundSource(ctx context.Context, workspace, id string) error {
	res, err := s.IDB(ctx).NewDelete().Model((*inboundSourceRow)(nil)).
		Where("workspace_id = ? AND id = ?", workspace, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: delete inbound source: %w", err)
	}
	return oneInboundSource(res, id)
}

func newInboundEventRow(e *ingest.InboundEvent) (*inboundEventRow, error) {
	e.ReceivedAt = storedTime(e.ReceivedAt)
	e.ProcessedAt = webhookTime(e.ProcessedAt)
	h := e.Headers
	if h == nil {
		h = http.Header{}
	}
	headers, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	row := &inboundEventRow{ID: e.ID, WorkspaceID: e.Workspace, SourceID: e.SourceID, Status: e.Status,
		Headers: string(headers), Body: e.Body, ReceivedAt: e.ReceivedAt, ProcessedAt: e.ProcessedAt,
		Attempts: e.Attempts, Duplicates: e.Duplicates}
	if row.Body == nil {
		row.Body = []byte{}
	}
	if e.DeliveryID != "" {
		row.DedupKey = &e.DeliveryID
	}
	if err := setOutcome(row, e); err != nil {
		return nil, err
	}
	return row, nil
}

// setOutcome fills the row's written and error columns from e.
func setOutcome(row *inboundEventRow, e *ingest.InboundEvent) error {
	row.Written, row.Error = nil, nil
	if e.Written != nil {
		b, err := json.Marshal(e.Written)
		if err != nil {
			return err
		}
		w := string(b)
		row.Written = &w
	}
	if e.Error != nil {
		b, err := json.Marshal(e.Error)
		if err != nil {
			return err
		}
		es := string(b)
		row.Error = &es
	}
	return nil
}

func (r *inboundEventRow) event() (*ingest.InboundEvent, error) {
	e := &ingest.InboundEvent{ID: r.ID, Workspace: r.WorkspaceID, SourceID: r.SourceID, Status: r.Status,
		Body: r.Body, ReceivedAt: r.ReceivedAt.UTC(), ProcessedAt: utcTime(r.ProcessedAt), Attempts: r.Attempts,
		Duplicates: r.Duplicates}
	if r.DedupKey != nil {
		e.DeliveryID = *r.DedupKey
	}
	if r.Headers != "" {
		if err := json.Unmarshal([]byte(r.Headers), &e.Headers); err != nil {
			return nil, fmt.Errorf("store: inbound event %s headers: %w", r.ID, err)
		}
	}
	if r.Written != nil {
		if err := json.Unmarshal([]byte(*r.Written), &e.Written); err != nil {
			return nil, fmt.Errorf("store: inbound event %s written: %w", r.ID, err)
		}
	}
	if r.Error != nil {
		e.Error = new(ingest.InboundError)
		if err := json.Unmarshal([]byte(*r.Error), e.Error); err != nil {
			return nil, fmt.Errorf("store: inbound event %s error: %w", r.ID, err)
		}
	}
	return e, nil
}

func inboundEventNotFound(id string) error {
	return fmt.Errorf("store: inbound event %s: %w", id, records.ErrNotFound)
}

// ReceiveInboundEvent stores e and enqueues job in one transaction, unless
// the source already holds an event with e's delivery id: then it counts
// the duplicate on that event and answers it. The unique (source,
// delivery id) key decides, so two replicas receiving one delivery at once
// store it once.
func (s *Store) ReceiveInboundEvent(ctx context.Context, e *ingest.InboundEvent, job river.InsertManyParams) (*ingest.InboundEvent, bool, error) {
	row, err := newInboundEventRow(e)
	if err != nil {
		return nil, false, err
	}
	var first *ingest.InboundEvent
	err = s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewInsert().Model(row).On("CONFLICT DO NOTHING").Exec(ctx)
		if err != nil {
			return mapWriteErr("insert inbound event", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: insert inbound event: %w", err)
		} else if n == 1 {
			if _, err := s.JobClient().InsertManyFastTx(ctx, tx.Tx, []river.InsertManyParams{job}); err != nil {
				return fmt.Errorf("store: enqueue inbound event: %w", err)
			}
			return nil
		}
		if row.DedupKey == nil {
			return fmt.Errorf("store: inbound event id %s: %w", row.ID, records.ErrDuplicate)
		}
		var dup inboundEventRow
		err = tx.NewUpdate().Model(&dup).Set("duplicates = duplicates + 1").
			Where("source_id = ? AND dedup_key = ?", row.SourceID, *row.DedupKey).
			Returning("id, workspace_id, source_id, dedup_key, status, received_at, processed_at, attempts, duplicates").
			Scan(ctx)
		if err != nil {
			return fmt.Errorf("store: count inbound duplicate: %w", err)
		}
		first, err = dup.event()
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if first != nil {
		return first, true, nil
	}
	return e, false, nil
}

// GetInboundEvent answers an event of the workspace with its headers and
// body.
func (s *Store) GetInboundEvent(ctx context.Context, workspace, id string) (*ingest.InboundEvent, error) {
	var row inboundEventRow
	err := s.IDB(ctx).NewSelect().Model(&row).Where("workspace_id = ? AND id = ?", workspace, id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, inboundEventNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get inbound event: %w", err)
	}
	return row.event()
}

// inboundSummary are the columns of an event in a list: all but headers
// and body.
var inboundSummary = []string{"id", "workspace_id", "source_id", "dedup_key", "status", "received_at",
	"processed_at", "attempts", "duplicates", "written", "error"}

// ListInboundEvents answers events without headers and body, newest first.
func (s *Store) ListInboundEvents(ctx context.Context, q ingest.InboundEventQuery) ([]*ingest.InboundEvent, error) {
	var rows []inboundEventRow
	sel := s.IDB(ctx).NewSelect().Model(&rows).Column(inboundSummary...)
	if q.SourceID != "" {
		sel = sel.Where("source_id = ?", q.SourceID)
	}
	switch q.Status {
	case "":
	case ingest.StatusDuplicate:
		sel = sel.Where("duplicates > 0")
	default:
		sel = sel.Where("status = ?", q.Status)
	}
	if err := pageBefore(sel, q.Workspace, q.Before, q.Limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list inbound events: %w", err)
	}
	return inboundEvents(rows)
}

func inboundEvents(rows []inboundEventRow) ([]*ingest.InboundEvent, error) {
	out := make([]*ingest.InboundEvent, len(rows))
	for i := range rows {
		e, err := rows[i].event()
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// RequeueInboundEvents makes the selected events received again and
// enqueues their jobs, in one transaction.
func (s *Store) RequeueInboundEvents(ctx context.Context, q ingest.InboundRequeue, job func(*ingest.InboundEvent) river.InsertManyParams) ([]*ingest.InboundEvent, error) {
	var out []*ingest.InboundEvent
	err := s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		sub := tx.NewSelect().Model((*inboundEventRow)(nil)).Column("id").
			Where("workspace_id = ?", q.Workspace).Where("status <> ?", ingest.StatusReceived)
		if len(q.IDs) > 0 {
			sub = sub.Where("id IN (?)", bun.List(q.IDs))
		} else {
			sub = sub.Where("status = ?", q.Status).Where("received_at >= ?", storedTime(q.Since))
			if q.SourceID != "" {
				sub = sub.Where("source_id = ?", q.SourceID)
			}
			sub = sub.OrderExpr("id")
		}
		if q.Limit > 0 {
			sub = sub.Limit(int64(q.Limit))
		}
		var rows []inboundEventRow
		err := tx.NewUpdate().Model((*inboundEventRow)(nil)).Set("status = ?", ingest.StatusReceived).
			Where("id IN (?)", sub).Returning(strings.Join(inboundSummary, ", ")).Scan(ctx, &rows)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: requeue inbound events: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		if out, err = inboundEvents(rows); err != nil {
			return err
		}
		jobs := make([]river.InsertManyParams, len(out))
		for i, e := range out {
			jobs[i] = job(e)
		}
		if _, err := s.JobClient().InsertManyFastTx(ctx, tx.Tx, jobs); err != nil {
			return fmt.Errorf("store: enqueue inbound events: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PruneInboundEvents removes events received before the time that are not
// waiting to be processed; their delivery ids go with them.
func (s *Store) PruneInboundEvents(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.IDB(ctx).NewDelete().Model((*inboundEventRow)(nil)).
		Where("received_at < ? AND status <> ?", storedTime(before), ingest.StatusReceived).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: prune inbound events: %w", err)
	}
	return res.RowsAffected()
}

// lockInboundEventSQL reads an event for processing; on Postgres it locks
// the row until the transaction ends (SQLite's transaction holds the
// database's write lock already).
const lockInboundEventSQL = `SELECT id, workspace_id, source_id, dedup_key, status, headers, body, received_at,
	processed_at, attempts, duplicates, written, error FROM inbound_events WHERE id = $1`

// ProcessInboundTx runs fn in one transaction, in which the record
// pipeline reads and writes through ctx. On SQLite the statements of the
// reads made in it are prepared on the pool first: preparing one inside
// the transaction would need a second connection, and SQLite's small pool
// may have none free while other writers wait for the lock the
// transaction holds.
func (s *Store) ProcessInboundTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.dialect == DialectSQLite && s.txFrom(ctx) == nil {
		for _, q := range []string{lockInboundEventSQL, inboundSourceOfSQL, getRecordSQL, getRecordByExternalIDSQL, getWorkspaceSQL} {
			if _, err := s.prepared(ctx, q); err != nil {
				return err
			}
		}
	}
	return s.InTx(ctx, func(ctx context.Context, _ records.Tx) error { return fn(ctx) })
}

// LockInboundEvent answers an event by id, locked until the transaction in
// ctx ends.
func (s *Store) LockInboundEvent(ctx context.Context, id string) (*ingest.InboundEvent, error) {
	q := lockInboundEventSQL
	if s.dialect == DialectPostgres {
		q += " FOR UPDATE"
	}
	var row inboundEventRow
	err := s.queryOne(ctx, &row, q, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, inboundEventNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: lock inbound event: %w", err)
	}
	return row.event()
}

// FinishInboundEvent stores the outcome of processing e.
func (s *Store) FinishInboundEvent(ctx context.Context, e *ingest.InboundEvent) error {
	row := &inboundEventRow{ID: e.ID}
	if err := setOutcome(row, e); err != nil {
		return err
	}
	res, err := s.IDB(ctx).NewUpdate().Model((*inboundEventRow)(nil)).
		Set("status = ?", e.Status).Set("processed_at = ?", webhookTime(e.ProcessedAt)).
		Set("attempts = ?", e.Attempts).Set("written = ?", row.Written).Set("error = ?", row.Error).
		Where("id = ?", e.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: finish inbound event: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: finish inbound event: %w", err)
	} else if n == 0 {
		return inboundEventNotFound(e.ID)
	}
	return nil
}

// markInboundAppliedSQL keeps the newest document time per record: the
// update happens only when the stored time is not newer, so a changed row
// count of 0 means the document is stale. On Postgres a conflicting insert
// waits for the other transaction, which serialises two documents of one
// record.
const markInboundAppliedSQL = `INSERT INTO inbound_applied (workspace_id, object, external_id, doc_time)
VALUES ($1, $2, $3, $4)
ON CONFLICT (workspace_id, object, external_id) DO UPDATE SET doc_time = excluded.doc_time
WHERE inbound_applied.doc_time <= excluded.doc_time`

// MarkInboundApplied records that a document of time t is applied to a
// record, unless a newer one was; see ingest.InboundStore.
func (s *Store) MarkInboundApplied(ctx context.Context, workspace, object, externalID string, t time.Time) (bool, error) {
	var res sql.Result
	var err error
	// Bound values, passed to the driver as they are (bun would format ?).
	args := []any{workspace, object, externalID, t.UnixMicro()}
	if tx := s.txFrom(ctx); tx != nil {
		res, err = tx.tx.Tx.ExecContext(ctx, markInboundAppliedSQL, args...)
	} else {
		res, err = s.sqldb.ExecContext(ctx, markInboundAppliedSQL, args...)
	}
	if err != nil {
		return false, fmt.Errorf("store: mark inbound applied: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: mark inbound applied: %w", err)
	}
	return n > 0, nil
}
