package connector

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"
)

// Errors of the run lock.
var (
	// ErrRunActive: the connector already has a run queued or running.
	ErrRunActive = errors.New("connector: a run of this connector is already active")
	// ErrLeaseLost: the run no longer holds its connector (its lease ran out
	// and another process took the run over, or the connector was deleted).
	ErrLeaseLost = errors.New("connector: the run lost its lease on the connector")
)

// Store is the persistence connectors need. *store.Store implements it on
// Postgres and SQLite.
//
// Reads and writes called with a context that carries a transaction (the
// Commit of a records.BatchOptions) run in it. Lookups of an unknown or
// another workspace's connector or run fail with records.ErrNotFound.
type Store interface {
	// CreateConnector stores a new connector.
	CreateConnector(ctx context.Context, c *Connector) error
	// GetConnector answers a connector of the workspace, of any workspace
	// when workspace is "".
	GetConnector(ctx context.Context, workspace, id string) (*Connector, error)
	// ListConnectors answers the workspace's connectors in id order after
	// the id after, at most limit.
	ListConnectors(ctx context.Context, workspace, after string, limit int) ([]*Connector, error)
	// ScheduledConnectors answers every workspace's enabled connectors that
	// have a schedule.
	ScheduledConnectors(ctx context.Context) ([]*Connector, error)
	// UpdateConnector stores c's definition (not its state or run lock).
	UpdateConnector(ctx context.Context, c *Connector) error
	// DeleteConnector removes a connector with its runs and the record of
	// what it wrote (the records stay).
	DeleteConnector(ctx context.Context, workspace, id string) error
	// ResetConnector sets the connector's state and forgets what it knew of
	// the records it wrote, so the next run passes every record through the
	// pipeline again; ErrRunActive while a run holds the connector.
	ResetConnector(ctx context.Context, workspace, id, state string) error

	// BeginConnectorRun takes the connector for run (queued, its lease
	// until leaseUntil), stores run, and enqueues job, in one transaction;
	// ErrRunActive when another run holds the connector.
	BeginConnectorRun(ctx context.Context, run *Run, leaseUntil time.Time, job river.InsertManyParams) error
	// ClaimConnectorRun makes the caller the worker of the run: it holds
	// the connector for run, and either no worker has claimed it yet or
	// the last one's lease ended before now. It answers the connector (with
	// its state) and the run, and ok=false when the claim is refused.
	ClaimConnectorRun(ctx context.Context, connectorID, runID, token string, now, leaseUntil time.Time) (c *Connector, run *Run, ok bool, err error)
	// ExtendConnectorLease moves the lease of the worker holding token on;
	// ErrLeaseLost when it holds it no more.
	ExtendConnectorLease(ctx context.Context, connectorID, token string, leaseUntil time.Time) error
	// CommitConnectorPage stores, in the transaction ctx carries, the state
	// after a page and one more page on the run, and marks the page's
	// records seen by the run when seenRun is set; ErrLeaseLost unless the
	// worker still holds token.
	CommitConnectorPage(ctx context.Context, c PageCommit) error
	// RecordConnectorPage stores the run's counts and failures so far, after
	// a committed page, and the hash of what the page wrote for each record.
	RecordConnectorPage(ctx context.Context, run *Run, owned []Owned) error
	// FinishConnectorRun stores the run's outcome and the connector's state
	// and releases the connector; ErrLeaseLost unless the worker holds
	// token.
	FinishConnectorRun(ctx context.Context, run *Run, token, state string) error
	// GetConnectorRun answers a run of the workspace.
	GetConnectorRun(ctx context.Context, workspace, id string) (*Run, error)
	// ListConnectorRuns answers runs newest first, of one connector when
	// connectorID is not "", before the id before, at most limit.
	ListConnectorRuns(ctx context.Context, workspace, connectorID, before string, limit int) ([]*Run, error)
	// StaleConnectorRuns answers the runs holding a connector whose lease
	// ended before now: their worker died.
	StaleConnectorRuns(ctx context.Context, now time.Time) ([]*Run, error)

	// ConnectorRecords answers what the connector knows of the records
	// with these keys: those it wrote, with the stored records' ids and
	// versions. Keys it never wrote are absent.
	ConnectorRecords(ctx context.Context, workspace, connectorID string, keys []RecordKey) (map[RecordKey]Owned, error)
	// UnseenConnectorRecords answers the records the connector wrote that
	// still exist and that run did not see, and how many of its records
	// exist in all.
	UnseenConnectorRecords(ctx context.Context, workspace, connectorID, runID string) (unseen []Owned, total int, err error)
	// ForgetConnectorRecords drops the connector's knowledge of records
	// (deleted ones).
	ForgetConnectorRecords(ctx context.Context, connectorID string, keys []RecordKey) error
}

