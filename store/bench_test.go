package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
)

// BenchmarkSQLitePool compares SQLite pool sizes under parallel writers (one
// record, audit entry, event and job per transaction) and parallel readers
// beside them: the figures behind the default pool size.
func BenchmarkSQLitePool(b *testing.B) {
	for _, conns := range []int{1, 2, 4, 8} {
		for _, mix := range []struct {
			name   string
			writes int // of every 10 operations
		}{{"writes", 10}, {"reads80", 2}} {
			b.Run(fmt.Sprintf("conns=%d/%s", conns, mix.name), func(b *testing.B) {
				ctx := context.Background()
				st := open(b, testdb.SQLiteDSN(b), store.WithMaxOpenConns(conns))
				ws := storetest.Workspace(b, st, "pro")
				seed := storetest.NewRecord(ws.ID, "lead", records.Fields{"name": "seed"})
				storetest.Insert(b, st, seed, "", nil)
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						i++
						if i%10 >= mix.writes {
							if _, err := st.GetRecord(ctx, ws.ID, "lead", seed.ID); err != nil {
								b.Error(err)
								return
							}
							continue
						}
						r := storetest.NewRecord(ws.ID, "lead", records.Fields{"name": "x"})
						err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
							if err := tx.ReserveRecords(ctx, ws.ID, 1, 0); err != nil {
								return err
							}
							if err := tx.InsertRecord(ctx, r, "", nil); err != nil {
								return err
							}
							if err := tx.InsertAudit(ctx, &records.AuditEntry{Workspace: ws.ID, Object: "lead", RecordID: r.ID, Action: "create"}); err != nil {
								return err
							}
							return tx.InsertEvents(ctx, &records.Event{Workspace: ws.ID, Type: records.EventCreated, Object: "lead", Record: r})
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
