package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// hookReceiver is a loopback webhook receiver that keeps every request.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []hookRequest
	fail func(n int) int // status to answer the n-th request with; nil: 200
}

type hookRequest struct {
	header http.Header
	body   []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	rv := &hookReceiver{}
	rv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		rv.got = append(rv.got, hookRequest{header: r.Header.Clone(), body: b})
		n, fail := len(rv.got), rv.fail
		rv.mu.Unlock()
		status := http.StatusOK
		if fail != nil {
			status = fail(n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rv.Close)
	return rv
}

func (rv *hookReceiver) requests() []hookRequest {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]hookRequest(nil), rv.got...)
}

// startedEnv is an env whose background jobs run, with private webhook
// targets allowed (receivers are on loopback) and quick retries.
func startedEnv(t *testing.T, dsn string) *env {
	t.Helper()
	e := newEnv(t, dsn, Config{AllowPrivateWebhooks: true,
		Webhooks: outbound.Config{Schedule: []time.Duration{50 * time.Millisecond}, Jitter: -1}})
	require.NoError(t, e.svc.Start(context.Background()))
	return e
}

// TestWebhookStory is the README's Closed Won story: an admin registers an
// endpoint for opportunity updates that close the deal, a deal is moved to
// Closed Won through the API, and the receiver gets record.updated with the
// change and checks X-SmartLite-Signature by recomputing the HMAC.
func TestWebhookStory(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)

		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{
			"url": rv.URL + "/crm", "events": []string{"record.updated"}, "objects": []string{"opportunity"},
			"condition": map[string]any{"field": "stage", "changed_to": "Closed Won"}, "description": "Finance"})
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		created := r.json(t)
		secret := created["secret"].(string)
		endpointID := created["id"].(string)
		require.True(t, strings.HasPrefix(secret, "whsec_"))
		require.True(t, strings.HasPrefix(endpointID, "whk_"))
		require.Equal(t, "/api/v1/webhooks/"+endpointID, r.header.Get("Location"))

		deal := e.create(t, e.admin, "opportunity", map[string]any{"name": "Acme renewal", "amount": 48000, "stage": "Negotiation"})
		id := deal["id"].(string)
		r = e.do(t, "PATCH", "/api/v1/records/opportunity/"+id, e.admin, map[string]any{"fields": map[string]any{"amount": 50000}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		r = e.do(t, "PATCH", "/api/v1/records/opportunity/"+id, e.admin, map[string]any{"fields": map[string]any{"stage": "Closed Won"}})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

		require.Eventually(t, func() bool { return len(rv.requests()) >= 1 }, 30*time.Second, 20*time.Millisecond)
		got := rv.requests()[0]

		sig := got.header.Get("X-SmartLite-Signature")
		parts := strings.Split(sig, ",")
		require.Len(t, parts, 2, sig)
		ts, v1 := strings.TrimPrefix(parts[0], "t="), strings.TrimPrefix(parts[1], "v1=")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + string(got.body)))
		require.Equal(t, hex.EncodeToString(mac.Sum(nil)), v1, "the HMAC recomputed with the endpoint secret matches")

		var payload struct {
			ID        string `json:"id"`
			Type      string `json:"type"`
			Workspace string `json:"workspace_id"`
			Data      struct {
				Object string `json:"object"`
				Record struct {
					ID      string         `json:"id"`
					Version int            `json:"version"`
					Fields  map[string]any `json:"fields"`
				} `json:"record"`
				Changes map[string]struct {
					From any `json:"from"`
					To   any `json:"to"`
				} `json:"changes"`
				Source string            `json:"source"`
				Actor  map[string]string `json:"actor"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(got.body, &payload))
		require.Equal(t, "record.updated", payload.Type)
		require.Equal(t, got.header.Get("webhook-id"), payload.ID)
		require.Equal(t, e.ws, payload.Workspace)
		require.Equal(t, "opportunity", payload.Data.Object)
		require.Equal(t, id, payload.Data.Record.ID)
		require.Equal(t, 3, payload.Data.Record.Version)
		require.Equal(t, "Negotiation", payload.Data.Changes["stage"].From)
		require.Equal(t, "Closed Won", payload.Data.Changes["stage"].To)
		require.Contains(t, payload.Data.Record.Fields, "closed_at", "the Closed Won rule ran before the event")
		require.Equal(t, "api", payload.Data.Source)
		require.Equal(t, "api_key", payload.Data.Actor["kind"])

		// The log shows one successful delivery; the amount change and the
		// creation did not match. A first attempt is stored together with its
		// delivery once the receiver has answered, so the log may trail the
		// receipt for a moment.
		var list struct {
			Data       []outbound.Delivery `json:"data"`
			NextCursor *string             `json:"next_cursor"`
		}
		require.Eventually(t, func() bool {
			r = e.do(t, "GET", "/api/v1/webhooks/"+endpointID+"/deliveries", e.admin, nil)
			return r.status == http.StatusOK && json.Unmarshal(r.body, &list) == nil &&
				len(list.Data) > 0 && list.Data[0].Status == outbound.StatusSucceeded
		}, 30*time.Second, 20*time.Millisecond, "no succeeded delivery in the log")
		require.Len(t, list.Data, 1)
		require.Nil(t, list.NextCursor)
		d := list.Data[0]
		require.Equal(t, payload.ID, d.EventID)
		r = e.do(t, "GET", "/api/v1/deliveries/"+d.ID, e.admin, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		m := r.json(t)
		require.Equal(t, "succeeded", m["status"])
		attempts := m["attempts"].([]any)
		require.Len(t, attempts, 1)
		a := attempts[0].(map[string]any)
		require.EqualValues(t, 1, a["number"])
		require.EqualValues(t, 200, a["status_code"])
		require.Equal(t, "scheduled", a["trigger"])
		require.Contains(t, a, "duration_ms")
		require.Contains(t, a, "at")
		require.Len(t, rv.requests(), 1)
	})
}

func TestWebhookAPI(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := startedEnv(t, dsn)
		rv := newHookReceiver(t)
		create := func(body map[string]any) map[string]any {
			t.Helper()
			r := e.do(t, "POST", "/api/v1/webhooks", e.admin, body)
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			return r.json(t)
		}
		first := create(map[string]any{"url": rv.URL + "/a", "events": []string{"*"}})
		second := create(map[string]any{"url": rv.URL + "/b", "events": []string{"record.created"}, "enabled": false})
		id := first["id"].(string)

		t.Run("list and get", func(t *testing.T) {
			r := e.do(t, "GET", "/api/v1/webhooks?limit=1", e.admin, nil)
			require.Equal(t, http.StatusOK, r.status)
			page := r.json(t)
			require.Len(t, page["data"], 1)
			require.NotContains(t, page["data"].([]any)[0], "secret", "lists never show secrets")
			r = e.do(t, "GET", "/api/v1/webhooks?cursor="+page["next_cursor"].(string), e.admin, nil)
			require.Equal(t, second["id"], r.json(t)["data"].([]any)[0].(map[string]any)["id"])

			r = e.do(t, "GET", "/api/v1/webhooks/"+id, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status)
			got := r.json(t)
			require.Equal(t, rv.URL+"/a", got["url"])
			require.Equal(t, true, got["enabled"])
			require.NotContains(t, got, "secret")
			require.NotContains(t, string(r.body), first["secret"].(string))
		})

		t.Run("workspace isolation and scope", func(t *testing.T) {
			_, otherAdmin := e.workspace(t, "enterprise")
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/webhooks/"+id, otherAdmin, nil).status)
			require.Equal(t, http.StatusNotFound, e.do(t, "DELETE", "/api/v1/webhooks/"+id, otherAdmin, nil).status)
			r := e.do(t, "GET", "/api/v1/webhooks", otherAdmin, nil)
			require.Equal(t, []any{}, r.json(t)["data"])
			writer := e.key(t, e.ws, apikey.ScopeWrite)
			r = e.do(t, "GET", "/api/v1/webhooks", writer, nil)
			require.Equal(t, http.StatusForbidden, r.status)
			require.Equal(t, "missing_scope", r.code(t))
		})

		t.Run("update", func(t *testing.T) {
			r := e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{
				"events": []string{"record.updated"}, "condition": map[string]any{"field": "stage", "changed_to": "Closed Won"}})
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			got := r.json(t)
			require.Equal(t, []any{"record.updated"}, got["events"])
			require.Equal(t, rv.URL+"/a", got["url"], "members left out stay")
			require.Equal(t, "Closed Won", got["condition"].(map[string]any)["changed_to"])
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, `{"condition": null, "events": ["*"]}`)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.Nil(t, r.json(t)["condition"])
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{"events": []string{"record.archived"}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
			require.Equal(t, "validation_failed", r.code(t))
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{"urll": "x"})
			require.Equal(t, http.StatusBadRequest, r.status)
			r = e.do(t, "PATCH", "/api/v1/webhooks/"+id, e.admin, map[string]any{"objects": []string{"opportunity", "oportunity"}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
			require.Contains(t, string(r.body), `there is no object named \"oportunity\"`)
			r = e.do(t, "GET", "/api/v1/webhooks/"+id, e.admin, nil)
			require.Equal(t, http.StatusOK, r.status)
			require.NotContains(t, r.json(t)["objects"], "oportunity", "a refused update changes nothing")
		})

		t.Run("rotate secret", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/webhooks/"+id+"/rotate-secret", e.admin, map[string]any{"grace_seconds": 3600})
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			got := r.json(t)
			require.NotEqual(t, first["secret"], got["secret"])
			require.True(t, strings.HasPrefix(got["secret"].(string), "whsec_"))
			require.Contains(t, got, "previous_secret_expires_at")
			r = e.do(t, "POST", "/api/v1/webhooks/"+id+"/rotate-secret", e.admin, map[string]any{"grace_seconds": -1})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
		})

		t.Run("send test", func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/webhooks/"+id+"/test", e.admin, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			got := r.json(t)
			require.Equal(t, true, got["succeeded"])
			require.EqualValues(t, 200, got["status_code"])
			reqs := rv.requests()
			last := reqs[len(reqs)-1]
			require.Equal(t, outbound.TestEventType, last.header.Get("X-SmartLite-Event"))
		})

		t.Run("deliveries, redeliver and replay", func(t *testing.T) {
			rv.mu.Lock()
			rv.fail = func(int) int { return http.StatusInternalServerError }
			rv.mu.Unlock()
			since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
			e.create(t, e.admin, "account", map[string]any{"name": "Acme"})
			var dlv string
			require.Eventually(t, func() bool {
				r := e.do(t, "GET", "/api/v1/deliveries?status=failed", e.admin, nil)
				data := r.json(t)["data"].([]any)
				if len(data) == 1 {
					dlv = data[0].(map[string]any)["id"].(string)
				}
				return len(data) == 1
			}, 30*time.Second, 20*time.Millisecond)
			r := e.do(t, "GET", "/api/v1/deliveries/"+dlv, e.admin, nil)
			got := r.json(t)
			require.Len(t, got["attempts"], 2)
			require.Equal(t, "http_status", got["attempts"].([]any)[0].(map[string]any)["error_kind"])
			r = e.do(t, "GET", "/api/v1/webhooks/"+id+"/deliveries?status=succeeded", e.admin, nil)
			require.Equal(t, []any{}, r.json(t)["data"])
			r = e.do(t, "GET", "/api/v1/deliveries?status=bogus", e.admin, nil)
			require.Equal(t, http.StatusUnprocessableEntity, r.status)

			rv.mu.Lock()
			rv.fail = nil
			rv.mu.Unlock()
			r = e.do(t, "POST", "/api/v1/deliveries/"+dlv+"/redeliver", e.admin, nil)
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			require.Equal(t, "pending", r.json(t)["status"])
			require.Eventually(t, func() bool {
				return e.do(t, "GET", "/api/v1/deliveries/"+dlv, e.admin, nil).json(t)["status"] == "succeeded"
			}, 30*time.Second, 20*time.Millisecond)
			attempts := e.do(t, "GET", "/api/v1/deliveries/"+dlv, e.admin, nil).json(t)["attempts"].([]any)
			require.Equal(t, "manual", attempts[len(attempts)-1].(map[string]any)["trigger"])

			r = e.do(t, "POST", "/api/v1/deliveries/replay", e.admin, map[string]any{"since": since, "endpoint_id": id})
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			require.EqualValues(t, 0, r.json(t)["replayed"], "nothing failed is left")
			r = e.do(t, "POST", "/api/v1/deliveries/replay", e.admin, map[string]any{})
			require.Equal(t, http.StatusUnprocessableEntity, r.status)
			r = e.do(t, "POST", "/api/v1/deliveries/nope/redeliver", e.admin, nil)
			require.Equal(t, http.StatusNotFound, r.status)
		})

		t.Run("delete", func(t *testing.T) {
			r := e.do(t, "DELETE", "/api/v1/webhooks/"+id, e.admin, nil)
			require.Equal(t, http.StatusNoContent, r.status)
			require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/api/v1/webhooks/"+id, e.admin, nil).status)
		})
	})
}

