package integration

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
)

// concretePath fills a route pattern's wildcards with sample values.
func concretePath(pattern string) string {
	return pathParam.ReplaceAllStringFunc(pattern, func(m string) string {
		return "x" + strings.Trim(m, "{}.")
	})
}

// TestRoutesMatchOpenAPI holds the route table, the mux and the OpenAPI
// document together: every route of the table is registered on the mux under
// its own pattern and documented, every documented operation is a route, and
// what no route takes answers 404 or 405.
func TestRoutesMatchOpenAPI(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	rs := routeTable(e.svc.features)
	require.NotEmpty(t, rs)
	mux := e.svc.handler.(*http.ServeMux)

	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r := e.do(t, "GET", "/api/v1/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(r.body, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	table := map[string]bool{}
	for _, rt := range rs {
		key := rt.method + " " + rt.pattern
		require.False(t, table[key], "route %s twice in the table", key)
		table[key] = true

		// Registered: the mux picks exactly this pattern for a request to it.
		req := httptest.NewRequest(rt.method, concretePath(rt.pattern), nil)
		_, pattern := mux.Handler(req)
		require.Equal(t, key, pattern, "route %s is not what the mux serves", key)

		// Documented, with its scope.
		require.True(t, documented[key], "route %s is not in the OpenAPI document", key)
		var op map[string]any
		require.NoError(t, json.Unmarshal(doc.Paths[rt.pattern][strings.ToLower(rt.method)], &op))
		if rt.scope == "" {
			require.NotContains(t, op, "x-required-scope", key)
		} else {
			require.Equal(t, string(rt.scope), op["x-required-scope"], key)
		}

		// And it answers through the Handler: without a key a scoped route
		// says 401, never 404 or 405.
		resp := e.do(t, rt.method, concretePath(rt.pattern), "", nil)
		if rt.scope != "" {
			require.Equal(t, http.StatusUnauthorized, resp.status, key)
		} else {
			require.NotContains(t, []int{404, 405}, resp.status, key)
		}
	}
	for key := range documented {
		require.True(t, table[key], "the document has %s, which is no route", key)
	}

	// The document's path parameters are the pattern's wildcards.
	wild := regexp.MustCompile(`\{[^}]+\}`)
	for path := range doc.Paths {
		for _, m := range wild.FindAllString(path, -1) {
			require.NotContains(t, m, "...", path)
		}
	}

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 404},
		{"GET", "/api/v1/unknown", 404},
		{"GET", "/api/v2/records/opportunity", 404},
		{"GET", "/api/v1/records/opportunity/rec_1/extra/bits", 404},
		{"PUT", "/api/v1/records/opportunity", 405},
		{"POST", "/healthz", 405},
	} {
		resp := e.do(t, c.method, c.path, "", nil)
		require.Equal(t, c.status, resp.status, "%s %s", c.method, c.path)
		if c.status == 405 {
			require.NotEmpty(t, resp.header.Get("Allow"))
		}
		_, pattern := mux.Handler(httptest.NewRequest(c.method, c.path, nil))
		require.False(t, table[pattern], "%s %s reached route %s", c.method, c.path, pattern)
	}
}

func TestHealthz(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, Config{})
		r := e.do(t, "GET", "/healthz", "", nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, map[string]any{"status": "ok"}, r.json(t))
		require.NoError(t, e.st.Close())
		r = e.do(t, "GET", "/healthz", "", nil)
		require.Equal(t, http.StatusServiceUnavailable, r.status)
	})
}

func TestOpenAPIDocumentIsComplete(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	var doc map[string]any
	require.NoError(t, json.Unmarshal(e.svc.openAPIJSON, &doc))
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	// Every $ref points at something that exists.
	refs := regexp.MustCompile(`"\$ref":\s*"#/components/(schemas|responses)/([A-Za-z]+)"`).FindAllStringSubmatch(string(e.svc.openAPIJSON), -1)
	require.NotEmpty(t, refs)
	responses := doc["components"].(map[string]any)["responses"].(map[string]any)
	for _, m := range refs {
		if m[1] == "schemas" {
			require.Contains(t, schemas, m[2])
		} else {
			require.Contains(t, responses, m[2])
		}
	}
	// Operation ids are unique.
	var ids []string
	for _, item := range doc["paths"].(map[string]any) {
		for _, op := range item.(map[string]any) {
			id := op.(map[string]any)["operationId"].(string)
			require.NotContains(t, ids, id)
			ids = append(ids, id)
		}
	}
	require.True(t, slices.Contains(ids, "listRecords"))
}
