package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// Store is what the suite runs against: the storage seams of records,
// apikey and outbound, and the calls through which the cases create
// workspaces and look at what a write stored. *store.Store implements it.
type Store interface {
	records.Store
	apikey.Store
	outbound.Store
	// CreateWorkspace stores w, giving it an id and a creation time when it
	// has none; an id already taken fails with records.ErrDuplicate.
	CreateWorkspace(ctx context.Context, w *records.Workspace) error
	// RecordCount answers the workspace's record count, the figure
	// records.Tx.ReserveRecords moves and checks; records.ErrNotFound when
	// there is no such workspace.
	RecordCount(ctx context.Context, workspace string) (int64, error)
	// GetEvent answers one event of the workspace; records.ErrNotFound
	// when the workspace has no such event.
	GetEvent(ctx context.Context, workspace, id string) (*records.Event, error)
	// ListAudit answers the workspace's audit entries in id order: those of
	// one record when recordID is not "", after the id after, at most limit.
	ListAudit(ctx context.Context, workspace, recordID, after string, limit int) ([]*records.AuditEntry, error)
}

// Options give the suite what Store cannot tell it. Every field is
// optional; see the package documentation.
type Options struct {
	// Jobs answers the args, as JSON, of the background jobs of kind that st
	// holds, oldest first. Given a context that st's InTx handed its
	// function, it sees that transaction's own jobs too. It lets the cases
	// check that InsertEvents (and EnqueueFanout) enqueue one
	// records.FanoutArgs job per event, with the write's transaction.
	Jobs func(ctx context.Context, st Store, kind string) ([]json.RawMessage, error)
}

// Run runs every case, each on a fresh store from open, closed by open's
// cleanup when the case ends. opts may be the zero value.
func Run(t *testing.T, open func(t *testing.T) Store, opts Options) {
	if opts.Jobs == nil {
		t.Log("storetest: Options.Jobs is nil; the checks of enqueued jobs are skipped")
	}
	with := func(f func(*testing.T, Store, Options)) func(*testing.T, Store) {
		return func(t *testing.T, st Store) { f(t, st, opts) }
	}
	cases := []struct {
		name string
		run  func(t *testing.T, st Store)
	}{
		{"Workspaces", testWorkspaces},
		{"InsertAndGet", testInsertAndGet},
		{"Duplicates", testDuplicates},
		{"Update", testUpdate},
		{"Delete", testDelete},
		{"ReserveRecords", testReserve},
		{"ReserveRecordsConcurrent", testReserveConcurrent},
		{"Rollback", with(testRollback)},
		{"Savepoint", with(testSavepoint)},
		{"ReadsInsideTx", testReadsInsideTx},
		{"Audit", testAudit},
		{"Events", with(testEvents)},
		{"ListRecords", testListRecords},
		{"WriteRow", with(testWriteRow)},

		{"APIKeys", testAPIKeys},
		{"APIKeyRevokeAndRotate", testAPIKeyRevokeAndRotate},
		{"APIKeyCap", testAPIKeyCap},

		{"WebhookEndpoints", testWebhookEndpoints},
		{"WebhookDeliveries", testWebhookDeliveries},
		{"WebhookAttempts", testWebhookAttempts},
		{"WebhookRequeueAndPrune", testWebhookRequeueAndPrune},
		{"WebhookEndpointCap", testWebhookEndpointCap},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
	}
}

// Workspace creates a workspace on plan for a test.
func Workspace(tb testing.TB, st Store, plan string) *records.Workspace {
	tb.Helper()
	w := &records.Workspace{Name: "Test " + plan, Plan: plan}
	require.NoError(tb, st.CreateWorkspace(context.Background(), w))
	return w
}

// NewRecord is an unsaved record of object in workspace, at version 1.
func NewRecord(workspace, object string, fields records.Fields) *records.Record {
	now := time.Now()
	return &records.Record{
		ID: records.NewID("rec"), Object: object, Workspace: workspace, Version: 1,
		CreatedAt: now, UpdatedAt: now, Fields: fields,
	}
}

// Insert stores r in a transaction of its own.
func Insert(tb testing.TB, st records.Store, r *records.Record, externalID string, unique map[string]string) {
	tb.Helper()
	require.NoError(tb, insert(st, r, externalID, unique))
}

func insert(st records.Store, r *records.Record, externalID string, unique map[string]string) error {
	return st.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
		return tx.InsertRecord(ctx, r, externalID, unique)
	})
}

// stored is at as a store keeps it and reads it back: UTC, to the
// microsecond.
func stored(at time.Time) time.Time { return at.UTC().Truncate(time.Microsecond) }

// jobs answers the args of st's jobs of kind through o.Jobs, in ctx's
// transaction when it carries one; ok is false when o has no Jobs.
func (o Options) jobs(tb testing.TB, ctx context.Context, st Store, kind string) (args []json.RawMessage, ok bool) {
	tb.Helper()
	if o.Jobs == nil {
		return nil, false
	}
	args, err := o.Jobs(ctx, st, kind)
	require.NoError(tb, err)
	return args, true
}

// requireFanoutJobs checks that st holds n fan-out jobs, when o can tell.
func (o Options) requireFanoutJobs(tb testing.TB, ctx context.Context, st Store, n int, msgAndArgs ...any) {
	tb.Helper()
	if args, ok := o.jobs(tb, ctx, st, records.FanoutArgs{}.Kind()); ok {
		require.Len(tb, args, n, msgAndArgs...)
	}
}
