package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
)

var _ ingest.BulkStore = (*Store)(nil)

// Bulk jobs keep their uploaded data in the database, as chunks of the raw
// bytes in bulk_chunks, rather than in files beside it: a job then survives
// a crash with the database's own durability, any replica can run it, and
// a job's data goes with the job.

type bulkJobRow struct {
	bun.BaseModel `bun:"table:bulk_jobs"`

	ID           string     `bun:"id,pk"`
	WorkspaceID  string     `bun:"workspace_id"`
	Object       string     `bun:"object"`
	Operation    string     `bun:"operation"`
	Mode         string     `bun:"mode"`
	ValidateOnly bool       `bun:"validate_only"`
	Format       string     `bun:"format"`
	State        string     `bun:"state"`
	Actor        string     `bun:"actor"`
	UndoOf       string     `bun:"undo_of"`
	Rows         int64      `bun:"row_count"`
	Bytes        int64      `bun:"bytes"`
	Chunks       int        `bun:"chunks"`
	Processed    int64      `bun:"processed"`
	Succeeded    int64      `bun:"succeeded"`
	Failed       int64      `bun:"failed"`
	Error        string     `bun:"error"`
	CreatedAt    time.Time  `bun:"created_at"`
	StartedAt    *time.Time `bun:"started_at"`
	FinishedAt   *time.Time `bun:"finished_at"`
	HeartbeatAt  *time.Time `bun:"heartbeat_at"`
	ImportSpec   *string    `bun:"import_spec"`
}

func newBulkJobRow(j *ingest.Job) (*bulkJobRow, error) {
	actor, err := json.Marshal(j.Actor)
	if err != nil {
		return nil, fmt.Errorf("store: bulk job actor: %w", err)
	}
	j.CreatedAt = storedTime(j.CreatedAt)
	var spec *string
	if j.Import != nil {
		b, err := json.Marshal(j.Import)
		if err != nil {
			return nil, fmt.Errorf("store: bulk job import spec: %w", err)
		}
		s := string(b)
		spec = &s
	}
	return &bulkJobRow{
		ID: j.ID, WorkspaceID: j.Workspace, Object: j.Object, Operation: string(j.Operation), Mode: string(j.Mode),
		ValidateOnly: j.ValidateOnly, Format: string(j.Format), State: string(j.State), Actor: string(actor),
		UndoOf: j.UndoOf, Rows: j.Rows, Bytes: j.Bytes, Chunks: j.Chunks, Processed: j.Processed,
		Succeeded: j.Succeeded, Failed: j.Failed, Error: j.Error, CreatedAt: j.CreatedAt,
		StartedAt: optTime(j.StartedAt), FinishedAt: optTime(j.FinishedAt), HeartbeatAt: optTime(j.HeartbeatAt),
		ImportSpec: spec,
	}, nil
}

func optTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := storedTime(*t)
	return &u
}

func (r *bulkJobRow) job() (*ingest.Job, error) {
	j := &ingest.Job{
		ID: r.ID, Workspace: r.WorkspaceID, Object: r.Object, Operation: records.Op(r.Operation), Mode: ingest.Mode(r.Mode),
		ValidateOnly: r.ValidateOnly, Format: ingest.Format(r.Format), State: ingest.JobState(r.State), UndoOf: r.UndoOf,
		Rows: r.Rows, Bytes: r.Bytes, Chunks: r.Chunks, Processed: r.Processed, Succeeded: r.Succeeded, Failed: r.Failed,
		Error: r.Error, CreatedAt: r.CreatedAt.UTC(), StartedAt: utcTime(r.StartedAt), FinishedAt: utcTime(r.FinishedAt),
		HeartbeatAt: utcTime(r.HeartbeatAt),
	}
	if err := json.Unmarshal([]byte(r.Actor), &j.Actor); err != nil {
		return nil, fmt.Errorf("store: bulk job %s actor: %w", r.ID, err)
	}
	if r.ImportSpec != nil {
		j.Import = new(ingest.ImportSpec)
		if err := json.Unmarshal([]byte(*r.ImportSpec), j.Import); err != nil {
			return nil, fmt.Errorf("store: bulk job %s import spec: %w", r.ID, err)
		}
	}
	return j, nil
}

// inJobTx runs fn in the transaction ctx carries or in a new one, which
// wakes job clients for the jobs fn enqueued once it commits.
func (s *Store) inJobTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	if t := s.txFrom(ctx); t != nil {
		return fn(ctx, t.tx)
	}
	return s.runInTx(ctx, fn)
}

func (s *Store) enqueueBulk(ctx context.Context, tx bun.Tx, id string) error {
	if _, err := s.JobClient().InsertTx(ctx, tx.Tx, ingest.RunArgs{JobID: id}, nil); err != nil {
		return fmt.Errorf("store: enqueue bulk job: %w", err)
	}
	return nil
}

