package records_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

func TestCreateUpdateDelete(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "starter")
		ctx := context.Background()

		rec, err := e.p.Create(ctx, e.opp(records.Fields{"name": " Deal ", "amount": 100.0, "stage": "Proposal"}))
		require.NoError(t, err)
		require.Regexp(t, `^rec_[0-9a-z]{26}$`, rec.ID)
		require.Equal(t, int64(1), rec.Version)
		require.Equal(t, records.Fields{"name": "Deal", "amount": 100.0, "stage": "Proposal"}, rec.Fields)
		require.Equal(t, rec.CreatedAt, rec.UpdatedAt)
		got, err := e.p.Get(ctx, e.ws, "opportunity", rec.ID)
		require.NoError(t, err)
		require.Equal(t, rec, got)
		require.Equal(t, int64(1), e.recordCount(t, e.ws))

		audit := e.audit(t, rec.ID)
		require.Len(t, audit, 1)
		require.Equal(t, "create", audit[0].Action)
		require.Equal(t, records.SourceAPI, audit[0].Source)
		require.Equal(t, records.Actor{Kind: "api_key", ID: "key_test"}, audit[0].Actor)
		require.Equal(t, map[string]records.Change{
			"name": {To: "Deal"}, "amount": {To: 100.0}, "stage": {To: "Proposal"},
		}, audit[0].Changes)

		w := e.opp(records.Fields{"stage": "Negotiation", "amount": nil})
		w.ID = rec.ID
		upd, err := e.p.Update(ctx, w)
		require.NoError(t, err)
		require.Equal(t, int64(2), upd.Version)
		require.Equal(t, records.Fields{"name": "Deal", "stage": "Negotiation"}, upd.Fields)
		require.Equal(t, rec.CreatedAt, upd.CreatedAt)
		require.True(t, upd.UpdatedAt.After(rec.UpdatedAt))
		changes := map[string]records.Change{
			"stage": {From: "Proposal", To: "Negotiation"}, "amount": {From: 100.0, To: nil},
		}
		audit = e.audit(t, rec.ID)
		require.Len(t, audit, 2)
		require.Equal(t, "update", audit[1].Action)
		require.Equal(t, changes, audit[1].Changes)

		// A no-op update writes and emits nothing.
		w.Fields = records.Fields{"stage": "Negotiation", "name": "Deal  "}
		same, err := e.p.Update(ctx, w)
		require.NoError(t, err)
		require.Equal(t, upd, same)
		require.Len(t, e.audit(t, rec.ID), 2)
		require.Len(t, e.events(t), 2)

		// A stale expected version is a conflict; the right one passes.
		w.Fields = records.Fields{"probability": 50}
		w.ExpectedVersion = 1
		_, err = e.p.Update(ctx, w)
		require.ErrorIs(t, err, records.ErrConflict)
		w.ExpectedVersion = 2
		upd, err = e.p.Update(ctx, w)
		require.NoError(t, err)
		require.Equal(t, int64(3), upd.Version)

		del, err := e.p.Delete(ctx, records.Write{Workspace: e.ws, Object: "opportunity", ID: rec.ID, ExpectedVersion: 2})
		require.ErrorIs(t, err, records.ErrConflict)
		require.Nil(t, del)
		del, err = e.p.Delete(ctx, records.Write{Workspace: e.ws, Object: "opportunity", ID: rec.ID, Source: records.SourceUI,
			Actor: records.Actor{Kind: "user", ID: "u1"}})
		require.NoError(t, err)
		require.Equal(t, upd, del)
		_, err = e.p.Get(ctx, e.ws, "opportunity", rec.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, err = e.p.Delete(ctx, records.Write{Workspace: e.ws, Object: "opportunity", ID: rec.ID})
		require.ErrorIs(t, err, records.ErrNotFound)
		require.Equal(t, int64(0), e.recordCount(t, e.ws))

		audit = e.audit(t, rec.ID)
		require.Len(t, audit, 4)
		require.Equal(t, "delete", audit[3].Action)
		require.Equal(t, records.SourceUI, audit[3].Source)
		require.Equal(t, map[string]records.Change{
			"name": {From: "Deal"}, "stage": {From: "Negotiation"}, "probability": {From: 50.0},
		}, audit[3].Changes)

		evs := e.events(t)
		require.Len(t, evs, 4)
		for i, typ := range []string{records.EventCreated, records.EventUpdated, records.EventUpdated, records.EventDeleted} {
			require.Equal(t, typ, evs[i].Type)
			require.Equal(t, rec.ID, evs[i].RecordID)
			require.Equal(t, "opportunity", evs[i].Object)
		}
		require.Equal(t, changes, evs[1].Changes)
		require.Equal(t, upd.Fields, evs[3].Record.Fields, "a delete's event carries the last state")
		require.Equal(t, int64(3), evs[3].Record.Version)
		require.Equal(t, 4, e.count(t, "river_job"))
	})
}

