package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

func testWorkspaces(t *testing.T, st Store) {
	ctx := context.Background()
	w := &records.Workspace{Name: "Acme", Plan: "pro"}
	require.NoError(t, st.CreateWorkspace(ctx, w))
	require.NotEmpty(t, w.ID)
	require.False(t, w.CreatedAt.IsZero())

	got, err := st.GetWorkspace(ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, w.ID, got.ID)
	require.Equal(t, "Acme", got.Name)
	require.Equal(t, "pro", got.Plan)
	require.True(t, w.CreatedAt.Equal(got.CreatedAt), "%s != %s", w.CreatedAt, got.CreatedAt)

	err = st.CreateWorkspace(ctx, &records.Workspace{ID: w.ID, Name: "again"})
	require.ErrorIs(t, err, records.ErrDuplicate)

	require.NoError(t, st.SetWorkspacePlan(ctx, w.ID, "enterprise"))
	got, err = st.GetWorkspace(ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, "enterprise", got.Plan)

	_, err = st.GetWorkspace(ctx, "ws_missing")
	require.ErrorIs(t, err, records.ErrNotFound)
	require.ErrorIs(t, st.SetWorkspacePlan(ctx, "ws_missing", "pro"), records.ErrNotFound)
}

func testInsertAndGet(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	r := NewRecord(ws.ID, "account", records.Fields{
		"name": "Acme", "employees": 42.0, "active": true, "note": nil, "ratio": 0.5,
	})
	Insert(t, st, r, "ext-1", nil)

	for name, get := range map[string]func() (*records.Record, error){
		"by id":          func() (*records.Record, error) { return st.GetRecord(ctx, ws.ID, "account", r.ID) },
		"by external id": func() (*records.Record, error) { return st.GetRecordByExternalID(ctx, ws.ID, "account", "ext-1") },
	} {
		t.Run(name, func(t *testing.T) {
			got, err := get()
			require.NoError(t, err)
			require.Equal(t, r.ID, got.ID)
			require.Equal(t, ws.ID, got.Workspace)
			require.Equal(t, "account", got.Object)
			require.Equal(t, int64(1), got.Version)
			require.Equal(t, r.Fields, got.Fields)
			require.True(t, r.CreatedAt.Equal(got.CreatedAt), "%s != %s", r.CreatedAt, got.CreatedAt)
			require.True(t, r.UpdatedAt.Equal(got.UpdatedAt), "%s != %s", r.UpdatedAt, got.UpdatedAt)
		})
	}

	missing := []struct {
		name string
		get  func() (*records.Record, error)
	}{
		{"other workspace", func() (*records.Record, error) { return st.GetRecord(ctx, other.ID, "account", r.ID) }},
		{"other object", func() (*records.Record, error) { return st.GetRecord(ctx, ws.ID, "contact", r.ID) }},
		{"unknown id", func() (*records.Record, error) { return st.GetRecord(ctx, ws.ID, "account", "rec_missing") }},
		{"external id in other workspace", func() (*records.Record, error) {
			return st.GetRecordByExternalID(ctx, other.ID, "account", "ext-1")
		}},
		{"unknown external id", func() (*records.Record, error) { return st.GetRecordByExternalID(ctx, ws.ID, "account", "nope") }},
	}
	for _, tc := range missing {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.get()
			require.ErrorIs(t, err, records.ErrNotFound)
		})
	}

	t.Run("nil fields read back empty", func(t *testing.T) {
		r := NewRecord(ws.ID, "account", nil)
		Insert(t, st, r, "", nil)
		got, err := st.GetRecord(ctx, ws.ID, "account", r.ID)
		require.NoError(t, err)
		require.Equal(t, records.Fields{}, got.Fields)
	})
}

