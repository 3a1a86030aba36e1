package integration_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/integration"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// A host opens a store, builds the service and mounts its Handler.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "crmkit-example-")
	defer os.RemoveAll(dir)

	st, err := store.Open(ctx, filepath.Join(dir, "crmkit.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	svc, err := integration.New(integration.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop(ctx)

	mux := http.NewServeMux()
	mux.Handle("/", svc.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	// Output: 200 {"status":"ok"}
}

// Calls to the API carry a key; its scopes decide what it may do.
func ExampleService_Handler() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "crmkit-example-")
	defer os.RemoveAll(dir)
	st, _ := store.Open(ctx, filepath.Join(dir, "crmkit.db"))
	defer st.Close()
	svc, _ := integration.New(integration.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	defer svc.Stop(ctx)

	ws := &records.Workspace{Name: "Acme", Plan: "starter"}
	_ = st.CreateWorkspace(ctx, ws)
	_, key, _ := svc.Keys().Create(ctx, ws.ID, "Finance Sync", []apikey.Scope{apikey.ScopeRead, apikey.ScopeWrite}, nil)

	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	call := func(method, path, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(method, path, resp.StatusCode)
	}
	call("POST", "/api/v1/records/opportunity", `{"fields":{"name":"Acme renewal","stage":"Negotiation"}}`)
	call("GET", "/api/v1/records/opportunity?filter[stage]=Negotiation", "")
	call("GET", "/api/v1/keys", "")
	// Output:
	// POST /api/v1/records/opportunity 201
	// GET /api/v1/records/opportunity?filter[stage]=Negotiation 200
	// GET /api/v1/keys 403
}
