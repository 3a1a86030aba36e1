package integration

import (
	"context"
	"database/sql"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// RecordPipeline is the one path every record write takes, whatever it came
// through: the REST API, a bulk job, an import row, an inbound webhook or a
// connector poll. *records.Pipeline is the default; a host that has its own
// record service passes it here instead, and then owns validation, rules,
// plan limits, the audit log and event publication (see Service.Publish).
//
// Errors are the records package's sentinels, wrapped: ErrNotFound for an
// unknown object or id (including another workspace's id), ErrConflict for
// a stale ExpectedVersion, ErrDuplicate for a taken external id or unique
// value, ErrPlanLimit for a plan cap, and a *records.ValidationError for bad
// fields. The API maps each to its HTTP problem.
type RecordPipeline interface {
	// Create writes a new record.
	Create(ctx context.Context, w records.Write) (*records.Record, error)
	// Update changes the fields in w.Fields of record w.ID, only if its
	// version is w.ExpectedVersion (0: any version).
	Update(ctx context.Context, w records.Write) (*records.Record, error)
	// Upsert creates or updates the record whose external id is
	// w.ExternalID; created reports which.
	Upsert(ctx context.Context, w records.Write) (rec *records.Record, created bool, err error)
	// Delete removes record w.ID and answers its last state.
	Delete(ctx context.Context, w records.Write) (*records.Record, error)
	// Get answers one record of the workspace.
	Get(ctx context.Context, workspace, object, id string) (*records.Record, error)
	// List answers one page of records and the cursor of the next page (""
	// at the end), which goes back in ListQuery.After.
	List(ctx context.Context, q records.ListQuery) (recs []*records.Record, next string, err error)
	// Batch runs many writes, each with exactly the semantics it has alone
	// (validation, rules, plan limit, audit entry, event), and answers one
	// result per item, in order. In partial mode a failing item does not
	// fail the others; with AllOrNone nothing is written if any item fails,
	// and the items that did not fail answer records.ErrBatchAborted; with
	// DryRun everything runs and nothing is kept, so the results are those
	// a real run would give. Bulk jobs, imports, inbound webhooks and
	// connectors all write through it. Per-item failures are in the
	// results; the error reports the batch as a whole: a database outage,
	// or, with AllOrNone, the row that stopped it. opts.Commit, when set,
	// must run inside the transaction that commits the batch's writes, with
	// a context that carries it (connectors commit their checkpoint so).
	Batch(ctx context.Context, items []records.BatchItem, opts records.BatchOptions) ([]records.BatchResult, error)
}

var _ RecordPipeline = (*records.Pipeline)(nil)

// Store is the persistence crmkit needs: the records store the default
// pipeline writes through, API keys, webhook endpoints and their delivery
// log, workspaces and plans, the audit log, and event publication inside a
// caller's transaction. *store.Store implements it on Postgres and SQLite.
type Store interface {
	records.Store
	apikey.Store
	outbound.Store
	ingest.InboundStore
	ingest.BulkStore
	connector.Store
	// CreateWorkspace stores a new workspace, giving it an id when it has none.
	CreateWorkspace(ctx context.Context, w *records.Workspace) error
	// SetWorkspacePlan moves a workspace to another plan.
	SetWorkspacePlan(ctx context.Context, id, plan string) error
	// ListAudit answers the workspace's audit entries in id order: those of
	// one record when recordID is not "", after the id after, at most limit.
	ListAudit(ctx context.Context, workspace, recordID, after string, limit int) ([]*records.AuditEntry, error)
	// EventFeed answers the workspace's events in commit order after the
	// event q.After (records.ErrNotFound when it names none), filtered by
	// q.Type and q.Object, at most q.Limit.
	EventFeed(ctx context.Context, q records.EventQuery) ([]*records.Event, error)
	// PublishTx stores events and enqueues their fan-out jobs inside tx, a
	// transaction of the store's own database, so they exist if and only if
	// tx commits.
	PublishTx(ctx context.Context, tx *sql.Tx, events ...*records.Event) error
	// Ping checks the database answers.
	Ping(ctx context.Context) error
}

// JobQueue makes the River client that works background jobs on the
// store's database, and through which the store enqueues the jobs of
// committed events (so they exist if and only if the write commits).
// *store.Store implements it.
type JobQueue interface {
	NewJobClient(cfg *river.Config) (*river.Client[*sql.Tx], error)
}

// Signer turns a delivery into its signature headers; outbound delivery
// consumes it, and webhook.HMACSigner is the default.
type Signer = outbound.Signer

// Poller fetches one page of an external API's records for a pull
// connector; package connector consumes it and documents its contract, and
// its HTTP JSON poller is the default.
type Poller = connector.Poller