func testDuplicates(t *testing.T, st Store) {
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	Insert(t, st, NewRecord(ws.ID, "contact", records.Fields{"email": "a@example.com"}), "ext-1",
		map[string]string{"email": "a@example.com"})

	tests := []struct {
		name     string
		ws, obj  string
		ext      string
		unique   map[string]string
		wantFail bool
	}{
		{"same external id", ws.ID, "contact", "ext-1", nil, true},
		{"same unique value", ws.ID, "contact", "ext-2", map[string]string{"email": "a@example.com"}, true},
		{"same external id, other object", ws.ID, "lead", "ext-1", map[string]string{"email": "a@example.com"}, false},
		{"same external id, other workspace", other.ID, "contact", "ext-1", map[string]string{"email": "a@example.com"}, false},
		{"same value in another unique field", ws.ID, "contact", "ext-3", map[string]string{"phone": "a@example.com"}, false},
		{"no external id twice", ws.ID, "contact", "", nil, false},
		{"no external id thrice", ws.ID, "contact", "", nil, false},
		{"empty unique value is not constrained", ws.ID, "contact", "ext-4", map[string]string{"email": ""}, false},
		{"empty unique value again", ws.ID, "contact", "ext-5", map[string]string{"email": ""}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := insert(st, NewRecord(tc.ws, tc.obj, nil), tc.ext, tc.unique)
			if tc.wantFail {
				require.ErrorIs(t, err, records.ErrDuplicate)
			} else {
				require.NoError(t, err)
			}
		})
	}

	t.Run("same record id", func(t *testing.T) {
		r := NewRecord(ws.ID, "contact", nil)
		Insert(t, st, r, "", nil)
		require.ErrorIs(t, insert(st, r, "", nil), records.ErrDuplicate)
	})

	t.Run("transaction stays usable after a duplicate", func(t *testing.T) {
		r := NewRecord(ws.ID, "contact", nil)
		err := st.InTx(context.Background(), func(ctx context.Context, tx records.Tx) error {
			err := tx.InsertRecord(ctx, NewRecord(ws.ID, "contact", nil), "ext-1", nil)
			require.ErrorIs(t, err, records.ErrDuplicate)
			return tx.InsertRecord(ctx, r, "ext-after", nil)
		})
		require.NoError(t, err)
		_, err = st.GetRecord(context.Background(), ws.ID, "contact", r.ID)
		require.NoError(t, err)
	})
}

func testUpdate(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	r := NewRecord(ws.ID, "contact", records.Fields{"email": "a@example.com", "name": "A"})
	Insert(t, st, r, "ext-a", map[string]string{"email": "a@example.com"})
	b := NewRecord(ws.ID, "contact", records.Fields{"email": "b@example.com"})
	Insert(t, st, b, "ext-b", map[string]string{"email": "b@example.com"})

	update := func(r *records.Record, ext string, unique map[string]string) error {
		return st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			return tx.UpdateRecord(ctx, r, ext, unique)
		})
	}
	next := func(r *records.Record, fields records.Fields) *records.Record {
		c := *r
		c.Version = r.Version + 1
		c.UpdatedAt = r.UpdatedAt.Add(time.Second)
		c.Fields = fields
		return &c
	}

	v2 := next(r, records.Fields{"email": "c@example.com", "name": "A2"})
	require.NoError(t, update(v2, "ext-a2", map[string]string{"email": "c@example.com"}))
	got, err := st.GetRecord(ctx, ws.ID, "contact", r.ID)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Version)
	require.Equal(t, v2.Fields, got.Fields)
	require.True(t, got.CreatedAt.Equal(r.CreatedAt))
	require.True(t, got.UpdatedAt.Equal(v2.UpdatedAt))
	_, err = st.GetRecordByExternalID(ctx, ws.ID, "contact", "ext-a2")
	require.NoError(t, err)
	_, err = st.GetRecordByExternalID(ctx, ws.ID, "contact", "ext-a")
	require.ErrorIs(t, err, records.ErrNotFound)

	t.Run("old unique value is free again", func(t *testing.T) {
		require.NoError(t, insert(st, NewRecord(ws.ID, "contact", nil), "", map[string]string{"email": "a@example.com"}))
	})

	tests := []struct {
		name string
		r    *records.Record
		ext  string
		uniq map[string]string
		want error
	}{
		{"stale version", next(r, records.Fields{}), "ext-a2", nil, records.ErrConflict},
		{"missing record", next(NewRecord(ws.ID, "contact", nil), nil), "", nil, records.ErrNotFound},
		{"other workspace", func() *records.Record { c := next(v2, nil); c.Workspace = other.ID; return c }(), "", nil, records.ErrNotFound},
		{"external id of another record", next(b, nil), "ext-a2", nil, records.ErrDuplicate},
		{"unique value of another record", next(b, nil), "ext-b", map[string]string{"email": "c@example.com"}, records.ErrDuplicate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := update(tc.r, tc.ext, tc.uniq)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func testDelete(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	r := NewRecord(ws.ID, "contact", nil)
	Insert(t, st, r, "ext-1", map[string]string{"email": "a@example.com"})

	del := func(workspace, object, id string, version int64) error {
		return st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			return tx.DeleteRecord(ctx, workspace, object, id, version)
		})
	}
	require.ErrorIs(t, del(ws.ID, "contact", r.ID, 2), records.ErrConflict)
	require.ErrorIs(t, del(other.ID, "contact", r.ID, 1), records.ErrNotFound)
	require.ErrorIs(t, del(ws.ID, "lead", r.ID, 1), records.ErrNotFound)
	require.NoError(t, del(ws.ID, "contact", r.ID, 1))
	_, err := st.GetRecord(ctx, ws.ID, "contact", r.ID)
	require.ErrorIs(t, err, records.ErrNotFound)
	require.ErrorIs(t, del(ws.ID, "contact", r.ID, 1), records.ErrNotFound)

	// The external id and unique values went with the record.
	require.NoError(t, insert(st, NewRecord(ws.ID, "contact", nil), "ext-1", map[string]string{"email": "a@example.com"}))

	t.Run("version 0 matches any", func(t *testing.T) {
		r := NewRecord(ws.ID, "contact", nil)
		r.Version = 7
		Insert(t, st, r, "", nil)
		require.NoError(t, del(ws.ID, "contact", r.ID, 0))
	})
}