// CreateBulkJob stores j, and when it is queued enqueues its run in the
// same transaction.
func (s *Store) CreateBulkJob(ctx context.Context, j *ingest.Job) error {
	row, err := newBulkJobRow(j)
	if err != nil {
		return err
	}
	return s.inJobTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			return mapWriteErr("create bulk job", err)
		}
		if j.State == ingest.StateQueued {
			return s.enqueueBulk(ctx, tx, j.ID)
		}
		return nil
	})
}

// GetBulkJob answers the job, of the workspace unless workspace is "".
func (s *Store) GetBulkJob(ctx context.Context, workspace, id string) (*ingest.Job, error) {
	var row bulkJobRow
	sel := s.IDB(ctx).NewSelect().Model(&row).Where("id = ?", id)
	if workspace != "" {
		sel = sel.Where("workspace_id = ?", workspace)
	}
	if err := sel.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: bulk job %s: %w", id, records.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: get bulk job: %w", err)
	}
	return row.job()
}

// ListBulkJobs answers the workspace's jobs after the id after, in id
// order.
func (s *Store) ListBulkJobs(ctx context.Context, workspace, after string, limit int) ([]*ingest.Job, error) {
	var rows []bulkJobRow
	if err := pageAfter(s.IDB(ctx).NewSelect().Model(&rows), workspace, after, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list bulk jobs: %w", err)
	}
	return jobsOf(rows)
}

// jobsOf answers the jobs of rows, in their order.
func jobsOf(rows []bulkJobRow) ([]*ingest.Job, error) {
	out := make([]*ingest.Job, len(rows))
	for i := range rows {
		j, err := rows[i].job()
		if err != nil {
			return nil, err
		}
		out[i] = j
	}
	return out, nil
}

// ListImportJobs answers the workspace's import jobs before the id before
// ("" for the newest), newest first.
func (s *Store) ListImportJobs(ctx context.Context, workspace, before string, limit int) ([]*ingest.Job, error) {
	var rows []bulkJobRow
	sel := s.IDB(ctx).NewSelect().Model(&rows).Where("import_spec IS NOT NULL")
	if err := pageBefore(sel, workspace, before, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list import jobs: %w", err)
	}
	return jobsOf(rows)
}

// UpdateBulkJob reads the job locked (FOR UPDATE on Postgres; SQLite's
// write transaction locks the database), lets fn change it, and stores
// it.
func (s *Store) UpdateBulkJob(ctx context.Context, workspace, id string, fn func(j *ingest.Job) (bool, error)) (*ingest.Job, error) {
	var out *ingest.Job
	err := s.inJobTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var row bulkJobRow
		sel := tx.NewSelect().Model(&row).Where("id = ?", id)
		if workspace != "" {
			sel = sel.Where("workspace_id = ?", workspace)
		}
		if s.dialect == DialectPostgres {
			sel = sel.For("UPDATE")
		}
		if err := sel.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: bulk job %s: %w", id, records.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: get bulk job: %w", err)
		}
		j, err := row.job()
		if err != nil {
			return err
		}
		enqueue, err := fn(j)
		if err != nil {
			return err
		}
		nrow, err := newBulkJobRow(j)
		if err != nil {
			return err
		}
		nrow.ID, nrow.WorkspaceID = row.ID, row.WorkspaceID
		if _, err := tx.NewUpdate().Model(nrow).WherePK().ExcludeColumn("id", "workspace_id", "created_at").Exec(ctx); err != nil {
			return fmt.Errorf("store: update bulk job: %w", err)
		}
		if enqueue {
			if err := s.enqueueBulk(ctx, tx, id); err != nil {
				return err
			}
		}
		out, err = nrow.job()
		return err
	})
	return out, err
}

// AdvanceBulkJob adds p to a running job's counts if it has processed
// exactly from rows.
func (s *Store) AdvanceBulkJob(ctx context.Context, id string, from int64, p ingest.Progress, now time.Time) (bool, error) {
	res, err := s.IDB(ctx).NewUpdate().Table("bulk_jobs").
		Set("processed = processed + ?", p.Processed).
		Set("succeeded = succeeded + ?", p.Succeeded).
		Set("failed = failed + ?", p.Failed).
		Set("heartbeat_at = ?", storedTime(now)).
		Where("id = ? AND processed = ? AND state = ?", id, from, string(ingest.StateRunning)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("store: advance bulk job: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: advance bulk job: %w", err)
	}
	return n == 1, nil
}

type bulkChunkRow struct {
	bun.BaseModel `bun:"table:bulk_chunks"`

	JobID string `bun:"job_id,pk"`
	Seq   int    `bun:"seq,pk"`
	Data  []byte `bun:"data"`
}

// DeleteBulkData removes the job's uploaded chunks.
func (s *Store) DeleteBulkData(ctx context.Context, jobID string) error {
	if _, err := s.IDB(ctx).NewDelete().Table("bulk_chunks").Where("job_id = ?", jobID).Exec(ctx); err != nil {
		return fmt.Errorf("store: delete bulk data: %w", err)
	}
	return nil
}

