package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
)

// TestScopeRule calls every route of the table with a key of each single
// scope: a route is refused with 403 missing_scope exactly when the rule
// says so. The rule, written out: ADMIN opens everything; READ routes are
// open to READ, WRITE, DELETE and BULK (a write's answer tells what a read
// would); every other scope opens its own routes only.
func TestScopeRule(t *testing.T) {
	opens := map[apikey.Scope][]apikey.Scope{
		apikey.ScopeRead:   {apikey.ScopeRead, apikey.ScopeWrite, apikey.ScopeDelete, apikey.ScopeBulk, apikey.ScopeAdmin},
		apikey.ScopeWrite:  {apikey.ScopeWrite, apikey.ScopeAdmin},
		apikey.ScopeDelete: {apikey.ScopeDelete, apikey.ScopeAdmin},
		apikey.ScopeBulk:   {apikey.ScopeBulk, apikey.ScopeAdmin},
		apikey.ScopeAdmin:  {apikey.ScopeAdmin},
	}
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	rec := e.create(t, e.admin, "account", map[string]any{"name": "Acme", "external_id": "acme-1"})
	keys := map[apikey.Scope]string{}
	for _, sc := range apikey.AllScopes {
		keys[sc] = e.key(t, e.ws, sc)
	}
	n := 0
	for _, rt := range routeTable(e.svc.features) {
		if rt.scope == "" {
			continue
		}
		path := strings.NewReplacer("{object}", "account", "{id}", rec["id"].(string), "{external_id}", "acme-1").Replace(rt.pattern)
		for _, sc := range apikey.AllScopes {
			body := ""
			if rt.method != "GET" && rt.method != "DELETE" {
				body = `{"fields":{}}`
			}
			r := e.do(t, rt.method, path, keys[sc], body)
			refused := r.status == http.StatusForbidden && r.code(t) == "missing_scope"
			allowed := false
			for _, o := range opens[rt.scope] {
				allowed = allowed || o == sc
			}
			require.Equal(t, !allowed, refused, "%s %s with a %s key: %d %s", rt.method, rt.pattern, sc, r.status, r.body)
			n++
		}
	}
	require.Greater(t, n, 50)

	// What the probe found: a WRITE-only key's empty PATCH answers the
	// record, which is fine because WRITE reads; a READ-only key cannot.
	rec = e.create(t, e.admin, "account", map[string]any{"name": "Globex"})
	r := e.do(t, "PATCH", "/api/v1/records/account/"+rec["id"].(string), keys[apikey.ScopeWrite], `{"fields":{}}`)
	require.Equal(t, http.StatusOK, r.status)
	r = e.do(t, "PATCH", "/api/v1/records/account/"+rec["id"].(string), keys[apikey.ScopeRead], `{"fields":{}}`)
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "missing_scope", r.code(t))
}