func testReserve(t *testing.T, st Store) {
	ctx := context.Background()
	ws := Workspace(t, st, "starter")
	reserve := func(workspace string, delta, max int64) error {
		return st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			return tx.ReserveRecords(ctx, workspace, delta, max)
		})
	}
	count := func() int64 {
		n, err := st.RecordCount(ctx, ws.ID)
		require.NoError(t, err)
		return n
	}
	steps := []struct {
		name         string
		delta, max   int64
		want         error
		wantCountNow int64
	}{
		{"first", 1, 3, nil, 1},
		{"two at once", 2, 3, nil, 3},
		{"at the cap", 1, 3, records.ErrPlanLimit, 3},
		{"batch past the cap", 2, 4, records.ErrPlanLimit, 3},
		{"raised cap", 1, 4, nil, 4},
		{"delete passes above cap", -1, 2, nil, 3},
		{"no cap", 100, 0, nil, 103},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := reserve(ws.ID, s.delta, s.max)
			if s.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, s.want)
			}
			require.Equal(t, s.wantCountNow, count())
		})
	}
	t.Run("unknown workspace", func(t *testing.T) {
		require.ErrorIs(t, reserve("ws_missing", 1, 10), records.ErrNotFound)
		require.ErrorIs(t, reserve("ws_missing", 1, 0), records.ErrNotFound)
	})
	t.Run("rolled back with its transaction", func(t *testing.T) {
		before := count()
		err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			require.NoError(t, tx.ReserveRecords(ctx, ws.ID, 1, 0))
			return errors.New("abort")
		})
		require.Error(t, err)
		require.Equal(t, before, count())
	})
}

