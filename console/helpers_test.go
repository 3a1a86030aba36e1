package console_test

import (
	"context"
	"database/sql"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/internal/testlog"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// The services crmkit ships satisfy the console's interfaces.
var (
	_ console.Keys     = (*apikey.Service)(nil)
	_ console.Webhooks = (*outbound.Service)(nil)
	_ console.AuditLog = (*store.Store)(nil)
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// waitTimeout bounds waits for background delivery on a loaded machine.
const waitTimeout = 30 * time.Second

// testClock is a clock tests move forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// env is the console over real services on a real SQLite store, with two
// workspaces, each with an ADMIN key, behind a loopback test server. Every
// component logs into logs.
type env struct {
	st       *store.Store
	keys     *apikey.Service
	hooks    *outbound.Service
	pipeline *records.Pipeline
	srv      *httptest.Server
	logs     *testlog.Buffer
	clock    *testClock

	ws, ws2       string
	admin, admin2 string
}

// newEnv builds an env; adjust may change the console's Config before the
// handler is made.
func newEnv(tb testing.TB, adjust func(*console.Config)) *env {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testdb.SQLiteDSN(tb))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, logs: &testlog.Buffer{}, clock: &testClock{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	e.keys, err = apikey.New(apikey.Config{Store: st, Logger: log, Clock: e.clock.Now})
	require.NoError(tb, err)
	tb.Cleanup(e.keys.Flush)
	e.pipeline, err = records.NewPipeline(records.Config{Store: st, Rules: []records.Rule{records.ClosedWonRule()}})
	require.NoError(tb, err)
	e.hooks, err = outbound.New(outbound.Config{
		Store: st, Logger: log, AllowPrivate: true,
		Schedule: []time.Duration{50 * time.Millisecond}, Jitter: -1,
		KnownObject: func(name string) bool { _, ok := e.pipeline.Object(name); return ok },
	})
	require.NoError(tb, err)
	workers := river.NewWorkers()
	require.NoError(tb, e.hooks.Register(workers))
	rc := &river.Config{Workers: workers, PeriodicJobs: e.hooks.PeriodicJobs(), TestOnly: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e.hooks.RiverConfig(rc)
	var client *river.Client[*sql.Tx]
	client, err = st.NewJobClient(rc)
	require.NoError(tb, err)
	e.hooks.SetClient(client)
	require.NoError(tb, client.Start(ctx))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(ctx)
	})

	e.ws, e.admin = e.workspace(tb, "Acme")
	e.ws2, e.admin2 = e.workspace(tb, "Globex")

	cfg := console.Config{Keys: e.keys, Webhooks: e.hooks, Audit: st, Logger: log, Clock: e.clock.Now}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := console.New(cfg)
	require.NoError(tb, err)
	e.srv = httptest.NewServer(h)
	tb.Cleanup(e.srv.Close)
	return e
}

// workspace creates a workspace on the enterprise plan and an ADMIN key.
func (e *env) workspace(tb testing.TB, name string) (ws, admin string) {
	tb.Helper()
	return adminWorkspace(tb, e.st, e.keys, name, "enterprise")
}

// adminWorkspace creates a workspace on plan and an ADMIN key of it.
func adminWorkspace(tb testing.TB, st *store.Store, keys *apikey.Service, name, plan string) (ws, admin string) {
	tb.Helper()
	ctx := context.Background()
	w := &records.Workspace{Name: name, Plan: plan}
	require.NoError(tb, st.CreateWorkspace(ctx, w))
	_, plain, err := keys.Create(ctx, w.ID, name+" admin", []apikey.Scope{apikey.ScopeAdmin}, nil)
	require.NoError(tb, err)
	return w.ID, plain
}

// closeDeal writes an opportunity that moves to Closed Won through the
// pipeline, which records the audit entries and queues the webhook events.
func (e *env) closeDeal(tb testing.TB, ws string) *records.Record {
	tb.Helper()
	ctx := context.Background()
	r, err := e.pipeline.Create(ctx, records.Write{Workspace: ws, Object: "opportunity",
		Fields: records.Fields{"name": "Big deal", "stage": "Negotiation", "amount": 5000}})
	require.NoError(tb, err)
	r, err = e.pipeline.Update(ctx, records.Write{Workspace: ws, Object: "opportunity", ID: r.ID,
		Fields: records.Fields{"stage": "Closed Won"}})
	require.NoError(tb, err)
	return r
}

// waitDelivery waits for an endpoint to have n deliveries, none pending,
// and answers them newest first.
func (e *env) waitDeliveries(tb testing.TB, ws, endpointID string, n int) []*outbound.Delivery {
	tb.Helper()
	var got []*outbound.Delivery
	require.Eventually(tb, func() bool {
		ds, err := e.hooks.Deliveries(context.Background(), outbound.DeliveryQuery{Workspace: ws, EndpointID: endpointID, Limit: 200})
		if err != nil || len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status == outbound.StatusPending {
				return false
			}
		}
		got = ds
		return true
	}, waitTimeout, 20*time.Millisecond)
	return got
}