func TestUpsertAndExternalIDs(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "starter")
		ctx := context.Background()
		w := e.opp(records.Fields{"name": "From CRM", "amount": 5.0})
		w.ExternalID = "SF-1"

		rec, created, err := e.p.Upsert(ctx, w)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, "SF-1", rec.Fields["external_id"])

		w.Fields = records.Fields{"amount": 6.0}
		upd, created, err := e.p.Upsert(ctx, w)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, rec.ID, upd.ID)
		require.Equal(t, records.Fields{"name": "From CRM", "amount": 6.0, "external_id": "SF-1"}, upd.Fields)

		same, created, err := e.p.Upsert(ctx, w)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, upd, same)
		require.Len(t, e.events(t), 2)

		// Two records may never share an external id.
		dup := e.opp(records.Fields{"name": "Other", "external_id": "SF-1"})
		_, err = e.p.Create(ctx, dup)
		require.ErrorIs(t, err, records.ErrDuplicate)
		other, err := e.p.Create(ctx, e.opp(records.Fields{"name": "Other", "external_id": "SF-2"}))
		require.NoError(t, err)
		move := e.opp(records.Fields{"external_id": "SF-1"})
		move.ID = other.ID
		_, err = e.p.Update(ctx, move)
		require.ErrorIs(t, err, records.ErrDuplicate)
		require.Equal(t, int64(2), e.recordCount(t, e.ws))
		require.Equal(t, 2, e.count(t, "records"))

		_, _, err = e.p.Upsert(ctx, e.opp(records.Fields{"name": "x"}))
		require.Equal(t, map[string]string{"external_id": "required"}, fieldCodes(t, err))
	})
}

// TestConcurrentWrites races upserts of one external id (one creates, the
// rest update) and updates of one record without an expected version (all
// land, one version each).
func TestConcurrentWrites(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "starter")
		ctx := context.Background()
		const n = 8
		var created atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				w := e.opp(records.Fields{"name": "Shared", "amount": float64(i)})
				w.ExternalID = "EXT-1"
				_, c, err := e.p.Upsert(ctx, w)
				if c {
					created.Add(1)
				}
				errs <- err
			})
		}
		wg.Wait()
		require.Equal(t, int32(1), created.Load())
		rec, err := e.st.GetRecordByExternalID(ctx, e.ws, "opportunity", "EXT-1")
		require.NoError(t, err)

		for i := range n {
			wg.Go(func() {
				w := e.opp(records.Fields{"name": fmt.Sprintf("Writer %d", i)})
				w.ID = rec.ID
				_, err := e.p.Update(ctx, w)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		final, err := e.p.Get(ctx, e.ws, "opportunity", rec.ID)
		require.NoError(t, err)
		require.Equal(t, len(e.audit(t, rec.ID)), int(final.Version))
		require.GreaterOrEqual(t, final.Version, int64(n+1))
		require.Equal(t, int64(1), e.recordCount(t, e.ws))
	})
}