// testReserveConcurrent has many writers race for the last places under a
// cap; exactly the cap's worth must win.
func testReserveConcurrent(t *testing.T, st Store) {
	ctx := context.Background()
	ws := Workspace(t, st, "starter")
	const writers, limit = 16, 5
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, full int
		other    []error
	)
	for range writers {
		wg.Go(func() {
			err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
				if err := tx.ReserveRecords(ctx, ws.ID, 1, limit); err != nil {
					return err
				}
				return tx.InsertRecord(ctx, NewRecord(ws.ID, "lead", nil), "", nil)
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, records.ErrPlanLimit):
				full++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	require.Empty(t, other)
	require.Equal(t, limit, ok)
	require.Equal(t, writers-limit, full)
	recs, err := st.ListRecords(ctx, records.ListQuery{Workspace: ws.ID, Object: "lead", Limit: 100})
	require.NoError(t, err)
	require.Len(t, recs, limit)
}

func testRollback(t *testing.T, st Store, o Options) {
	ctx := context.Background()
	ws := Workspace(t, st, "pro")
	r := NewRecord(ws.ID, "lead", nil)
	boom := errors.New("boom")
	err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
		require.NoError(t, tx.ReserveRecords(ctx, ws.ID, 1, 0))
		require.NoError(t, tx.InsertRecord(ctx, r, "ext", map[string]string{"email": "x"}))
		require.NoError(t, tx.InsertAudit(ctx, &records.AuditEntry{Workspace: ws.ID, Object: "lead", RecordID: r.ID, Action: "create"}))
		require.NoError(t, tx.InsertEvents(ctx, &records.Event{Workspace: ws.ID, Type: records.EventCreated, Object: "lead", Record: r}))
		o.requireFanoutJobs(t, ctx, st, 1, "job visible inside its transaction")
		return boom
	})
	require.ErrorIs(t, err, boom)

	_, err = st.GetRecord(ctx, ws.ID, "lead", r.ID)
	require.ErrorIs(t, err, records.ErrNotFound)
	audit, err := st.ListAudit(ctx, ws.ID, "", "", 10)
	require.NoError(t, err)
	require.Empty(t, audit)
	events, err := st.ListEvents(ctx, ws.ID, "", 10)
	require.NoError(t, err)
	require.Empty(t, events)
	o.requireFanoutJobs(t, ctx, st, 0)
	n, err := st.RecordCount(ctx, ws.ID)
	require.NoError(t, err)
	require.Zero(t, n)
	// The external id and unique value are free.
	Insert(t, st, NewRecord(ws.ID, "lead", nil), "ext", map[string]string{"email": "x"})
}

func testSavepoint(t *testing.T, st Store, o Options) {
	ctx := context.Background()
	ws := Workspace(t, st, "pro")
	kept, undone, afterSQLError, nested := NewRecord(ws.ID, "lead", nil), NewRecord(ws.ID, "lead", nil),
		NewRecord(ws.ID, "lead", nil), NewRecord(ws.ID, "lead", nil)
	boom := errors.New("boom")
	err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
		require.NoError(t, tx.Savepoint(ctx, func(ctx context.Context) error {
			return tx.InsertRecord(ctx, kept, "", nil)
		}))
		err := tx.Savepoint(ctx, func(ctx context.Context) error {
			require.NoError(t, tx.InsertRecord(ctx, undone, "", nil))
			require.NoError(t, tx.InsertEvents(ctx, &records.Event{Workspace: ws.ID, Type: records.EventCreated, Object: "lead", Record: undone}))
			return boom
		})
		require.ErrorIs(t, err, boom)
		// A statement that fails in the database (here a foreign key) aborts
		// a Postgres transaction; the savepoint must bring it back.
		err = tx.Savepoint(ctx, func(ctx context.Context) error {
			return tx.InsertRecord(ctx, NewRecord("ws_missing", "lead", nil), "", nil)
		})
		require.Error(t, err)
		require.NoError(t, tx.InsertRecord(ctx, afterSQLError, "", nil))
		// An InTx inside InTx is a savepoint too.
		err = st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			require.NoError(t, tx.InsertRecord(ctx, nested, "", nil))
			return boom
		})
		require.ErrorIs(t, err, boom)
		return nil
	})
	require.NoError(t, err)

	for _, tc := range []struct {
		r    *records.Record
		want error
	}{{kept, nil}, {undone, records.ErrNotFound}, {afterSQLError, nil}, {nested, records.ErrNotFound}} {
		_, err := st.GetRecord(ctx, ws.ID, "lead", tc.r.ID)
		if tc.want == nil {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, tc.want)
		}
	}
	events, err := st.ListEvents(ctx, ws.ID, "", 10)
	require.NoError(t, err)
	require.Empty(t, events)
	o.requireFanoutJobs(t, ctx, st, 0)
}

func testReadsInsideTx(t *testing.T, st Store) {
	ctx := context.Background()
	ws := Workspace(t, st, "pro")
	r := NewRecord(ws.ID, "lead", records.Fields{"name": "x"})
	err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
		require.NoError(t, tx.InsertRecord(ctx, r, "ext", nil))
		got, err := st.GetRecord(ctx, ws.ID, "lead", r.ID)
		require.NoError(t, err)
		require.Equal(t, r.Fields, got.Fields)
		_, err = st.GetRecordByExternalID(ctx, ws.ID, "lead", "ext")
		require.NoError(t, err)
		recs, err := st.ListRecords(ctx, records.ListQuery{Workspace: ws.ID, Object: "lead"})
		require.NoError(t, err)
		require.Len(t, recs, 1)
		return nil
	})
	require.NoError(t, err)
}

