package records_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

// batchEnv has one opportunity, "existing", with external id E-1 and a
// failing After rule for opportunities named "doomed".
func batchEnv(t *testing.T, dsn string) (*env, *records.Record) {
	t.Helper()
	fail := records.Rule{
		Name: "fail", Object: "opportunity", Phase: records.After,
		On:   []records.Trigger{records.TriggerCreated, records.TriggerUpdated},
		When: records.FieldEquals("name", "doomed"),
		Do:   func(context.Context, *records.RuleContext) error { return errors.New("doomed") },
	}
	e := newEnv(t, dsn, records.Config{Rules: []records.Rule{records.ClosedWonRule(), fail}}, "starter")
	rec, err := e.p.Create(context.Background(), e.opp(records.Fields{"name": "existing", "external_id": "E-1"}))
	require.NoError(t, err)
	return e, rec
}

// batchItems mixes good rows with one of each way a row fails.
func batchItems(e *env, existing *records.Record) []records.BatchItem {
	w := func(fields records.Fields) records.Write {
		wr := e.opp(fields)
		wr.Source = records.SourceBulk
		return wr
	}
	upd := func(id string, fields records.Fields) records.Write {
		wr := w(fields)
		wr.ID = id
		return wr
	}
	ups := func(ext string, fields records.Fields) records.Write {
		wr := w(fields)
		wr.ExternalID = ext
		return wr
	}
	return []records.BatchItem{
		0: {Op: records.OpInsert, Write: w(records.Fields{"name": "new one", "external_id": "N-1"})},
		1: {Op: records.OpInsert, Write: w(records.Fields{"amount": -1.0})},                            // invalid
		2: {Op: records.OpInsert, Write: w(records.Fields{"name": "dup", "external_id": "E-1"})},       // duplicate
		3: {Op: records.OpUpsert, Write: ups("N-1", records.Fields{"stage": "Closed Won"})},            // updates row 0
		4: {Op: records.OpUpdate, Write: upd(existing.ID, records.Fields{"amount": 7.0})},              // ok
		5: {Op: records.OpInsert, Write: w(records.Fields{"name": "doomed"})},                          // After rule fails
		6: {Op: records.OpUpsert, Write: ups("N-2", records.Fields{"name": "upserted"})},               // creates
		7: {Op: records.OpUpdate, Write: upd(existing.ID, records.Fields{"amount": 7.0})},              // no-op after row 4
		8: {Op: records.OpDelete, Write: upd("rec_01jq8n0b4h5xk2m3n4p5q6r7s8", nil)},                   // not found
		9: {Op: records.OpUpsert, Write: ups("N-2", records.Fields{"probability": 30, "colour": "x"})}, // invalid
	}
}

func TestBatchPartial(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e, existing := batchEnv(t, dsn)
		ctx := context.Background()
		res, err := e.p.Batch(ctx, batchItems(e, existing), records.BatchOptions{})
		require.NoError(t, err)
		require.Len(t, res, 10)

		for _, i := range []int{0, 3, 4, 6, 7} {
			require.NoError(t, res[i].Err, "row %d", i)
			require.NotNil(t, res[i].Record, "row %d", i)
		}
		require.True(t, res[0].Created)
		require.False(t, res[3].Created)
		require.Equal(t, res[0].Record.ID, res[3].Record.ID)
		require.Equal(t, int64(2), res[3].Record.Version)
		require.Equal(t, "Closed Won", res[3].Record.Fields["stage"])
		require.NotNil(t, res[3].Record.Fields["closed_at"], "rules run on batch rows")
		require.True(t, res[6].Created)
		require.Equal(t, int64(2), res[7].Record.Version)
		require.Equal(t, res[4].Record, res[7].Record)

		require.Equal(t, map[string]string{"amount": "min", "name": "required"}, fieldCodes(t, res[1].Err))
		require.ErrorIs(t, res[2].Err, records.ErrDuplicate)
		require.ErrorContains(t, res[5].Err, "doomed")
		require.ErrorIs(t, res[8].Err, records.ErrNotFound)
		require.Equal(t, map[string]string{"colour": "unknown_field"}, fieldCodes(t, res[9].Err))

		// existing + rows 0 and 6; row 5's insert was rolled back alone.
		require.Equal(t, 3, e.count(t, "records"))
		require.Equal(t, int64(3), e.recordCount(t, e.ws))
		// One audit entry and one event per written row: 0, 3, 4, 6.
		require.Equal(t, 1+4, e.count(t, "audit_entries"))
		evs := e.events(t)
		require.Len(t, evs, 1+4)
		require.Equal(t, records.SourceBulk, evs[1].Source)
		require.Equal(t, 1+4, e.count(t, "river_job"))
		got, err := e.p.Get(ctx, e.ws, "opportunity", res[0].Record.ID)
		require.NoError(t, err)
		require.Equal(t, res[3].Record, got)
	})
}