// TestClosedWonRule checks that the rule is an edge: it fires in the write
// that moves the stage to Closed Won, its change is part of that write's
// audit entry and event, and later edits of the won deal leave closed_at.
func TestClosedWonRule(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{Rules: []records.Rule{records.ClosedWonRule()}}, "starter")
		ctx := context.Background()
		rec, err := e.p.Create(ctx, e.opp(records.Fields{"name": "Deal", "stage": "Negotiation"}))
		require.NoError(t, err)
		require.NotContains(t, rec.Fields, "closed_at")

		w := e.opp(records.Fields{"stage": "Closed Won"})
		w.ID = rec.ID
		won, err := e.p.Update(ctx, w)
		require.NoError(t, err)
		wonAt := won.UpdatedAt.Format(records.DateTimeLayout)
		require.Equal(t, wonAt, won.Fields["closed_at"])
		require.Equal(t, int64(2), won.Version)
		want := map[string]records.Change{
			"stage":     {From: "Negotiation", To: "Closed Won"},
			"closed_at": {From: nil, To: wonAt},
		}
		evs := e.events(t)
		require.Len(t, evs, 2)
		require.Equal(t, want, evs[1].Changes)
		require.Equal(t, wonAt, evs[1].Record.Fields["closed_at"])
		audit := e.audit(t, rec.ID)
		require.Len(t, audit, 2)
		require.Equal(t, want, audit[1].Changes)

		// Editing the won deal, stage included, does not fire again.
		w.Fields = records.Fields{"amount": 10.0, "stage": "Closed Won"}
		edited, err := e.p.Update(ctx, w)
		require.NoError(t, err)
		require.Equal(t, wonAt, edited.Fields["closed_at"])
		require.Equal(t, map[string]records.Change{"amount": {From: nil, To: 10.0}}, e.events(t)[2].Changes)

		// Leaving and winning again is a new edge.
		w.Fields = records.Fields{"stage": "Negotiation"}
		_, err = e.p.Update(ctx, w)
		require.NoError(t, err)
		w.Fields = records.Fields{"stage": "Closed Won"}
		rewon, err := e.p.Update(ctx, w)
		require.NoError(t, err)
		require.Equal(t, rewon.UpdatedAt.Format(records.DateTimeLayout), rewon.Fields["closed_at"])
		require.NotEqual(t, wonAt, rewon.Fields["closed_at"])

		// Created already won: the edge is from no stage to Closed Won.
		direct, err := e.p.Create(ctx, e.opp(records.Fields{"name": "Quick", "stage": "Closed Won"}))
		require.NoError(t, err)
		require.Equal(t, direct.CreatedAt.Format(records.DateTimeLayout), direct.Fields["closed_at"])
	})
}

// TestBeforeRules checks what Before rules may do: fill fields (validated
// again), veto writes, and see the edge of the write.
func TestBeforeRules(t *testing.T) {
	errVeto := errors.New("deals over a million need a manager")
	rules := []records.Rule{
		{
			Name: "default probability", Object: "opportunity", On: []records.Trigger{records.TriggerCreated},
			When: func(rc *records.RuleContext) bool { return rc.Fields["probability"] == nil },
			Do: func(_ context.Context, rc *records.RuleContext) error {
				rc.Fields["probability"] = 10 // an int: normalised to 10.0
				return nil
			},
		},
		{
			Name: "veto", Object: "opportunity", On: []records.Trigger{records.TriggerCreated, records.TriggerUpdated},
			When: func(rc *records.RuleContext) bool { a, _ := rc.Fields["amount"].(float64); return a > 1e6 },
			Do:   func(context.Context, *records.RuleContext) error { return errVeto },
		},
		{
			Name: "bad value", Object: "opportunity", On: []records.Trigger{records.TriggerUpdated},
			When: records.FieldChangedTo("stage", "Closed Lost"),
			Do: func(_ context.Context, rc *records.RuleContext) error {
				rc.Fields["probability"] = 400.0
				return nil
			},
		},
		{
			Name: "keep won", Object: "opportunity", On: []records.Trigger{records.TriggerDeleted},
			When: records.FieldEquals("stage", "Closed Won"),
			Do: func(context.Context, *records.RuleContext) error {
				return &records.ValidationError{Object: "opportunity", Fields: []records.FieldError{{Field: "stage", Code: "locked", Message: "won deals stay"}}}
			},
		},
	}
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{Rules: rules}, "starter")
		ctx := context.Background()
		rec, err := e.p.Create(ctx, e.opp(records.Fields{"name": "Deal"}))
		require.NoError(t, err)
		require.Equal(t, 10.0, rec.Fields["probability"])
		require.Equal(t, map[string]records.Change{"name": {To: "Deal"}, "probability": {To: 10.0}}, e.audit(t, rec.ID)[0].Changes)

		_, err = e.p.Create(ctx, e.opp(records.Fields{"name": "Huge", "amount": 2e6}))
		require.ErrorIs(t, err, errVeto)
		require.ErrorContains(t, err, "veto")
		require.Equal(t, map[string]string{"": "rule"}, fieldCodes(t, err))

		w := e.opp(records.Fields{"stage": "Closed Lost"})
		w.ID = rec.ID
		_, err = e.p.Update(ctx, w)
		require.Equal(t, map[string]string{"probability": "max"}, fieldCodes(t, err))

		w.Fields = records.Fields{"stage": "Closed Won"}
		_, err = e.p.Update(ctx, w)
		require.NoError(t, err)
		_, err = e.p.Delete(ctx, records.Write{Workspace: e.ws, Object: "opportunity", ID: rec.ID})
		require.Equal(t, map[string]string{"stage": "locked"}, fieldCodes(t, err))
		require.Equal(t, 1, e.count(t, "records"))
		require.Len(t, e.events(t), 2)
	})
}