func testAudit(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	entries := []*records.AuditEntry{
		{Workspace: ws.ID, Object: "opportunity", RecordID: "rec_a", Action: "create", Source: records.SourceAPI,
			Actor: records.Actor{Kind: "api_key", ID: "key_1"}, Changes: map[string]records.Change{"stage": {From: nil, To: "New"}}, CreatedAt: at},
		{Workspace: ws.ID, Object: "opportunity", RecordID: "rec_b", Action: "create", Source: records.SourceBulk,
			Actor: records.Actor{Kind: "user", ID: "u1"}},
		{Workspace: ws.ID, Object: "opportunity", RecordID: "rec_a", Action: "update", Source: records.SourceUI,
			Actor: records.Actor{Kind: "user", ID: "u1"}, Changes: map[string]records.Change{"stage": {From: "New", To: "Closed Won"}, "amount": {From: 1.0, To: 2.5}}},
		{Workspace: other.ID, Object: "opportunity", RecordID: "rec_c", Action: "create", Source: records.SourceAPI},
	}
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
		return tx.InsertAudit(ctx, entries...)
	}))
	for _, e := range entries {
		require.NotEmpty(t, e.ID)
	}
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx records.Tx) error { return tx.InsertAudit(ctx) }))

	all, err := st.ListAudit(ctx, ws.ID, "", "", 0)
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, entries[0], all[0])
	require.Equal(t, entries[2].Changes, all[2].Changes)

	ofA, err := st.ListAudit(ctx, ws.ID, "rec_a", "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{entries[0].ID, entries[2].ID}, auditIDs(ofA))

	page, err := st.ListAudit(ctx, ws.ID, "", entries[0].ID, 1)
	require.NoError(t, err)
	require.Equal(t, []string{entries[1].ID}, auditIDs(page))

	none, err := st.ListAudit(ctx, ws.ID, "rec_c", "", 10)
	require.NoError(t, err)
	require.Empty(t, none)
}

func auditIDs(es []*records.AuditEntry) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func testEvents(t *testing.T, st Store, o Options) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	r := NewRecord(ws.ID, "opportunity", records.Fields{"stage": "Closed Won", "amount": 1200.5})
	Insert(t, st, r, "", nil)

	var events []*records.Event
	for i := range 5 {
		events = append(events, &records.Event{
			Workspace: ws.ID, Type: records.EventUpdated, Object: "opportunity", Record: r,
			Changes: map[string]records.Change{"n": {From: float64(i), To: float64(i + 1)}},
			Source:  records.SourceConnector, Actor: records.Actor{Kind: "connector", ID: "con_1"},
		})
	}
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
		if err := tx.InsertEvents(ctx, events[:3]...); err != nil {
			return err
		}
		if err := tx.InsertEvents(ctx, events[3:]...); err != nil {
			return err
		}
		return tx.InsertEvents(ctx, &records.Event{Workspace: other.ID, Type: records.EventDeleted, Object: "lead", RecordID: "rec_x"})
	}))
	o.requireFanoutJobs(t, ctx, st, 6)

	all, err := st.ListEvents(ctx, ws.ID, "", 100)
	require.NoError(t, err)
	require.Len(t, all, 5)
	for i, e := range all {
		want := events[i]
		require.Equal(t, want.ID, e.ID, "events come in id order, which is insertion order")
		require.Equal(t, records.EventUpdated, e.Type)
		require.Equal(t, ws.ID, e.Workspace)
		require.Equal(t, "opportunity", e.Object)
		require.Equal(t, r.ID, e.RecordID)
		require.Equal(t, want.Changes, e.Changes)
		require.Equal(t, records.SourceConnector, e.Source)
		require.Equal(t, want.Actor, e.Actor)
		require.True(t, want.CreatedAt.Equal(e.CreatedAt))
		require.Equal(t, r.Fields, e.Record.Fields)
		require.Equal(t, r.Version, e.Record.Version)
	}

	page, err := st.ListEvents(ctx, ws.ID, events[1].ID, 2)
	require.NoError(t, err)
	require.Equal(t, []string{events[2].ID, events[3].ID}, eventIDs(page))
	rest, err := st.ListEvents(ctx, ws.ID, events[4].ID, 2)
	require.NoError(t, err)
	require.Empty(t, rest)

	theirs, err := st.ListEvents(ctx, other.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, theirs, 1)
	require.Equal(t, "rec_x", theirs[0].RecordID)
	require.Equal(t, "lead", theirs[0].Object)

	got, err := st.GetEvent(ctx, ws.ID, events[0].ID)
	require.NoError(t, err)
	require.Equal(t, events[0].ID, got.ID)
	_, err = st.GetEvent(ctx, other.ID, events[0].ID)
	require.ErrorIs(t, err, records.ErrNotFound)

	t.Run("fanout jobs name their events", func(t *testing.T) {
		args, ok := o.jobs(t, ctx, st, records.FanoutArgs{}.Kind())
		if !ok {
			t.Skip("needs Options.Jobs")
		}
		require.Len(t, args, 6)
		for i, e := range events {
			require.JSONEq(t, fmt.Sprintf(`{"event_id":%q,"workspace_id":%q}`, e.ID, ws.ID), string(args[i]))
		}
	})
}