func TestBatchAllOrNone(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e, existing := batchEnv(t, dsn)
		ctx := context.Background()
		items := batchItems(e, existing)

		// Validation failures are all reported before anything is written.
		res, err := e.p.Batch(ctx, items, records.BatchOptions{AllOrNone: true})
		require.ErrorIs(t, err, records.ErrValidation)
		require.ErrorContains(t, err, "row 1")
		for i, r := range res {
			require.Nil(t, r.Record)
			switch i {
			case 1, 9:
				require.ErrorIs(t, r.Err, records.ErrValidation)
			case 8:
				require.ErrorIs(t, r.Err, records.ErrNotFound)
			default:
				require.ErrorIs(t, r.Err, records.ErrBatchAborted, "row %d", i)
			}
		}

		// A row failing in the transaction undoes the rows before it.
		items = []records.BatchItem{items[0], items[4], items[2], items[6]}
		res, err = e.p.Batch(ctx, items, records.BatchOptions{AllOrNone: true})
		require.ErrorIs(t, err, records.ErrDuplicate)
		require.ErrorIs(t, res[2].Err, records.ErrDuplicate)
		for _, i := range []int{0, 1, 3} {
			require.ErrorIs(t, res[i].Err, records.ErrBatchAborted)
		}
		require.Equal(t, []int{1, 1, 1, 1}, []int{e.count(t, "records"), e.count(t, "audit_entries"), e.count(t, "events"), e.count(t, "river_job")})
		got, err := e.p.Get(ctx, e.ws, "opportunity", existing.ID)
		require.NoError(t, err)
		require.Equal(t, existing, got)

		items = append(items[:2], items[3])
		res, err = e.p.Batch(ctx, items, records.BatchOptions{AllOrNone: true})
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
		require.Equal(t, 3, e.count(t, "records"))
		require.Equal(t, 4, e.count(t, "events"))
	})
}

func TestBatchDryRun(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e, existing := batchEnv(t, dsn)
		ctx := context.Background()
		for _, allOrNone := range []bool{false, true} {
			res, err := e.p.Batch(ctx, batchItems(e, existing), records.BatchOptions{DryRun: true, AllOrNone: allOrNone})
			if allOrNone {
				require.ErrorIs(t, err, records.ErrValidation)
			} else {
				require.NoError(t, err)
				require.True(t, res[0].Created)
				require.NotNil(t, res[3].Record.Fields["closed_at"])
				require.ErrorIs(t, res[2].Err, records.ErrDuplicate)
				require.ErrorContains(t, res[5].Err, "doomed")
			}
			require.Equal(t, []int{1, 1, 1, 1}, []int{e.count(t, "records"), e.count(t, "audit_entries"), e.count(t, "events"), e.count(t, "river_job")})
			require.Equal(t, int64(1), e.recordCount(t, e.ws))
		}
	})
}

