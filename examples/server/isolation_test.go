package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/webhook"
)

// tenant is one workspace of the isolation test and what it holds.
type tenant struct {
	ws, admin string
	// ids by kind: record, external (an external id), key, webhook,
	// delivery, event.
	ids map[string]string
}

// operator runs an operator command of the server binary on db and answers
// its standard output.
func operator(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"CRMKIT_DB=" + filepath.Join(dir, "crmkit.db")}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), "server %v: %s", args, errOut.String())
	return out.String()
}

var printedKey = regexp.MustCompile(`slk_[0-9A-Za-z]+`)

// TestWorkspaceIsolation is a black-box test of the reference server: two
// workspaces made with the operator commands, each holding a record, a
// key, a webhook endpoint, a delivery and an event. Every route of the
// OpenAPI document is called by each workspace's ADMIN key with the other's
// ids: an id of the other workspace answers exactly what an id that does
// not exist answers, no answer holds any of the other's ids, and the
// other's data is unchanged afterwards.
func TestWorkspaceIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer receiver.Close()
	// The upstream API the tenants' connectors poll.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"id":1,"name":"Pulled"}]`)
	}))
	defer upstream.Close()

	tenants := make([]*tenant, 2)
	for i, name := range []string{"Alpha", "Beta"} {
		ws := strings.TrimSpace(operator(t, bin, dir, "workspace", "create", "--name", name, "--plan", "enterprise"))
		require.Regexp(t, `^ws_`, ws)
		out := operator(t, bin, dir, "key", "create", "--workspace", ws, "--name", "Admin", "--scopes", "ADMIN")
		require.Len(t, printedKey.FindAllString(out, -1), 1, "the key is printed once")
		tenants[i] = &tenant{ws: ws, admin: printedKey.FindString(out), ids: map[string]string{}}
	}
	list := operator(t, bin, dir, "workspace", "list")
	for _, tn := range tenants {
		require.Contains(t, list, tn.ws)
	}

	s := start(t, bin, dir, "-db", filepath.Join(dir, "crmkit.db"), "-allow-private-webhooks")
	for i, tn := range tenants {
		st, body := s.call(t, "POST", "/api/v1/webhooks", tn.admin, `{"url":"`+receiver.URL+`","events":["*"]}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
		tn.ids["webhook"] = body["id"].(string)
		ext := []string{"alpha-1", "beta-1"}[i]
		st, body = s.call(t, "PUT", "/api/v1/records/account/external/"+ext, tn.admin, `{"fields":{"name":"Tenant `+ext+`"}}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
		tn.ids["record"], tn.ids["external"] = body["id"].(string), ext
		st, body = s.call(t, "POST", "/api/v1/keys", tn.admin, `{"name":"Reader","scopes":["READ"]}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
		tn.ids["key"] = body["id"].(string)
		st, body = s.call(t, "POST", "/api/v1/inbound-sources", tn.admin, `{"name":"Billing","kind":"smartlite","secret":null,`+
			`"mapping":{"targets":[{"object":"account","external_id":"'inb-' + string(id)","fields":{"name":"name"}}]}}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
		tn.ids["source"] = body["id"].(string)
		doc := []byte(`{"id":` + []string{"1", "2"}[i] + `,"name":"Inbound ` + ext + `"}`)
		sig, err := webhook.HMACSigner{}.Sign([]string{body["secret"].(string)}, "msg_"+ext, time.Now(), doc)
		require.NoError(t, err)
		req, err := http.NewRequest("POST", s.url+"/api/v1/inbound/"+tn.ids["source"], bytes.NewReader(doc))
		require.NoError(t, err)
		for k, v := range sig {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var accepted map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&accepted))
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", accepted)
		tn.ids["inbound_event"] = accepted["id"].(string)
		require.Eventually(t, func() bool {
			_, ev := s.call(t, "GET", "/api/v1/inbound-events/"+tn.ids["inbound_event"], tn.admin, "")
			return ev["status"] == "processed"
		}, 30*time.Second, 50*time.Millisecond, "the inbound event is processed before the probes")
		st, body = s.call(t, "POST", "/api/v1/connectors", tn.admin, `{"name":"Upstream","url":"`+upstream.URL+`",`+
			`"headers":{"Authorization":"Bearer upstream"},"mapping":{"targets":[{"object":"account","external_id":"'con-' + string(id)","fields":{"name":"name"}}]}}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
		tn.ids["connector"] = body["id"].(string)
		st, body = s.call(t, "POST", "/api/v1/connectors/"+tn.ids["connector"]+"/run", tn.admin, "")
		require.Equal(t, http.StatusAccepted, st, "%v", body)
		tn.ids["connector_run"] = body["run_id"].(string)
		require.Eventually(t, func() bool {
			_, run := s.call(t, "GET", "/api/v1/connector-runs/"+tn.ids["connector_run"], tn.admin, "")
			return run["status"] == "succeeded"
		}, 30*time.Second, 50*time.Millisecond, "the connector run finishes before the probes")
		st, body = s.call(t, "POST", "/api/v1/bulk/jobs", tn.admin, `{"object":"account","operation":"insert","format":"json"}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
		tn.ids["bulk_job"] = body["id"].(string)
		require.Eventually(t, func() bool {
			_, body := s.call(t, "GET", "/api/v1/deliveries", tn.admin, "")
			data, _ := body["data"].([]any)
			if len(data) == 0 {
				return false
			}
			d := data[0].(map[string]any)
			tn.ids["delivery"], tn.ids["event"] = d["id"].(string), d["event_id"].(string)
			// Settled, so the endpoint's health stays as the snapshots read it.
			return d["status"] == "succeeded"
		}, 30*time.Second, 50*time.Millisecond)
	}

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	st, _ := s.call(t, "GET", "/api/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, st)
	resp, err := http.Get(s.url + "/api/v1/openapi.json")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	resp.Body.Close()

	// The kind of {id} by the path's first segment under /api/v1.
	idKind := map[string]string{"records": "record", "keys": "key", "webhooks": "webhook", "deliveries": "delivery",
		"inbound-sources": "source", "inbound": "source", "inbound-events": "inbound_event", "bulk": "bulk_job", "imports": "bulk_job",
		"connectors": "connector", "connector-runs": "connector_run"}
	fakeOf := map[string]string{"record": "rec_01aaaaaaaaaaaaaaaaaaaaaaaa", "key": "key_01aaaaaaaaaaaaaaaaaaaaaaaa",
		"webhook": "whk_01aaaaaaaaaaaaaaaaaaaaaaaa", "delivery": "dlv_01aaaaaaaaaaaaaaaaaaaaaaaa", "external": "nobody-1",
		"source": "src_01aaaaaaaaaaaaaaaaaaaaaaaa", "inbound_event": "inb_01aaaaaaaaaaaaaaaaaaaaaaaa", "bulk_job": "job_01aaaaaaaaaaaaaaaaaaaaaaaa",
		"connector": "con_01aaaaaaaaaaaaaaaaaaaaaaaa", "connector_run": "run_01aaaaaaaaaaaaaaaaaaaaaaaa"}
	calls := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			method = strings.ToUpper(method)
			for i, me := range tenants {
				other := tenants[1-i]
				url := func(ids map[string]string) string {
					u := strings.ReplaceAll(path, "{object}", "account")
					if strings.Contains(u, "{external_id}") {
						u = strings.ReplaceAll(u, "{external_id}", ids["external"])
					}
					for _, param := range []string{"{id}", "{source_id}"} {
						if strings.Contains(u, param) {
							seg := strings.SplitN(strings.TrimPrefix(path, "/api/v1/"), "/", 2)[0]
							kind, ok := idKind[seg]
							require.True(t, ok, "%s %s: the isolation test does not know what %s names here; teach it", method, path, param)
							u = strings.ReplaceAll(u, param, ids[kind])
						}
					}
					require.NotContains(t, u, "{", "%s %s: a path parameter the isolation test does not know", method, path)
					return u
				}
				body := ""
				if method == "POST" || method == "PATCH" || method == "PUT" {
					body = "{}"
				}
				ownBefore := snapshot(t, s, other)

				withOther := rawCall(t, s, method, url(other.ids), me.admin, body)
				calls++
				for kind, id := range other.ids {
					if kind == "external" {
						continue
					}
					require.NotContains(t, withOther.body, id, "%s %s by %s answers %s's %s", method, path, me.ws, other.ws, kind)
				}
				require.NotContains(t, withOther.body, other.ws)
				if strings.Contains(path, "{id}") || strings.Contains(path, "{external_id}") || strings.Contains(path, "{source_id}") {
					withFake := rawCall(t, s, method, url(fakeOf), me.admin, body)
					require.Equal(t, withFake.status, withOther.status, "%s %s: another workspace's id answers unlike a missing one", method, path)
					if !strings.Contains(path, "{external_id}") {
						require.Equal(t, withFake.body, withOther.body, "%s %s", method, path)
						require.GreaterOrEqual(t, withOther.status, 400, "%s %s with another workspace's id", method, path)
					}
				}
				if strings.Contains(path, "/audit") {
					r := rawCall(t, s, "GET", path+"?record_id="+other.ids["record"], me.admin, "")
					require.JSONEq(t, `{"data":[],"next_cursor":null}`, r.body)
				}
				require.Equal(t, ownBefore, snapshot(t, s, other), "%s %s by %s changed %s's data", method, path, me.ws, other.ws)
			}
		}
	}
	require.Greater(t, calls, 20)
}

type rawResponse struct {
	status int
	body   string
}

func rawCall(t *testing.T, s *server, method, path, key, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawResponse{status: resp.StatusCode, body: string(b)}
}

// snapshot is what a tenant holds, read with its own key: its record, key
// and webhook, for comparing before and after another tenant's calls.
func snapshot(t *testing.T, s *server, tn *tenant) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"/api/v1/records/account/" + tn.ids["record"], "/api/v1/keys/" + tn.ids["key"],
		"/api/v1/webhooks/" + tn.ids["webhook"], "/api/v1/records/account", "/api/v1/connectors/" + tn.ids["connector"],
		"/api/v1/connectors/" + tn.ids["connector"] + "/runs"} {
		r := rawCall(t, s, "GET", p, tn.admin, "")
		require.Equal(t, http.StatusOK, r.status, "%s: %s", p, r.body)
		b.WriteString(r.body)
	}
	return b.String()
}