func eventIDs(es []*records.Event) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func testListRecords(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []*records.Record
	for i := range 7 {
		r := NewRecord(ws.ID, "opportunity", records.Fields{
			"stage": []string{"New", "Closed Won"}[i%2], "amount": float64(i * 100), "won": i%2 == 1,
			"owner": fmt.Sprintf("o%d", i%3), "tricky": "x' OR '1'='1",
		})
		r.UpdatedAt = base.Add(time.Duration(i) * time.Hour)
		Insert(t, st, r, "", nil)
		recs = append(recs, r)
	}
	Insert(t, st, NewRecord(ws.ID, "account", records.Fields{"stage": "New"}), "", nil)
	Insert(t, st, NewRecord(other.ID, "opportunity", records.Fields{"stage": "New"}), "", nil)

	idsOf := func(rs []*records.Record) []string {
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.ID
		}
		return ids
	}
	pick := func(idx ...int) []string {
		ids := make([]string, len(idx))
		for i, j := range idx {
			ids[i] = recs[j].ID
		}
		return ids
	}
	q := func(mod func(*records.ListQuery)) records.ListQuery {
		lq := records.ListQuery{Workspace: ws.ID, Object: "opportunity", Limit: 100}
		if mod != nil {
			mod(&lq)
		}
		return lq
	}
	tests := []struct {
		name string
		q    records.ListQuery
		want []string
	}{
		{"all in id order", q(nil), pick(0, 1, 2, 3, 4, 5, 6)},
		{"limit", q(func(q *records.ListQuery) { q.Limit = 2 }), pick(0, 1)},
		{"after cursor", q(func(q *records.ListQuery) { q.After = recs[1].ID; q.Limit = 3 }), pick(2, 3, 4)},
		{"after the last", q(func(q *records.ListQuery) { q.After = recs[6].ID }), []string{}},
		{"string filter", q(func(q *records.ListQuery) { q.Filter = map[string]string{"stage": "Closed Won"} }), pick(1, 3, 5)},
		{"number filter", q(func(q *records.ListQuery) { q.Filter = map[string]string{"amount": "300"} }), pick(3)},
		{"boolean filter", q(func(q *records.ListQuery) { q.Filter = map[string]string{"won": "true"} }), pick(1, 3, 5)},
		{"two filters", q(func(q *records.ListQuery) {
			q.Filter = map[string]string{"stage": "New", "owner": "o0"}
		}), pick(0, 6)},
		{"missing field matches nothing", q(func(q *records.ListQuery) { q.Filter = map[string]string{"nope": "New"} }), []string{}},
		{"quote in a value is data", q(func(q *records.ListQuery) { q.Filter = map[string]string{"stage": "x' OR '1'='1"} }), []string{}},
		{"quote in a stored value matches", q(func(q *records.ListQuery) { q.Filter = map[string]string{"tricky": "x' OR '1'='1"} }), pick(0, 1, 2, 3, 4, 5, 6)},
		{"updated since is inclusive", q(func(q *records.ListQuery) { q.UpdatedSince = base.Add(4 * time.Hour) }), pick(4, 5, 6)},
		{"updated since in another zone", q(func(q *records.ListQuery) {
			q.UpdatedSince = base.Add(5 * time.Hour).In(time.FixedZone("x", 3*3600))
		}), pick(5, 6)},
		{"everything at once", q(func(q *records.ListQuery) {
			q.Filter = map[string]string{"stage": "Closed Won"}
			q.UpdatedSince = base.Add(2 * time.Hour)
			q.After = recs[3].ID
			q.Limit = 1
		}), pick(5)},
		{"other object", records.ListQuery{Workspace: ws.ID, Object: "lead"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ListRecords(ctx, tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.want, idsOf(got))
		})
	}

	t.Run("default limit", func(t *testing.T) {
		got, err := st.ListRecords(ctx, records.ListQuery{Workspace: ws.ID, Object: "opportunity"})
		require.NoError(t, err)
		require.Len(t, got, 7)
	})

	for _, name := range []string{"stage') = 'New' OR 1=1 --", "a.b", "$", "", "stage\"", "na me"} {
		t.Run("field name refused: "+name, func(t *testing.T) {
			_, err := st.ListRecords(ctx, q(func(q *records.ListQuery) { q.Filter = map[string]string{name: "New"} }))
			require.ErrorIs(t, err, records.ErrValidation)
			var ve *records.ValidationError
			require.ErrorAs(t, err, &ve)
		})
	}
}