// TestBatchPlanLimit checks each row's own limit check in one batch: in
// partial mode the rows past the cap fail alone.
func TestBatchPlanLimit(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, tinyPlan)
		items := make([]records.BatchItem, tinyCap+3)
		for i := range items {
			items[i] = records.BatchItem{Op: records.OpInsert, Write: e.opp(records.Fields{"name": "n"})}
		}
		res, err := e.p.Batch(context.Background(), items, records.BatchOptions{AllOrNone: true})
		require.ErrorIs(t, err, records.ErrPlanLimit)
		require.ErrorIs(t, res[tinyCap].Err, records.ErrPlanLimit)
		require.Equal(t, 0, e.count(t, "records"))

		res, err = e.p.Batch(context.Background(), items, records.BatchOptions{})
		require.NoError(t, err)
		for i, r := range res {
			if i < tinyCap {
				require.NoError(t, r.Err)
			} else {
				require.ErrorIs(t, r.Err, records.ErrPlanLimit)
			}
		}
		require.Equal(t, tinyCap, e.count(t, "records"))
		require.Equal(t, tinyCap, e.count(t, "events"))

		// At the cap, a row deleting frees the place a later row takes.
		full := []records.BatchItem{
			{Op: records.OpInsert, Write: e.opp(records.Fields{"name": "too many"})},
			{Op: records.OpDelete, Write: records.Write{Workspace: e.ws, Object: "opportunity", ID: res[0].Record.ID}},
			{Op: records.OpInsert, Write: e.opp(records.Fields{"name": "fits"})},
			{Op: records.OpInsert, Write: e.opp(records.Fields{"name": "too many again"})},
		}
		res, err = e.p.Batch(context.Background(), full, records.BatchOptions{})
		require.NoError(t, err)
		require.ErrorIs(t, res[0].Err, records.ErrPlanLimit)
		require.NoError(t, res[1].Err)
		require.NoError(t, res[2].Err)
		require.ErrorIs(t, res[3].Err, records.ErrPlanLimit)
		require.Equal(t, int64(tinyCap), e.recordCount(t, e.ws))
		require.Equal(t, tinyCap, e.count(t, "records"))

		// Creates and deletes of one batch settle the count together.
		mixed := []records.BatchItem{
			{Op: records.OpDelete, Write: records.Write{Workspace: e.ws, Object: "opportunity", ID: res[2].Record.ID}},
			{Op: records.OpDelete, Write: records.Write{Workspace: e.ws, Object: "opportunity", ID: res[2].Record.ID}},
			{Op: records.OpDelete, Write: records.Write{Workspace: e.ws, Object: "opportunity", ID: res[1].Record.ID}},
			{Op: records.OpInsert, Write: e.opp(records.Fields{"name": "new"})},
		}
		res, err = e.p.Batch(context.Background(), mixed, records.BatchOptions{})
		require.NoError(t, err)
		require.NoError(t, res[0].Err)
		require.ErrorIs(t, res[1].Err, records.ErrNotFound)
		require.ErrorIs(t, res[2].Err, records.ErrNotFound, "deleted by the previous batch")
		require.NoError(t, res[3].Err)
		require.Equal(t, int64(tinyCap), e.recordCount(t, e.ws))
		require.Equal(t, tinyCap, e.count(t, "records"))
	})
}

