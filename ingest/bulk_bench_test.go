package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// benchDeal is an object of ten fields, as a finance team's deals.
var benchDeal = records.Object{Name: "deal", ExternalID: "external_id", Fields: []records.Field{
	{Name: "name", Type: records.TypeString, Required: true},
	{Name: "amount", Type: records.TypeNumber},
	{Name: "stage", Type: records.TypePicklist, Options: []string{"Proposal", "Negotiation", "Closed Won"}},
	{Name: "close_date", Type: records.TypeDate},
	{Name: "probability", Type: records.TypeInteger},
	{Name: "region", Type: records.TypeString},
	{Name: "owner", Type: records.TypeString},
	{Name: "email", Type: records.TypeEmail},
	{Name: "website", Type: records.TypeURL},
	{Name: "external_id", Type: records.TypeString},
}}

func benchRows(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"name":"Deal %d","amount":%d.5,"stage":"Proposal","close_date":"2025-06-30","probability":40,"region":"EMEA","owner":"owner%d","email":"buyer%d@example.com","website":"https://example%d.com","external_id":"EXT-%d"}`+"\n",
			i, i, i%50, i, i%1000, i)
	}
	return b.Bytes()
}

func benchRowCount() int {
	if s := os.Getenv("CRMKIT_BENCH_BULK_ROWS"); s != "" {
		var n int
		_, _ = fmt.Sscan(s, &n)
		return n
	}
	return 100_000
}

// BenchmarkBulkUpsert runs an upsert job of 100,000 ten-field rows
// (CRMKIT_BENCH_BULK_ROWS to change) through the whole pipeline, and, as
// its baseline in the same run, writes the same rows raw into a table
// shaped like records: COPY on Postgres, prepared multi-row inserts on
// SQLite. Both report records/s.
func BenchmarkBulkUpsert(b *testing.B) {
	n := benchRowCount()
	data := benchRows(n)
	for _, d := range []string{"sqlite", "postgres"} {
		b.Run(d, func(b *testing.B) {
			dsn := testdb.SQLiteDSN(b)
			if d == "postgres" {
				dsn = testdb.PostgresDSN(b)
			}
			ctx := context.Background()
			st, err := store.Open(ctx, dsn)
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			b.Run("pipeline", func(b *testing.B) {
				p, err := records.NewPipeline(records.Config{Store: st, Objects: []records.Object{benchDeal}})
				require.NoError(b, err)
				bk, err := ingest.NewBulk(ingest.BulkConfig{Store: st, Pipeline: p})
				require.NoError(b, err)
				for b.Loop() {
					b.StopTimer()
					ws := &records.Workspace{Name: "Bench", Plan: records.PlanEnterprise}
					require.NoError(b, st.CreateWorkspace(ctx, ws))
					j, err := bk.Create(ctx, ws.ID, records.Actor{Kind: "api_key", ID: "key_bench"},
						ingest.JobInput{Object: "deal", Operation: records.OpUpsert, Format: ingest.FormatNDJSON})
					require.NoError(b, err)
					_, err = bk.Upload(ctx, ws.ID, j.ID, bytes.NewReader(data))
					require.NoError(b, err)
					_, err = bk.Close(ctx, ws.ID, j.ID)
					require.NoError(b, err)
					b.StartTimer()
					require.NoError(b, bk.Run(ctx, j.ID))
					b.StopTimer()
					j, err = bk.Get(ctx, ws.ID, j.ID)
					require.NoError(b, err)
					require.EqualValues(b, n, j.Succeeded, "%+v", j)
					b.StartTimer()
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
			})
			b.Run("raw", func(b *testing.B) {
				rawTable(b, st)
				for b.Loop() {
					b.StopTimer()
					_, err := st.SQLDB().ExecContext(ctx, "DELETE FROM bench_records")
					require.NoError(b, err)
					b.StartTimer()
					rawInsert(b, st, data)
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
			})
		})
	}
}

// rawTable makes bench_records, shaped like records: the same columns,
// keys and indexes.
func rawTable(b *testing.B, st *store.Store) {
	typ := map[bool][3]string{true: {"TEXT COLLATE \"C\"", "JSONB", "TIMESTAMPTZ"}, false: {"TEXT", "TEXT", "TEXT"}}[st.Dialect() == store.DialectPostgres]
	for _, q := range []string{
		`CREATE TABLE bench_records (id ` + typ[0] + ` PRIMARY KEY, workspace_id ` + typ[0] + ` NOT NULL, object ` + typ[0] + ` NOT NULL,
			external_id ` + typ[0] + `, version BIGINT NOT NULL, fields ` + typ[1] + ` NOT NULL, created_at ` + typ[2] + ` NOT NULL,
			updated_at ` + typ[2] + ` NOT NULL, UNIQUE (workspace_id, object, external_id))`,
		`CREATE INDEX bench_records_list_idx ON bench_records (workspace_id, object, id)`,
		`CREATE INDEX bench_records_updated_idx ON bench_records (workspace_id, object, updated_at, id)`,
	} {
		_, err := st.SQLDB().Exec(q)
		require.NoError(b, err)
	}
}

func rawInsert(b *testing.B, st *store.Store, data []byte) {
	ctx := context.Background()
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	now := time.Now().UTC()
	row := func(i int, l []byte) []any {
		return []any{records.NewID("rec"), "ws_bench", "deal", fmt.Sprintf("EXT-%d", i), int64(1), string(l), now, now}
	}
	if st.Dialect() == store.DialectPostgres {
		conn, err := st.SQLDB().Conn(ctx)
		require.NoError(b, err)
		defer conn.Close()
		require.NoError(b, conn.Raw(func(dc any) error {
			pc := dc.(*stdlib.Conn).Conn()
			_, err := pc.CopyFrom(ctx, pgx.Identifier{"bench_records"},
				[]string{"id", "workspace_id", "object", "external_id", "version", "fields", "created_at", "updated_at"},
				pgx.CopyFromSlice(len(lines), func(i int) ([]any, error) { return row(i, lines[i]), nil }))
			return err
		}))
		return
	}
	const per = 100
	tx, err := st.SQLDB().BeginTx(ctx, nil)
	require.NoError(b, err)
	q := "INSERT INTO bench_records (id, workspace_id, object, external_id, version, fields, created_at, updated_at) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", per), ",")
	stmt, err := tx.PrepareContext(ctx, q)
	require.NoError(b, err)
	args := make([]any, 0, 8*per)
	for i, l := range lines {
		r := row(i, l)
		r[6], r[7] = now.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano)
		args = append(args, r...)
		if len(args) == cap(args) {
			_, err := stmt.ExecContext(ctx, args...)
			require.NoError(b, err)
			args = args[:0]
		}
	}
	if len(args) > 0 {
		_, err := tx.ExecContext(ctx, "INSERT INTO bench_records (id, workspace_id, object, external_id, version, fields, created_at, updated_at) VALUES "+
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", len(args)/8), ","), args...)
		require.NoError(b, err)
	}
	require.NoError(b, tx.Commit())
}