// testWriteRow checks that one WriteRow does what the separate calls do,
// and fails as they fail, leaving nothing of the row behind. WriteRow is
// optional (records.RowTx): a store whose transactions lack it has the
// pipeline make the separate calls, which the other cases cover.
func testWriteRow(t *testing.T, st Store, o Options) {
	ctx := context.Background()
	var hasRowTx bool
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
		_, hasRowTx = tx.(records.RowTx)
		return nil
	}))
	if !hasRowTx {
		t.Skip("the store's transactions are not records.RowTx")
	}
	ws := Workspace(t, st, "starter")
	const limit = 3
	row := func(r *records.Record, create bool, ext string, unique map[string]string) *records.RowWrite {
		action, typ := "update", records.EventUpdated
		if create {
			action, typ = "create", records.EventCreated
		}
		actor := records.Actor{Kind: "api_key", ID: "key_1"}
		return &records.RowWrite{
			Record: r, Create: create, ExternalID: ext, Unique: unique, Reserve: create, Max: limit,
			Audit: &records.AuditEntry{
				Workspace: r.Workspace, Object: r.Object, RecordID: r.ID, Action: action,
				Source: records.SourceAPI, Actor: actor, Changes: map[string]records.Change{"name": {To: r.Fields["name"]}},
			},
			Event: &records.Event{
				Workspace: r.Workspace, Type: typ, Object: r.Object, Record: r, Source: records.SourceAPI, Actor: actor,
			},
		}
	}
	write := func(w *records.RowWrite) error {
		return st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			rt := tx.(records.RowTx)
			if err := rt.WriteRow(ctx, w); err != nil {
				return err
			}
			return rt.EnqueueFanout(ctx, w.Event)
		})
	}
	// counts answers the records, audit entries, events and fan-out jobs
	// of ws, and its plan count; the jobs as 0 when o cannot count them.
	counts := func() []int {
		n, err := st.RecordCount(ctx, ws.ID)
		require.NoError(t, err)
		recs, err := st.ListRecords(ctx, records.ListQuery{Workspace: ws.ID, Object: "contact", Limit: 100})
		require.NoError(t, err)
		audit, err := st.ListAudit(ctx, ws.ID, "", "", 100)
		require.NoError(t, err)
		events, err := st.ListEvents(ctx, ws.ID, "", 100)
		require.NoError(t, err)
		jobs, _ := o.jobs(t, ctx, st, records.FanoutArgs{}.Kind())
		return []int{len(recs), len(audit), len(events), len(jobs), int(n)}
	}
	// want is a counts answer, with the jobs as 0 when o cannot count them.
	want := func(c ...int) []int {
		if o.Jobs == nil {
			c[3] = 0
		}
		return c
	}

	a := NewRecord(ws.ID, "contact", records.Fields{"name": "A", "email": "a@example.com"})
	wa := row(a, true, "ext-a", map[string]string{"email": "a@example.com"})
	require.NoError(t, write(wa))
	require.Equal(t, want(1, 1, 1, 1, 1), counts())
	got, err := st.GetRecord(ctx, ws.ID, "contact", a.ID)
	require.NoError(t, err)
	require.Equal(t, a.Fields, got.Fields)
	audit, err := st.ListAudit(ctx, ws.ID, a.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, audit, 1)
	require.Equal(t, wa.Audit.ID, audit[0].ID)
	require.Equal(t, "create", audit[0].Action)
	require.Equal(t, wa.Audit.Changes, audit[0].Changes)
	ev, err := st.GetEvent(ctx, ws.ID, wa.Event.ID)
	require.NoError(t, err)
	require.Equal(t, a.ID, ev.RecordID)
	require.Equal(t, a.Fields, ev.Record.Fields)

	b := NewRecord(ws.ID, "contact", records.Fields{"name": "B"})
	require.NoError(t, write(row(b, true, "ext-b", nil)))
	require.Equal(t, want(2, 2, 2, 2, 2), counts())

	next := func(r *records.Record, fields records.Fields) *records.Record {
		c := *r
		c.Version = r.Version + 1
		c.UpdatedAt = r.UpdatedAt.Add(time.Second)
		c.Fields = fields
		return &c
	}
	a2 := next(a, records.Fields{"name": "A2", "email": "c@example.com"})
	require.NoError(t, write(row(a2, false, "ext-a2", map[string]string{"email": "c@example.com"})))
	require.Equal(t, want(2, 3, 3, 3, 2), counts())
	got, err = st.GetRecordByExternalID(ctx, ws.ID, "contact", "ext-a2")
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Version)
	require.Equal(t, a2.Fields, got.Fields)
	audit, err = st.ListAudit(ctx, ws.ID, a.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, audit, 2)
	require.Equal(t, "update", audit[1].Action)

	tests := []struct {
		name string
		w    *records.RowWrite
		want error
	}{
		{"create: external id of another record", row(NewRecord(ws.ID, "contact", nil), true, "ext-b", nil), records.ErrDuplicate},
		{"create: id of another record", row(func() *records.Record { c := *b; return &c }(), true, "", nil), records.ErrDuplicate},
		{"create: unique value of another record", row(NewRecord(ws.ID, "contact", nil), true, "", map[string]string{"email": "c@example.com"}), records.ErrDuplicate},
		{"create: unknown workspace", row(NewRecord("ws_missing", "contact", nil), true, "", nil), records.ErrNotFound},
		{"update: stale version", row(next(a, records.Fields{"name": "A3"}), false, "ext-a2", nil), records.ErrConflict},
		{"update: missing record", row(next(NewRecord(ws.ID, "contact", nil), nil), false, "", nil), records.ErrNotFound},
		{"update: external id of another record", row(next(b, nil), false, "ext-a2", nil), records.ErrDuplicate},
		{"update: unique value of another record", row(next(b, nil), false, "ext-b", map[string]string{"email": "c@example.com"}), records.ErrDuplicate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, write(tc.w), tc.want)
			require.Equal(t, want(2, 3, 3, 3, 2), counts())
		})
	}

	t.Run("old unique value is free again", func(t *testing.T) {
		require.NoError(t, write(row(NewRecord(ws.ID, "contact", nil), true, "", map[string]string{"email": "a@example.com"})))
		require.Equal(t, want(3, 4, 4, 4, 3), counts())
	})
	t.Run("plan limit", func(t *testing.T) {
		require.ErrorIs(t, write(row(NewRecord(ws.ID, "contact", nil), true, "", nil)), records.ErrPlanLimit)
		require.Equal(t, want(3, 4, 4, 4, 3), counts())
	})
	t.Run("without a reservation", func(t *testing.T) {
		w := row(NewRecord(ws.ID, "contact", nil), true, "", nil)
		w.Reserve = false
		require.NoError(t, write(w))
		require.Equal(t, want(4, 5, 5, 5, 3), counts())
	})
}