// TestAfterRuleFailureLeavesNothing injects a failure after the record,
// audit entry and rule writes: nothing of the write may remain.
func TestAfterRuleFailureLeavesNothing(t *testing.T) {
	errBoom := errors.New("downstream refused")
	var sawTx atomic.Bool
	fail := records.Rule{
		Name: "fail after write", Object: "opportunity", Phase: records.After,
		On:   []records.Trigger{records.TriggerCreated, records.TriggerUpdated, records.TriggerDeleted},
		When: records.FieldEquals("name", "doomed"),
		Do: func(ctx context.Context, rc *records.RuleContext) error {
			sawTx.Store(rc.Tx != nil && rc.Record != nil && rc.Record.ID == rc.ID)
			// A write of the rule's own in the same transaction must go too.
			if err := rc.Tx.ReserveRecords(ctx, rc.Workspace, 100, 0); err != nil {
				return err
			}
			return errBoom
		},
	}
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{Rules: []records.Rule{fail}}, "starter")
		ctx := context.Background()
		tables := func() []int {
			return []int{e.count(t, "records"), e.count(t, "audit_entries"), e.count(t, "events"), e.count(t, "river_job"),
				int(e.recordCount(t, e.ws))}
		}

		_, err := e.p.Create(ctx, e.opp(records.Fields{"name": "doomed", "external_id": "D-1"}))
		require.ErrorIs(t, err, errBoom)
		require.True(t, sawTx.Load())
		require.Equal(t, []int{0, 0, 0, 0, 0}, tables())

		rec, err := e.p.Create(ctx, e.opp(records.Fields{"name": "fine"}))
		require.NoError(t, err)
		require.Equal(t, []int{1, 1, 1, 1, 1}, tables())
		w := e.opp(records.Fields{"name": "doomed"})
		w.ID = rec.ID
		_, err = e.p.Update(ctx, w)
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, []int{1, 1, 1, 1, 1}, tables())
		got, err := e.p.Get(ctx, e.ws, "opportunity", rec.ID)
		require.NoError(t, err)
		require.Equal(t, rec, got)

		// The external id of the failed create is free.
		_, err = e.p.Create(ctx, e.opp(records.Fields{"name": "again", "external_id": "D-1"}))
		require.NoError(t, err)
	})
}

// TestPlanLimit races 2N creates from 50 goroutines against a cap of N.
func TestPlanLimit(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, tinyPlan)
		ctx := context.Background()
		const writers = 50
		jobs := make(chan int, 2*tinyCap)
		for i := range 2 * tinyCap {
			jobs <- i
		}
		close(jobs)
		var ok, limited atomic.Int32
		var wg sync.WaitGroup
		var other sync.Map
		for range writers {
			wg.Go(func() {
				for i := range jobs {
					_, err := e.p.Create(ctx, e.opp(records.Fields{"name": fmt.Sprintf("deal %d", i)}))
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, records.ErrPlanLimit):
						limited.Add(1)
					default:
						other.Store(i, err)
					}
				}
			})
		}
		wg.Wait()
		other.Range(func(k, v any) bool { t.Errorf("create %v: %v", k, v); return true })
		require.Equal(t, int32(tinyCap), ok.Load())
		require.Equal(t, int32(tinyCap), limited.Load())
		require.Equal(t, tinyCap, e.count(t, "records"))
		require.Equal(t, int64(tinyCap), e.recordCount(t, e.ws))

		// Deleting one frees one place.
		recs, _, err := e.p.List(ctx, records.ListQuery{Workspace: e.ws, Object: "opportunity", Limit: 1})
		require.NoError(t, err)
		_, err = e.p.Delete(ctx, records.Write{Workspace: e.ws, Object: "opportunity", ID: recs[0].ID})
		require.NoError(t, err)
		_, err = e.p.Create(ctx, e.opp(records.Fields{"name": "one more"}))
		require.NoError(t, err)
		_, err = e.p.Create(ctx, e.opp(records.Fields{"name": "one too many"}))
		require.ErrorIs(t, err, records.ErrPlanLimit)

		// A workspace on a plan the pipeline does not know cannot create.
		unknown := e.workspace(t, "platinum")
		_, err = e.p.Create(ctx, records.Write{Workspace: unknown, Object: "lead", Fields: records.Fields{"name": "x"}})
		require.ErrorIs(t, err, records.ErrPlanLimit)
	})
}

