package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "crmkit-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "crm.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	ws := &records.Workspace{Name: "Acme", Plan: "starter"}
	if err := st.CreateWorkspace(ctx, ws); err != nil {
		log.Fatal(err)
	}
	got, err := st.GetWorkspace(ctx, ws.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Dialect(), got.Name, got.Plan)
	// Output: sqlite Acme starter
}

func ExampleStore_InTx() {
	dir, err := os.MkdirTemp("", "crmkit-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "crm.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ws := &records.Workspace{Name: "Acme", Plan: "starter"}
	if err := st.CreateWorkspace(ctx, ws); err != nil {
		log.Fatal(err)
	}

	// A plan that holds one record: the second reservation is refused.
	for i := range 2 {
		err := st.InTx(ctx, func(ctx context.Context, tx records.Tx) error {
			if err := tx.ReserveRecords(ctx, ws.ID, 1, 1); err != nil {
				return err
			}
			r := &records.Record{ID: records.NewID("rec"), Workspace: ws.ID, Object: "lead", Version: 1,
				Fields: records.Fields{"name": fmt.Sprint("lead ", i)}}
			if err := tx.InsertRecord(ctx, r, "", nil); err != nil {
				return err
			}
			return tx.InsertEvents(ctx, &records.Event{Workspace: ws.ID, Type: records.EventCreated, Object: "lead", Record: r})
		})
		fmt.Println(i, err == nil, errors.Is(err, records.ErrPlanLimit))
	}
	events, err := st.ListEvents(ctx, ws.ID, "", 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(events), events[0].Record.Fields["name"])
	// Output:
	// 0 true false
	// 1 false true
	// 1 lead 0
}