// page is one answer as a browser sees it, after redirects.
type page struct {
	status int
	url    *url.URL
	header http.Header
	body   string
}

// browser is an HTTP client with a cookie jar that keeps every URL it
// asked for and every page it got.
type browser struct {
	tb     testing.TB
	base   string
	client *http.Client
	csrf   string

	mu    sync.Mutex
	urls  []string
	pages []string
}

func (e *env) browser(tb testing.TB) *browser { return newBrowser(tb, e.srv) }

// newBrowser answers a client of the console srv serves that keeps its
// cookies, signed in to nothing yet.
func newBrowser(tb testing.TB, srv *httptest.Server) *browser {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(tb, err)
	b := &browser{tb: tb, base: srv.URL}
	b.client = &http.Client{Jar: jar, Transport: recorder{b: b, next: srv.Client().Transport}}
	return b
}

type recorder struct {
	b    *browser
	next http.RoundTripper
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.b.mu.Lock()
	r.b.urls = append(r.b.urls, req.URL.String())
	r.b.mu.Unlock()
	return r.next.RoundTrip(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) page {
	b.tb.Helper()
	resp, err := b.client.Do(req)
	require.NoError(b.tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.tb, err)
	p := page{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(body)}
	if m := csrfField.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	b.mu.Lock()
	b.pages = append(b.pages, p.body)
	b.mu.Unlock()
	return p
}

func (b *browser) get(path string) page {
	b.tb.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.tb, err)
	return b.do(req)
}

// post submits a form with the CSRF token of the last page read, unless
// the form has one.
func (b *browser) post(path string, form url.Values, header ...string) page {
	b.tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	require.NoError(b.tb, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

// signIn signs in with key and answers the page it lands on.
func (b *browser) signIn(key string) page {
	b.tb.Helper()
	p := b.get("/sign-in")
	require.Equal(b.tb, http.StatusOK, p.status)
	p = b.post("/sign-in", url.Values{"key": {key}})
	require.Equal(b.tb, http.StatusOK, p.status, p.body)
	return p
}

// seen answers every URL asked for and every page read (as text, its
// character references resolved), joined.
func (b *browser) seen() (urls, pages string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.urls, "\n"), html.UnescapeString(strings.Join(b.pages, "\n"))
}

// receiver is a loopback webhook receiver whose answer a test can change.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	status int
	got    []*http.Request
	bodies [][]byte
}

func newReceiver(tb testing.TB) *receiver {
	tb.Helper()
	rv := &receiver{status: http.StatusOK}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		status := rv.status
		rv.got = append(rv.got, r)
		rv.bodies = append(rv.bodies, body)
		rv.mu.Unlock()
		w.Header().Set("X-Receiver", "test")
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = io.WriteString(w, "receiver says no")
		} else {
			_, _ = io.WriteString(w, "thanks")
		}
	}))
	tb.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) setStatus(code int) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.status = code
}

// signatures answers the MACs of the signature headers of every request
// received.
func (rv *receiver) signatures() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []string
	for _, r := range rv.got {
		if _, mac, ok := strings.Cut(r.Header.Get("X-SmartLite-Signature"), "v1="); ok {
			out = append(out, mac)
		}
		if _, mac, ok := strings.Cut(r.Header.Get("webhook-signature"), "v1,"); ok {
			out = append(out, mac)
		}
	}
	return out
}

// received answers how many requests arrived.
func (rv *receiver) received() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.got)
}