func TestWorkspaceIsolation(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "starter")
		ctx := context.Background()
		mine, err := e.p.Create(ctx, e.opp(records.Fields{"name": "Mine", "external_id": "X-1"}))
		require.NoError(t, err)
		other := e.workspace(t, "starter")

		_, err = e.p.Get(ctx, other, "opportunity", mine.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, err = e.p.Update(ctx, records.Write{Workspace: other, Object: "opportunity", ID: mine.ID, Fields: records.Fields{"name": "Theirs"}})
		require.ErrorIs(t, err, records.ErrNotFound)
		_, err = e.p.Delete(ctx, records.Write{Workspace: other, Object: "opportunity", ID: mine.ID})
		require.ErrorIs(t, err, records.ErrNotFound)
		recs, next, err := e.p.List(ctx, records.ListQuery{Workspace: other, Object: "opportunity"})
		require.NoError(t, err)
		require.Empty(t, recs)
		require.Empty(t, next)
		evs, err := e.p.Events(ctx, other, "", 10)
		require.NoError(t, err)
		require.Empty(t, evs)

		// The same external id in another workspace is another record.
		theirs, created, err := e.p.Upsert(ctx, records.Write{Workspace: other, Object: "opportunity", ExternalID: "X-1",
			Fields: records.Fields{"name": "Theirs"}})
		require.NoError(t, err)
		require.True(t, created)
		require.NotEqual(t, mine.ID, theirs.ID)
		got, err := e.p.Get(ctx, e.ws, "opportunity", mine.ID)
		require.NoError(t, err)
		require.Equal(t, mine, got)

		_, err = e.p.Create(ctx, records.Write{Workspace: "ws_missing", Object: "lead", Fields: records.Fields{"name": "x"}})
		require.ErrorIs(t, err, records.ErrNotFound)
		_, err = e.p.Get(ctx, e.ws, "planet", mine.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
	})
}

func TestEventsFeedAndList(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{}, "starter")
		ctx := context.Background()
		var ids []string
		for i := range 5 {
			rec, err := e.p.Create(ctx, e.opp(records.Fields{"name": fmt.Sprintf("deal %d", i), "stage": "Proposal"}))
			require.NoError(t, err)
			ids = append(ids, rec.ID)
		}
		w := e.opp(records.Fields{"stage": "Closed Won"})
		w.ID = ids[1]
		_, err := e.p.Update(ctx, w)
		require.NoError(t, err)

		all := e.events(t)
		require.Len(t, all, 6)
		for i := 1; i < len(all); i++ {
			require.Less(t, all[i-1].ID, all[i].ID)
		}
		after, err := e.p.Events(ctx, e.ws, all[2].ID, 10)
		require.NoError(t, err)
		require.Equal(t, all[3:], after)
		require.Equal(t, records.EventUpdated, after[2].Type)
		require.Equal(t, ids[1], after[2].RecordID)

		// The event's JSON is the webhook payload.
		b, err := json.Marshal(after[2])
		require.NoError(t, err)
		var payload struct {
			Type string `json:"type"`
			Data struct {
				Object  string                    `json:"object"`
				Record  map[string]any            `json:"record"`
				Changes map[string]map[string]any `json:"changes"`
				Source  string                    `json:"source"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(b, &payload))
		require.Equal(t, "opportunity", payload.Data.Object)
		require.Equal(t, ids[1], payload.Data.Record["id"])
		require.Equal(t, 2.0, payload.Data.Record["version"])
		require.Equal(t, map[string]any{"from": "Proposal", "to": "Closed Won"}, payload.Data.Changes["stage"])
		require.Equal(t, "api", payload.Data.Source)

		var listed []string
		cursor := ""
		for {
			page, next, err := e.p.List(ctx, records.ListQuery{Workspace: e.ws, Object: "opportunity", Limit: 2, After: cursor})
			require.NoError(t, err)
			for _, r := range page {
				listed = append(listed, r.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		require.Equal(t, ids, listed)
		won, _, err := e.p.List(ctx, records.ListQuery{Workspace: e.ws, Object: "opportunity", Filter: map[string]string{"stage": "Closed Won"}})
		require.NoError(t, err)
		require.Len(t, won, 1)
		_, _, err = e.p.List(ctx, records.ListQuery{Workspace: e.ws, Object: "opportunity", Filter: map[string]string{"colour": "red"}})
		require.Equal(t, map[string]string{"colour": "unknown_field"}, fieldCodes(t, err))
	})
}
