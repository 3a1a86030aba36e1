package records_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

// benchDialects runs fn as one sub-benchmark per dialect on a fresh
// database. fn is called once per sub-benchmark (it loops with b.Loop), so
// its setup is not timed.
func benchDialects(b *testing.B, fn func(b *testing.B, dsn string)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, testdb.SQLiteDSN(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, testdb.PostgresDSN(b)) })
}

func benchFields(i int) records.Fields {
	return records.Fields{
		"name": fmt.Sprintf("Deal %d", i), "amount": 1200.5, "stage": "Proposal",
		"close_date": "2025-06-30", "probability": 40.0, "external_id": fmt.Sprintf("EXT-%d", i),
	}
}

// BenchmarkPipelineCreate is one Create through every step: validation,
// rules, plan limit, record, audit entry, event and its fan-out job.
func BenchmarkPipelineCreate(b *testing.B) {
	benchDialects(b, func(b *testing.B, dsn string) {
		e := newEnv(b, dsn, records.Config{Rules: []records.Rule{records.ClosedWonRule()}}, "enterprise")
		e.p = newBenchPipeline(b, e)
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			if _, err := e.p.Create(ctx, e.opp(benchFields(i))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPipelineUpdate changes one field of one record per iteration.
func BenchmarkPipelineUpdate(b *testing.B) {
	benchDialects(b, func(b *testing.B, dsn string) {
		e := newEnv(b, dsn, records.Config{Rules: []records.Rule{records.ClosedWonRule()}}, "enterprise")
		e.p = newBenchPipeline(b, e)
		ctx := context.Background()
		rec, err := e.p.Create(ctx, e.opp(benchFields(0)))
		require.NoError(b, err)
		w := e.opp(nil)
		w.ID = rec.ID
		i := 0
		for b.Loop() {
			i++
			w.Fields = records.Fields{"amount": float64(i)}
			if _, err := e.p.Update(ctx, w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBareInsert is the floor the pipeline is measured against: one
// single-row INSERT of the same record into the records table, through the
// same database handle, in autocommit.
func BenchmarkBareInsert(b *testing.B) {
	benchDialects(b, func(b *testing.B, dsn string) {
		e := newEnv(b, dsn, records.Config{}, "enterprise")
		ctx := context.Background()
		// The barest insert database/sql offers: values bound as parameters,
		// so the server parses and plans the statement once per connection,
		// as the store's own writes do.
		db := e.st.SQLDB()
		query := `INSERT INTO records (id, workspace_id, object, external_id, version, fields, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
		if e.st.Dialect() == "postgres" {
			query = `INSERT INTO records (id, workspace_id, object, external_id, version, fields, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
		}
		i := 0
		for b.Loop() {
			i++
			fields, err := json.Marshal(benchFields(i))
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			if _, err := db.ExecContext(ctx, query,
				records.NewID("rec"), e.ws, "opportunity", fmt.Sprintf("EXT-%d", i), 1, string(fields), now, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFanoutJob is the part of every write's cost the pipeline cannot
// shape: a transaction on the same database handle holding nothing but one
// fan-out job, inserted through River as the store inserts it. On Postgres a
// pipeline create is four round trips: BEGIN, one statement writing the
// reservation, record, audit entry and event, this job, COMMIT.
func BenchmarkFanoutJob(b *testing.B) {
	benchDialects(b, func(b *testing.B, dsn string) {
		e := newEnv(b, dsn, records.Config{}, "enterprise")
		ctx := context.Background()
		db, jobs := e.st.SQLDB(), e.st.JobClient()
		for b.Loop() {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			args := records.FanoutArgs{EventID: records.NewID("evt"), Workspace: e.ws}
			if _, err := jobs.InsertManyFastTx(ctx, tx, []river.InsertManyParams{{Args: args}}); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// newBenchPipeline uses the real clock: the test clock's mutex is not what
// is being measured.
func newBenchPipeline(b *testing.B, e *env) *records.Pipeline {
	b.Helper()
	p, err := records.NewPipeline(records.Config{Store: e.st, Rules: []records.Rule{records.ClosedWonRule()}})
	require.NoError(b, err)
	return p
}

// BenchmarkPipelineBatch is the bulk path: batches of 500 inserts in partial
// mode (a savepoint per row), the mode bulk jobs and imports use. It reports
// rows per second.
func BenchmarkPipelineBatch(b *testing.B) {
	const size = 500
	benchDialects(b, func(b *testing.B, dsn string) {
		e := newEnv(b, dsn, records.Config{}, "enterprise")
		e.p = newBenchPipeline(b, e)
		ctx := context.Background()
		items := make([]records.BatchItem, size)
		n := 0
		for b.Loop() {
			for i := range items {
				n++
				w := e.opp(benchFields(n))
				w.Source = records.SourceBulk
				items[i] = records.BatchItem{Op: records.OpInsert, Write: w}
			}
			res, err := e.p.Batch(ctx, items, records.BatchOptions{})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
	})
}