// TestWebhookSSRFRefusal: without the opt-in, private targets are refused
// with 422 and a message that names the reference server's switch.
func TestWebhookSSRFRefusal(t *testing.T) {
	e := newEnv(t, testdb.SQLiteDSN(t), Config{})
	for _, url := range []string{"http://127.0.0.1:8081/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "ftp://127.0.0.1/"} {
		r := e.do(t, "POST", "/api/v1/webhooks", e.admin, map[string]any{"url": url, "events": []string{"*"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
		require.Equal(t, "validation_failed", r.code(t))
		if !strings.HasPrefix(url, "ftp") {
			require.Contains(t, string(r.body), "-allow-private-webhooks")
			require.Contains(t, string(r.body), "CRMKIT_ALLOW_PRIVATE_WEBHOOKS")
		}
	}
}

// TestWebhooksTwoInstancesDeliverOnce: two services, each with its own River
// client, on one Postgres share the work and deliver every event once, not
// once per instance. Writes alternate between the instances and each
// client polls at jittered intervals, so which instance locks an event's
// fan-out is close to a coin toss: over 100 events both get some.
func TestWebhooksTwoInstancesDeliverOnce(t *testing.T) {
	dsn := testdb.PostgresDSN(t)
	a := startedEnv(t, dsn)
	b := startedEnv(t, dsn)
	clientA, clientB := a.svc.JobClient(), b.svc.JobClient()
	require.NotEqual(t, clientA.ID(), clientB.ID())
	rv := newHookReceiver(t)
	r := a.do(t, "POST", "/api/v1/webhooks", a.admin, map[string]any{"url": rv.URL + "/hook", "events": []string{"*"}})
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	endpointID := r.json(t)["id"].(string)

	const n = 100
	for i := range n {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		inst.create(t, a.admin, "account", map[string]any{"name": "Account " + strings.Repeat("x", i%5)})
	}
	ctx := context.Background()
	require.Eventually(t, func() bool {
		ds, err := a.svc.Webhooks().Deliveries(ctx, outbound.DeliveryQuery{Workspace: a.ws, EndpointID: endpointID, Limit: 2 * n})
		if err != nil || len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != outbound.StatusSucceeded {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "every event has one succeeded delivery")
	// A duplicate could only come from a fan-out or delivery job still to
	// run or running; once none is left, every request the receiver will
	// get is in.
	webhookJobs := func(states ...rivertype.JobState) ([]*rivertype.JobRow, error) {
		res, err := clientA.JobList(ctx, river.NewJobListParams().
			Kinds(records.FanoutArgs{}.Kind(), outbound.DeliverArgs{}.Kind()).States(states...).First(10_000))
		if err != nil {
			return nil, err
		}
		return res.Jobs, nil
	}
	require.Eventually(t, func() bool {
		jobs, err := webhookJobs(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled)
		return err == nil && len(jobs) == 0
	}, 30*time.Second, 20*time.Millisecond, "fan-out and delivery jobs still to run")
	seen := map[string]int{}
	for _, req := range rv.requests() {
		seen[req.header.Get("webhook-id")]++
	}
	require.Len(t, seen, n)
	for id, c := range seen {
		require.Equal(t, 1, c, "event %s delivered %d times", id, c)
	}
	require.Len(t, rv.requests(), n)

	completed, err := webhookJobs(rivertype.JobStateCompleted)
	require.NoError(t, err)
	workedBy := map[string]int{}
	for _, j := range completed {
		for _, id := range j.AttemptedBy {
			workedBy[id]++
		}
	}
	t.Logf("fan-out and delivery jobs worked per client: %v", workedBy)
	require.Len(t, workedBy, 2, "only the two instances work jobs")
	require.Positive(t, workedBy[clientA.ID()], "instance a worked none of the jobs")
	require.Positive(t, workedBy[clientB.ID()], "instance b worked none of the jobs")
}

// serverProcess is the reference server running as a child process.
type serverProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func buildReferenceServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	out, err := exec.Command("go", "build", "-o", bin, "../examples/server").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// runServer starts the server and waits until it listens.
func runServer(t *testing.T, bin, dir string, args ...string) *serverProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CRMKIT_ADDR=", "CRMKIT_DB=", "CRMKIT_REDIS=", "CRMKIT_ADMIN_KEY_FILE=")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &serverProcess{cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case addr := <-found:
		p.url = "http://" + addr
	case <-p.done:
		t.Fatal("the server exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not start listening")
	}
	return p
}

// adminKey answers the ADMIN key the reference server wrote to keyFile.
func adminKey(t *testing.T, keyFile string) string {
	t.Helper()
	key, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	return strings.TrimSpace(string(key))
}

func (p *serverProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

func (p *serverProcess) call(t *testing.T, method, path, key string, body any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil // the server may be gone mid-request
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// rateLimit answers the X-RateLimit-Limit the server gives key, "" when it
// cannot be asked.
func (p *serverProcess) rateLimit(key string) string {
	req, err := http.NewRequest("GET", p.url+"/api/v1/webhooks?limit=1", nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-RateLimit-Limit")
}

// TestWebhooksSurviveKill: records are committed while deliveries are in
// flight, the server is killed with SIGKILL, and after a restart every
// committed event reaches the receiver at least once, within a minute.
func TestWebhooksSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the reference server and kills it")
	}
	bin := buildReferenceServer(t)
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "admin.key")
		args := []string{"-db", dsn, "-allow-private-webhooks", "-admin-key-file", keyFile}

		// A slow receiver keeps deliveries in flight when the kill comes.
		var mu sync.Mutex
		received := map[string]int{}
		inFlight := 0
		rv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			inFlight++
			mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			mu.Lock()
			inFlight--
			received[r.Header.Get("webhook-id")]++
			mu.Unlock()
		}))
		defer rv.Close()

		srv := runServer(t, bin, dir, args...)
		admin := adminKey(t, keyFile)

		// The default workspace is on Starter, whose 60 requests a minute
		// would throttle the writes below.
		st, err := store.Open(ctx, dsn)
		require.NoError(t, err)
		defer st.Close()
		require.NoError(t, st.SetWorkspacePlan(ctx, "ws_default", "enterprise"))
		// The server's plan cache picks the change up within its TTL.
		require.Eventually(t, func() bool { return srv.rateLimit(admin) == "6000" }, 30*time.Second, 100*time.Millisecond,
			"the server did not apply the enterprise plan")

		status, body := srv.call(t, "POST", "/api/v1/webhooks", admin, map[string]any{"url": rv.URL + "/hook", "events": []string{"*"}})
		require.Equal(t, http.StatusCreated, status, "%v", body)

		// Writers commit records until the kill; some requests die with it.
		var committed sync.WaitGroup
		var created atomicCounter
		stop := make(chan struct{})
		for w := range 4 {
			committed.Add(1)
			go func() {
				defer committed.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					status, _ := srv.call(t, "POST", "/api/v1/records/account", admin,
						map[string]any{"fields": map[string]any{"name": "Kill test " + strconv.Itoa(w) + "-" + strconv.Itoa(i)}})
					if status == 0 {
						return
					}
					if status == http.StatusCreated {
						created.add()
					}
				}
			}()
		}
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return created.get() >= 60 && inFlight >= 3
		}, 30*time.Second, 5*time.Millisecond, "records committed and deliveries in flight")
		mu.Lock()
		before, flying := len(received), inFlight
		mu.Unlock()
		srv.kill(t)
		close(stop)
		committed.Wait()
		t.Logf("killed after %d acknowledged writes, %d events received, %d deliveries in flight", created.get(), before, flying)

		srv = runServer(t, bin, dir, args...)
		restarted := time.Now()

		var events []string
		after := ""
		for {
			page, err := st.ListEvents(ctx, "ws_default", after, 500)
			require.NoError(t, err)
			for _, ev := range page {
				events = append(events, ev.ID)
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
		require.GreaterOrEqual(t, len(events), created.get(), "every acknowledged write committed an event")

		missing := func() []string {
			mu.Lock()
			defer mu.Unlock()
			var out []string
			for _, id := range events {
				if received[id] == 0 {
					out = append(out, id)
				}
			}
			return out
		}
		deadline := restarted.Add(time.Minute)
		for len(missing()) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		require.Empty(t, missing(), "committed events not delivered within a minute of the restart")
		dup := 0
		mu.Lock()
		for _, c := range received {
			dup += c - 1
		}
		mu.Unlock()
		t.Logf("all %d committed events delivered %.1fs after the restart (%d duplicates)", len(events), time.Since(restarted).Seconds(), dup)
	})
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *atomicCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
