package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/smartlite/crmkit/records"
)

// JobState is where a bulk job is in its life:
// open → queued → running → completed | failed | aborted.
type JobState string

// The states of a bulk job.
const (
	StateOpen      JobState = "open"
	StateQueued    JobState = "queued"
	StateRunning   JobState = "running"
	StateCompleted JobState = "completed"
	StateFailed    JobState = "failed"
	StateAborted   JobState = "aborted"
)

// Terminal reports whether no more work happens in state s.
func (s JobState) Terminal() bool {
	return s == StateCompleted || s == StateFailed || s == StateAborted
}

// Mode says how a bulk job fails.
type Mode string

// The modes of a bulk job.
const (
	// ModePartial writes every row that succeeds; a failing row fails alone.
	ModePartial Mode = "partial"
	// ModeAllOrNone writes every row or, if any row fails, none.
	ModeAllOrNone Mode = "all_or_none"
)

// OpUndo is the operation of a job that reverses another (Bulk.Undo).
const OpUndo records.Op = "undo"

// Job is one bulk job. Its JSON form is the API's.
type Job struct {
	ID           string     `json:"id"`
	Workspace    string     `json:"-"`
	Object       string     `json:"object"`
	Operation    records.Op `json:"operation"`
	Mode         Mode       `json:"mode"`
	ValidateOnly bool       `json:"validate_only"`
	Format       Format     `json:"format"`
	State        JobState   `json:"state"`
	// Rows is how many data rows were uploaded; Processed, Succeeded and
	// Failed count results as they commit.
	Rows       int64      `json:"rows"`
	Processed  int64      `json:"processed"`
	Succeeded  int64      `json:"succeeded"`
	Failed     int64      `json:"failed"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Error says why a job failed as a whole; "" otherwise.
	Error string `json:"error"`
	// UndoOf names the job an undo job reverses.
	UndoOf string `json:"undo_of,omitempty"`
	// Import says how to read the file of a spreadsheet import; nil for
	// other jobs.
	Import *ImportSpec   `json:"import,omitempty"`
	Actor  records.Actor `json:"-"`
	// Bytes and Chunks describe the stored upload.
	Bytes  int64 `json:"-"`
	Chunks int   `json:"-"`
	// HeartbeatAt is when the worker running the job last said it runs.
	HeartbeatAt *time.Time `json:"-"`
}

// Row result statuses.
const (
	RowSucceeded = "succeeded"
	RowFailed    = "failed"
)

// Row result actions.
const (
	RowCreated   = "created"
	RowUpdated   = "updated"
	RowUnchanged = "unchanged"
	RowDeleted   = "deleted"
)

// Row error codes beside the API's own (validation_failed,
// plan_limit_exceeded, duplicate, version_conflict, not_found).
const (
	// CodeMalformed: the row could not be read (see Row.Err).
	CodeMalformed = "malformed_row"
	// CodeNotWritten: an all-or-none job wrote nothing because other rows
	// failed.
	CodeNotWritten = "not_written"
	// CodeChangedSince: an undo left a record alone because it changed
	// after the job wrote it.
	CodeChangedSince = "changed_since"
	// CodeNotUndoable: an undo cannot reverse a delete.
	CodeNotUndoable = "not_undoable"
)

// RowResult is the outcome of one data row of a job.
type RowResult struct {
	Row int64 `json:"row"`
	// SheetRow is the row number a spreadsheet shows, for imports.
	SheetRow int64        `json:"sheet_row,omitempty"`
	Status   string       `json:"status"`
	RecordID string       `json:"record_id,omitempty"`
	Action   string       `json:"action,omitempty"`
	Error    *ResultError `json:"error,omitempty"`
	// Version is the record's version after the row's write, and Before
	// the values the fields it changed had before (updates only): what an
	// undo checks and restores.
	Version int64          `json:"-"`
	Before  records.Fields `json:"-"`
}

// ResultError is why a row failed.
type ResultError struct {
	Code    string               `json:"code"`
	Message string               `json:"message"`
	Fields  []records.FieldError `json:"fields,omitempty"`
}

// Progress is what one committed batch adds to a job's counts.
type Progress struct {
	Processed, Succeeded, Failed int64
}

// Errors of bulk jobs; test with errors.Is.
var (
	// ErrJobState: the job is not in a state that allows the call (data
	// uploaded to a closed job, a completed job aborted).
	ErrJobState = errors.New("bulk job state does not allow this")
	// ErrBadData: the uploaded data cannot be read in the job's format.
	ErrBadData = errors.New("bulk data cannot be read")
)

// BulkStore is the persistence of bulk jobs. Jobs, their uploaded data and
// their results are stored durably, so that a job survives a crash of the
// process running it.
//
// Every method reads and writes inside the transaction InTx put in ctx,
// when there is one. Lookups of a job that does not exist (in the given
// workspace; "" means any) fail with an error wrapping records.ErrNotFound.
type BulkStore interface {
	// InTx runs fn in one transaction; a records.Pipeline over the same
	// store called with fn's ctx writes in that transaction.
	InTx(ctx context.Context, fn func(ctx context.Context, tx records.Tx) error) error
	// CreateBulkJob stores j. When j.State is StateQueued it also enqueues
	// RunArgs for it in the same transaction.
	CreateBulkJob(ctx context.Context, j *Job) error
	GetBulkJob(ctx context.Context, workspace, id string) (*Job, error)
	// ListBulkJobs answers the workspace's jobs with an id greater than
	// after, in id order, at most limit.
	ListBulkJobs(ctx context.Context, workspace, after string, limit int) ([]*Job, error)
	// ListImportJobs answers the workspace's import jobs (those with an
	// Import spec) with an id less than before ("" for the newest),
	// newest first, at most limit.
	ListImportJobs(ctx context.Context, workspace, before string, limit int) ([]*Job, error)
	// UpdateBulkJob reads the job, locked against concurrent updates, lets
	// fn change it, and stores what fn left, all in one transaction; when
	// fn answers enqueue, RunArgs for the job is enqueued in that
	// transaction too. An error of fn is returned as is, and nothing is
	// stored.
	UpdateBulkJob(ctx context.Context, workspace, id string, fn func(j *Job) (enqueue bool, err error)) (*Job, error)
	// AdvanceBulkJob adds p to the job's counts and sets its heartbeat,
	// only if the job runs and has processed exactly from rows; ok is false
	// otherwise (the job was aborted, or another worker moved it on).
	AdvanceBulkJob(ctx context.Context, id string, from int64, p Progress, now time.Time) (ok bool, err error)
	// DeleteBulkData removes the job's uploaded chunks; PutBulkChunk stores
	// chunk seq (from 0); BulkChunk answers it, or records.ErrNotFound.
	DeleteBulkData(ctx context.Context, jobID string) error
	PutBulkChunk(ctx context.Context, jobID string, seq int, data []byte) error
	BulkChunk(ctx context.Context, jobID string, seq int) ([]byte, error)
	// PutBulkResults stores results, replacing any of the same rows.
	PutBulkResults(ctx context.Context, jobID string, rs []RowResult) error
	// ListBulkResults answers the job's results with a row greater than
	// afterRow, in row order, of status when it is not "", at most limit.
	ListBulkResults(ctx context.Context, jobID, status string, afterRow int64, limit int) ([]RowResult, error)
	// CountBulkActions answers how many of the job's succeeded rows had
	// each action (created, updated, unchanged, deleted).
	CountBulkActions(ctx context.Context, jobID string) (map[string]int64, error)
	// StaleBulkJobs answers the ids of queued or running jobs whose
	// heartbeat is older than before, at most limit.
	StaleBulkJobs(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// RunArgs is the River job that runs a bulk job. It satisfies
// river.JobArgs.
type RunArgs struct {
	JobID string `json:"job_id"`
}

// Kind is the job kind of RunArgs.
func (RunArgs) Kind() string { return "crmkit_bulk_run" }

// QueueBulk is the River queue bulk jobs run on.
const QueueBulk = "crmkit_bulk"

// Defaults of BulkConfig.
const (
	DefaultMaxUploadBytes = 100 << 20
	DefaultBatchSize      = 500
	DefaultLease          = 15 * time.Second
	chunkSize             = 1 << 20
)

// BulkConfig configures a Bulk. Store and Pipeline are required.
type BulkConfig struct {
	Store    BulkStore
	Pipeline BatchWriter
	// MaxUploadBytes caps one upload; default DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// BatchSize is how many rows go through the pipeline in one
	// transaction; default DefaultBatchSize.
	BatchSize int
	// Lease is how long a running job may go without a heartbeat before
	// another worker takes it over (after a crash); default DefaultLease.
	Lease time.Duration
	// RowOptions tune the row readers.
	RowOptions RowOptions
	// OnRows, when set, is told how many rows finished with a status.
	OnRows func(status string, n int64)
	Logger *slog.Logger
	Clock  func() time.Time
}

// BatchWriter is what bulk jobs need of the record pipeline:
// integration.RecordPipeline's Batch, with each item's semantics exactly
// those of a single write. A pipeline that also answers Object(name) (as
// records.Pipeline does) lets jobs find the external id field for upserts,
// the read-only fields an undo leaves to rules, and the columns of a
// results CSV of a JSON job.
type BatchWriter interface {
	Batch(ctx context.Context, items []records.BatchItem, opts records.BatchOptions) ([]records.BatchResult, error)
}

type objectNamer interface {
	Object(name string) (*records.Object, bool)
}

// Bulk runs bulk jobs: their lifecycle, uploads, the River worker that
// writes their rows through the pipeline, undo, and their results.
type Bulk struct {
	st     BulkStore
	p      BatchWriter
	cfg    BulkConfig
	log    *slog.Logger
	clock  func() time.Time
	onRows func(string, int64)
}

// NewBulk checks cfg and answers a Bulk.
func NewBulk(cfg BulkConfig) (*Bulk, error) {
	if cfg.Store == nil {
		return nil, errors.New("ingest: BulkConfig.Store is nil")
	}
	if cfg.Pipeline == nil {
		return nil, errors.New("ingest: BulkConfig.Pipeline is nil")
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	b := &Bulk{st: cfg.Store, p: cfg.Pipeline, cfg: cfg, log: cfg.Logger, clock: cfg.Clock, onRows: cfg.OnRows}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.clock == nil {
		b.clock = time.Now
	}
	if b.onRows == nil {
		b.onRows = func(string, int64) {}
	}
	return b, nil
}

// MaxUploadBytes answers the upload limit.
func (b *Bulk) MaxUploadBytes() int64 { return b.cfg.MaxUploadBytes }

func (b *Bulk) now() time.Time { return b.clock().UTC().Truncate(time.Microsecond) }

// JobInput is what creates a job.
type JobInput struct {
	Object       string     `json:"object"`
	Operation    records.Op `json:"operation"`
	Mode         Mode       `json:"mode"`
	ValidateOnly bool       `json:"validate_only"`
	Format       Format     `json:"format"`
}

// Create checks in and stores a new open job of the workspace.
func (b *Bulk) Create(ctx context.Context, workspace string, actor records.Actor, in JobInput) (*Job, error) {
	if in.Mode == "" {
		in.Mode = ModePartial
	}
	if in.Format == "" {
		in.Format = FormatJSON
	}
	errs := b.checkJob(in)
	switch in.Format {
	case FormatJSON, FormatNDJSON, FormatCSV:
	default:
		errs = append(errs, records.FieldError{Field: "format", Code: "one_of", Message: "must be one of: json, ndjson, csv"})
	}
	if len(errs) > 0 {
		return nil, &records.ValidationError{Object: in.Object, Fields: errs}
	}
	j := &Job{
		ID: records.NewID("job"), Workspace: workspace, Object: in.Object, Operation: in.Operation,
		Mode: in.Mode, ValidateOnly: in.ValidateOnly, Format: in.Format, State: StateOpen,
		Actor: actor, CreatedAt: b.now(),
	}
	if err := b.st.CreateBulkJob(ctx, j); err != nil {
		return nil, err
	}
	return j, nil
}

// checkJob answers what is wrong with the object, operation and mode of
// in (a mode "" is wrong: Create fills in its default first).
func (b *Bulk) checkJob(in JobInput) []records.FieldError {
	var errs []records.FieldError
	if in.Object == "" {
		errs = append(errs, records.FieldError{Field: "object", Code: "required", Message: "is required"})
	} else if on, ok := b.p.(objectNamer); ok {
		if _, known := on.Object(in.Object); !known {
			errs = append(errs, records.FieldError{Field: "object", Code: "unknown_object", Message: "is not an object of this workspace"})
		}
	}
	switch in.Operation {
	case records.OpInsert, records.OpUpdate, records.OpUpsert, records.OpDelete:
	default:
		errs = append(errs, records.FieldError{Field: "operation", Code: "one_of", Message: "must be one of: insert, update, upsert, delete"})
	}
	switch in.Mode {
	case ModePartial, ModeAllOrNone:
	default:
		errs = append(errs, records.FieldError{Field: "mode", Code: "one_of", Message: "must be one of: partial, all_or_none"})
	}
	return errs
}

// Get answers one job of the workspace.
func (b *Bulk) Get(ctx context.Context, workspace, id string) (*Job, error) {
	return b.st.GetBulkJob(ctx, workspace, id)
}

// List answers the workspace's jobs after the id after, in id order.
func (b *Bulk) List(ctx context.Context, workspace, after string, limit int) ([]*Job, error) {
	return b.st.ListBulkJobs(ctx, workspace, after, limit)
}

// Upload stores r as the data of an open job, replacing what an earlier
// upload stored, and answers the job with its row count. r is read once,
// in chunks, and stored as it is read, never held whole; its rows are
// counted with the job format's reader, so data that cannot be read fails
// with ErrBadData (wrapping the reader's *RowError) and is not kept. An
// error of r itself (an *http.MaxBytesError, say) is returned wrapped, and
// nothing is kept either.
func (b *Bulk) Upload(ctx context.Context, workspace, id string, r io.Reader) (*Job, error) {
	j, err := b.st.GetBulkJob(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	if j.State != StateOpen {
		return nil, fmt.Errorf("ingest: job %s is %s, not open: %w", id, j.State, ErrJobState)
	}
	if err := b.st.DeleteBulkData(ctx, id); err != nil {
		return nil, err
	}
	cw := &chunkWriter{ctx: ctx, st: b.st, job: id, buf: make([]byte, 0, chunkSize)}
	src := &srcErrReader{r: r}
	rows, err := NewRowReader(j.Format, io.TeeReader(src, cw), b.cfg.RowOptions)
	if err != nil {
		return nil, err
	}
	var n int64
	for {
		_, err = rows.Next()
		if err != nil {
			break
		}
		n++
	}
	if err == io.EOF {
		// The reader may stop before the end (after a JSON array, say);
		// what follows is stored too, as the reader would see it again.
		_, err = io.Copy(io.Discard, io.TeeReader(src, cw))
		if err == nil {
			err = cw.flush()
		}
	}
	if err != nil {
		_ = b.st.DeleteBulkData(context.WithoutCancel(ctx), id)
		switch {
		case src.err != nil:
			return nil, fmt.Errorf("ingest: upload: %w", src.err)
		case cw.err != nil:
			return nil, cw.err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadData, err)
	}
	return b.st.UpdateBulkJob(ctx, workspace, id, func(j *Job) (bool, error) {
		if j.State != StateOpen {
			return false, fmt.Errorf("ingest: job %s is %s, not open: %w", id, j.State, ErrJobState)
		}
		j.Rows, j.Bytes, j.Chunks = n, cw.total, cw.seq
		return false, nil
	})
}

// Close ends the job's upload and queues it to run.
func (b *Bulk) Close(ctx context.Context, workspace, id string) (*Job, error) {
	return b.st.UpdateBulkJob(ctx, workspace, id, func(j *Job) (bool, error) {
		if j.State != StateOpen {
			return false, fmt.Errorf("ingest: job %s is %s, not open: %w", id, j.State, ErrJobState)
		}
		now := b.now()
		j.State, j.HeartbeatAt = StateQueued, &now
		return true, nil
	})
}

// Abort stops an open, queued or running job. A running job stops at its
// next batch: what committed before stays, with its results.
func (b *Bulk) Abort(ctx context.Context, workspace, id string) (*Job, error) {
	return b.st.UpdateBulkJob(ctx, workspace, id, func(j *Job) (bool, error) {
		if j.State.Terminal() {
			return false, fmt.Errorf("ingest: job %s is already %s: %w", id, j.State, ErrJobState)
		}
		now := b.now()
		j.State, j.FinishedAt = StateAborted, &now
		return false, nil
	})
}

// srcErrReader remembers the error of the upload's own reader, to tell it
// from the row reader's.
type srcErrReader struct {
	r   io.Reader
	err error
}

func (s *srcErrReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// chunkWriter stores what is written to it as chunks of chunkSize bytes.
type chunkWriter struct {
	ctx   context.Context
	st    BulkStore
	job   string
	buf   []byte
	seq   int
	total int64
	err   error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), chunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == chunkSize {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if c.err != nil || len(c.buf) == 0 {
		return c.err
	}
	if err := c.st.PutBulkChunk(c.ctx, c.job, c.seq, c.buf); err != nil {
		c.err = fmt.Errorf("ingest: store upload: %w", err)
		return c.err
	}
	c.seq++
	c.total += int64(len(c.buf))
	c.buf = c.buf[:0]
	return nil
}

// chunkReader reads a job's stored data back, one chunk at a time.
type chunkReader struct {
	ctx  context.Context
	st   BulkStore
	job  string
	n    int
	seq  int
	data []byte
}

func (b *Bulk) data(ctx context.Context, j *Job) io.Reader {
	return &chunkReader{ctx: ctx, st: b.st, job: j.ID, n: j.Chunks}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.data) == 0 {
		if c.seq >= c.n {
			return 0, io.EOF
		}
		d, err := c.st.BulkChunk(c.ctx, c.job, c.seq)
		if err != nil {
			return 0, err
		}
		c.data, c.seq = d, c.seq+1
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}
