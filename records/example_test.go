package records_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// Validating fields against the default objects needs no database.
func ExampleValidator() {
	vd, err := records.NewValidator(records.DefaultObjects())
	if err != nil {
		log.Fatal(err)
	}
	fields, err := vd.Validate("contact", records.Fields{
		"first_name": "  Ada ", "last_name": "Lovelace", "email": "ada@example.com",
	})
	fmt.Printf("%q %v\n", fields["first_name"], err)

	_, err = vd.Validate("opportunity", records.Fields{
		"amount": -5, "stage": "Won", "close_date": "30/06/2025", "colour": "red",
	})
	var ve *records.ValidationError
	if errors.As(err, &ve) {
		for _, f := range ve.Fields {
			fmt.Printf("%s %s: %s\n", f.Field, f.Code, f.Message)
		}
	}
	// Output:
	// "Ada" <nil>
	// name required: is required
	// amount min: must be at least 0
	// stage one_of: must be one of: Prospecting, Qualification, Proposal, Negotiation, Closed Won, Closed Lost
	// close_date date: must be a date like 2006-01-02
	// colour unknown_field: is not a field of opportunity
}

// A deal is created and won on an SQLite store; the Closed Won rule sets
// closed_at in the same write, and the update's event carries both changes.
func ExamplePipeline() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "crmkit-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "crm.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ws := &records.Workspace{Name: "Acme", Plan: "starter"}
	if err := st.CreateWorkspace(ctx, ws); err != nil {
		log.Fatal(err)
	}

	now := time.Date(2025, 6, 30, 14, 0, 0, 0, time.UTC)
	p, err := records.NewPipeline(records.Config{
		Store: st,
		Rules: []records.Rule{records.ClosedWonRule()},
		Clock: func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}
	user := records.Actor{Kind: "user", ID: "usr_1"}

	deal, err := p.Create(ctx, records.Write{
		Workspace: ws.ID, Object: "opportunity", Source: records.SourceUI, Actor: user,
		Fields: records.Fields{"name": "Globex renewal", "amount": 48000, "stage": "Negotiation"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(deal.Version, deal.Fields["stage"], deal.Fields["closed_at"])

	won, err := p.Update(ctx, records.Write{
		Workspace: ws.ID, Object: "opportunity", ID: deal.ID, Source: records.SourceUI, Actor: user,
		Fields: records.Fields{"stage": "Closed Won"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(won.Version, won.Fields["stage"], won.Fields["closed_at"])

	events, err := p.Events(ctx, ws.ID, "", 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Println(e.Type, e.Source, e.Actor.ID)
		for _, name := range slices.Sorted(maps.Keys(e.Changes)) {
			fmt.Printf("  %s: %v -> %v\n", name, e.Changes[name].From, e.Changes[name].To)
		}
	}
	// Output:
	// 1 Negotiation <nil>
	// 2 Closed Won 2025-06-30T14:00:00Z
	// record.created ui usr_1
	//   amount: <nil> -> 48000
	//   name: <nil> -> Globex renewal
	//   stage: <nil> -> Negotiation
	// record.updated ui usr_1
	//   closed_at: <nil> -> 2025-06-30T14:00:00Z
	//   stage: Negotiation -> Closed Won
}