// PageCommit is what commits with a page's writes.
type PageCommit struct {
	ConnectorID string
	RunID       string
	Token       string
	State       string
	LeaseUntil  time.Time
	// SeenRun, when set (full mode), marks Seen as seen by that run.
	SeenRun string
	Seen    []RecordKey
}

// RecordKey names a record by its object and external id.
type RecordKey struct {
	Object     string
	ExternalID string
}

// Owned is what a connector knows of a record it wrote: the hash of the
// mapped fields it last wrote and the record's version after that write;
// and, from the record as stored, its id and version (RecordID "" when the
// record no longer exists).
type Owned struct {
	RecordKey
	Hash          string
	Version       int64
	RecordID      string
	RecordVersion int64
}

// Counts are a run's record counts: CRM records created, updated, left
// unchanged and deleted (or flagged); upstream records that failed
// (mapping or validation) or that the checkpoint already covered.
type Counts struct {
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Deleted   int64 `json:"deleted"`
	Failed    int64 `json:"failed"`
	Skipped   int64 `json:"skipped"`
}

func (c *Counts) add(d Counts) {
	c.Created += d.Created
	c.Updated += d.Updated
	c.Unchanged += d.Unchanged
	c.Deleted += d.Deleted
	c.Failed += d.Failed
	c.Skipped += d.Skipped
}

// Run is one run of a connector, its log entry.
type Run struct {
	ID          string     `json:"id"`
	Workspace   string     `json:"-"`
	ConnectorID string     `json:"connector_id"`
	Trigger     string     `json:"trigger"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Pages       int64      `json:"pages"`
	Counts
	// CursorBefore and CursorAfter are the checkpoints the run started
	// from and ended at (JSON of a Checkpoint, "" for none).
	CursorBefore string `json:"cursor_before"`
	CursorAfter  string `json:"cursor_after"`
	// Error is why the run failed.
	Error *RunError `json:"error,omitempty"`
	// Failures are the upstream records that could not be written, at
	// most MaxFailures of them.
	Failures []Failure `json:"failures"`
	// Notes say what the run chose not to do (deletes held back).
	Notes []string `json:"notes"`
}

// MaxFailures is how many record failures a run keeps in its log.
const MaxFailures = 100

// RunError is why a run failed: a code (fetch_failed, plan_limit_exceeded,
// invalid_connector, lease_lost, internal), a message, and for an HTTP
// answer its status and the first 4 KiB of its body.
type RunError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	StatusCode int    `json:"status_code,omitempty"`
	Body       string `json:"body,omitempty"`
}

// Failure is one upstream record that was not written.
type Failure struct {
	// Page is the 1-based page of the run, Index the record's 0-based
	// place in it.
	Page       int64          `json:"page"`
	Index      int            `json:"index"`
	ExternalID string         `json:"external_id,omitempty"`
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	Fields     []FieldFailure `json:"fields,omitempty"`
	Target     *int           `json:"target,omitempty"`
	Object     string         `json:"object,omitempty"`
}

// FieldFailure is one field of a failed record.
type FieldFailure struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}