// TestBatchRefs: an item's reference field takes the id of the record an
// earlier item of the same all-or-none batch writes, new or existing; a
// failing referenced item fails the batch; partial batches refuse Refs.
func TestBatchRefs(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "enterprise")
		ctx := context.Background()
		acct := func(name string) records.BatchItem {
			return records.BatchItem{Op: records.OpUpsert, Write: records.Write{Workspace: e.ws, Object: "account",
				ExternalID: "shopify-1", Fields: records.Fields{"name": name}}}
		}
		opp := records.BatchItem{Op: records.OpUpsert, Refs: map[string]int{"account_id": 0},
			Write: records.Write{Workspace: e.ws, Object: "opportunity", ExternalID: "order-1",
				Fields: records.Fields{"name": "Order 1", "stage": "Closed Won", "amount": 10.0}}}

		res, err := e.p.Batch(ctx, []records.BatchItem{acct("Acme"), opp}, records.BatchOptions{AllOrNone: true})
		require.NoError(t, err)
		require.True(t, res[0].Created)
		require.Equal(t, res[0].Record.ID, res[1].Record.Fields["account_id"])

		// Again: the account exists now, and the reference is its id.
		res2, err := e.p.Batch(ctx, []records.BatchItem{acct("Acme Inc"), opp}, records.BatchOptions{AllOrNone: true})
		require.NoError(t, err)
		require.False(t, res2[0].Created)
		require.Equal(t, res[0].Record.ID, res2[1].Record.Fields["account_id"])
		require.Nil(t, opp.Write.Fields["account_id"], "the caller's fields are not changed")

		bad := acct("")
		bad.Write.Fields = records.Fields{"website": "not a url"}
		res3, err := e.p.Batch(ctx, []records.BatchItem{bad, opp}, records.BatchOptions{AllOrNone: true})
		require.Error(t, err)
		require.Error(t, res3[1].Err)

		_, err = e.p.Batch(ctx, []records.BatchItem{acct("Acme"), opp}, records.BatchOptions{})
		require.Error(t, err)
	})
}

// TestBatchCommit: BatchOptions.Commit writes in the batch's transaction:
// what it writes is kept exactly when the batch's writes are, also when no
// row writes anything, and a dry run never calls it.
func TestBatchCommit(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "enterprise")
		ctx := context.Background()
		item := func(name string) records.BatchItem {
			return records.BatchItem{Op: records.OpUpsert, Write: records.Write{Workspace: e.ws, Object: "account",
				ExternalID: "acct-" + name, Fields: records.Fields{"name": name}}}
		}
		bad := records.BatchItem{Op: records.OpInsert, Write: records.Write{Workspace: e.ws, Object: "account",
			Fields: records.Fields{"website": "not a url"}}}
		// The hook marks its run by creating a workspace inside the
		// transaction it is given.
		mark := func(id string) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return e.st.CreateWorkspace(ctx, &records.Workspace{ID: id, Name: id, Plan: "starter"})
			}
		}
		kept := func(id string) bool {
			_, err := e.st.GetWorkspace(ctx, id)
			return err == nil
		}

		_, err := e.p.Batch(ctx, []records.BatchItem{item("a"), bad}, records.BatchOptions{Commit: mark("ws_partial")})
		require.NoError(t, err)
		require.True(t, kept("ws_partial"), "committed with the partial batch's good row")

		_, err = e.p.Batch(ctx, []records.BatchItem{item("b"), bad}, records.BatchOptions{AllOrNone: true, Commit: mark("ws_aborted")})
		require.Error(t, err)
		require.False(t, kept("ws_aborted"), "an aborted batch keeps nothing of the hook")

		_, err = e.p.Batch(ctx, []records.BatchItem{item("a")}, records.BatchOptions{Commit: mark("ws_unchanged")})
		require.NoError(t, err)
		require.True(t, kept("ws_unchanged"), "a batch that changes nothing still commits the hook")

		_, err = e.p.Batch(ctx, []records.BatchItem{item("c")}, records.BatchOptions{DryRun: true, Commit: mark("ws_dry")})
		require.NoError(t, err)
		require.False(t, kept("ws_dry"))

		_, err = e.p.Batch(ctx, nil, records.BatchOptions{Commit: mark("ws_empty")})
		require.NoError(t, err)
		require.True(t, kept("ws_empty"))

		failing := func(context.Context) error { return errors.New("checkpoint refused") }
		_, err = e.p.Batch(ctx, []records.BatchItem{item("d")}, records.BatchOptions{Commit: failing})
		require.Error(t, err)
		recs, _, err := e.p.List(ctx, records.ListQuery{Workspace: e.ws, Object: "account", Filter: map[string]string{"name": "d"}})
		require.NoError(t, err)
		require.Empty(t, recs, "the hook's error rolls the batch back")
	})
}
