package connector_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/smartlite/crmkit/connector"
)

// A connector run: the HTTP JSON poller reads a source page by page, and a
// Sync skips what an earlier run wrote and keeps the checkpoint.
func ExampleHTTPPoller() {
	pages := map[string]string{
		"":   `{"data":[{"id":820982911946154508,"updated_at":"2024-05-01T10:00:00Z"},{"id":820982911946154509,"updated_at":"2024-05-01T10:00:00Z"}],"meta":{"next_cursor":"p2"}}`,
		"p2": `{"data":[{"id":820982911946154510,"updated_at":"2024-05-01T10:05:00Z"}],"meta":{"next_cursor":null}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, pages[r.URL.Query().Get("cursor")])
	}))
	defer srv.Close()

	p, err := connector.NewHTTPPoller(connector.HTTPConfig{
		Source: connector.Source{
			URL:         srv.URL + "/api/customers",
			Headers:     map[string]string{"Authorization": "Bearer example"},
			RecordsPath: "data",
			Pagination:  connector.Pagination{Kind: "cursor", CursorParam: "cursor", NextPath: "meta.next_cursor", SizeParam: "limit", PageSize: 2},
			Incremental: &connector.Incremental{Field: "updated_at", Param: "updated_since", Start: "2020-01-01T00:00:00Z"},
		},
		AllowPrivate: true, // the test server listens on 127.0.0.1
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The previous run stopped at 10:00:00 having written ...508.
	run := connector.NewSync(connector.Checkpoint{Value: "2024-05-01T10:00:00Z", IDs: []string{"820982911946154508"}})
	for !run.Done {
		page, err := p.Poll(context.Background(), run.Request())
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, doc := range page.Records {
			id, _, _ := connector.FieldValue(doc, "id")
			updated, _, _ := connector.FieldValue(doc, "updated_at")
			fmt.Println(id, run.Keep(updated, id))
		}
		run.Advance(page)
	}
	fmt.Println("next run from", run.Next().From)
	// Output:
	// 820982911946154508 false
	// 820982911946154509 true
	// 820982911946154510 true
	// next run from {"value":"2024-05-01T10:05:00Z","ids":["820982911946154510"]}
}

func ExampleParseSchedule() {
	at := time.Date(2024, 5, 4, 10, 7, 30, 0, time.UTC)
	for _, spec := range []string{"every 5m", "*/15 * * * *", "0 9 * * 1-5"} {
		s, err := connector.ParseSchedule(spec)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%-13s next %s\n", s, s.Next(at).Format(time.RFC3339))
	}
	// Output:
	// every 5m      next 2024-05-04T10:12:30Z
	// */15 * * * *  next 2024-05-04T10:15:00Z
	// 0 9 * * 1-5   next 2024-05-06T09:00:00Z
}