// PutBulkChunk stores one chunk of a job's data.
func (s *Store) PutBulkChunk(ctx context.Context, jobID string, seq int, data []byte) error {
	row := &bulkChunkRow{JobID: jobID, Seq: seq, Data: data}
	if _, err := s.IDB(ctx).NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("store: put bulk chunk: %w", err)
	}
	return nil
}

// BulkChunk answers one chunk of a job's data.
func (s *Store) BulkChunk(ctx context.Context, jobID string, seq int) ([]byte, error) {
	var data []byte
	err := s.IDB(ctx).NewSelect().Table("bulk_chunks").Column("data").
		Where("job_id = ? AND seq = ?", jobID, seq).Scan(ctx, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: bulk job %s chunk %d: %w", jobID, seq, records.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: bulk chunk: %w", err)
	}
	return data, nil
}

type bulkResultRow struct {
	bun.BaseModel `bun:"table:bulk_results"`

	JobID    string  `bun:"job_id,pk"`
	RowNum   int64   `bun:"row_num,pk"`
	SheetRow int64   `bun:"sheet_row"`
	Status   string  `bun:"status"`
	RecordID string  `bun:"record_id"`
	Action   string  `bun:"action"`
	Version  int64   `bun:"version"`
	Error    *string `bun:"error"`
	Before   *string `bun:"before_fields"`
}

// PutBulkResults stores results in one statement, replacing rows already
// stored.
func (s *Store) PutBulkResults(ctx context.Context, jobID string, rs []ingest.RowResult) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([]bulkResultRow, len(rs))
	for i, r := range rs {
		rows[i] = bulkResultRow{JobID: jobID, RowNum: r.Row, SheetRow: r.SheetRow, Status: r.Status, RecordID: r.RecordID, Action: r.Action, Version: r.Version}
		if r.Error != nil {
			b, err := json.Marshal(r.Error)
			if err != nil {
				return fmt.Errorf("store: bulk result error: %w", err)
			}
			e := string(b)
			rows[i].Error = &e
		}
		if r.Before != nil {
			b, err := json.Marshal(r.Before)
			if err != nil {
				return fmt.Errorf("store: bulk result before: %w", err)
			}
			e := string(b)
			rows[i].Before = &e
		}
	}
	_, err := s.IDB(ctx).NewInsert().Model(&rows).
		On("CONFLICT (job_id, row_num) DO UPDATE").
		Set("status = EXCLUDED.status, sheet_row = EXCLUDED.sheet_row, record_id = EXCLUDED.record_id, action = EXCLUDED.action, version = EXCLUDED.version, error = EXCLUDED.error, before_fields = EXCLUDED.before_fields").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: put bulk results: %w", err)
	}
	return nil
}

// CountBulkActions answers the job's succeeded rows by action.
func (s *Store) CountBulkActions(ctx context.Context, jobID string) (map[string]int64, error) {
	var rows []struct {
		Action string `bun:"action"`
		N      int64  `bun:"n"`
	}
	err := s.IDB(ctx).NewSelect().TableExpr("bulk_results").ColumnExpr("action, count(*) AS n").
		Where("job_id = ? AND status = ?", jobID, ingest.RowSucceeded).GroupExpr("action").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("store: count bulk actions: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Action] = r.N
	}
	return out, nil
}

// ListBulkResults answers results after afterRow in row order.
func (s *Store) ListBulkResults(ctx context.Context, jobID, status string, afterRow int64, limit int) ([]ingest.RowResult, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var rows []bulkResultRow
	sel := s.IDB(ctx).NewSelect().Model(&rows).Where("job_id = ? AND row_num > ?", jobID, afterRow)
	if status != "" {
		sel = sel.Where("status = ?", status)
	}
	if err := sel.Order("row_num").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list bulk results: %w", err)
	}
	out := make([]ingest.RowResult, len(rows))
	for i, r := range rows {
		out[i] = ingest.RowResult{Row: r.RowNum, SheetRow: r.SheetRow, Status: r.Status, RecordID: r.RecordID, Action: r.Action, Version: r.Version}
		if r.Error != nil {
			out[i].Error = new(ingest.ResultError)
			if err := json.Unmarshal([]byte(*r.Error), out[i].Error); err != nil {
				return nil, fmt.Errorf("store: bulk result error: %w", err)
			}
		}
		if r.Before != nil {
			if err := json.Unmarshal([]byte(*r.Before), &out[i].Before); err != nil {
				return nil, fmt.Errorf("store: bulk result before: %w", err)
			}
		}
	}
	return out, nil
}

// StaleBulkJobs answers queued or running jobs whose heartbeat is older
// than before.
func (s *Store) StaleBulkJobs(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.IDB(ctx).NewSelect().Table("bulk_jobs").Column("id").
		Where("state IN (?, ?) AND (heartbeat_at IS NULL OR heartbeat_at < ?)",
			string(ingest.StateQueued), string(ingest.StateRunning), storedTime(before)).
		Order("id").Limit(int64(limit)).Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("store: stale bulk jobs: %w", err)
	}
	return ids, nil
}
