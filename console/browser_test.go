package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/integration"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/internal/testlog"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/webhook"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// Environment variables of the browser test.
const (
	// envRequireChromium=1 makes a missing Chromium a failure, not a skip.
	envRequireChromium = "CRMKIT_TEST_REQUIRE_CHROMIUM"
	// envChromium names the browser binary; default: chromium on PATH.
	envChromium = "CRMKIT_TEST_CHROMIUM"
	// envScreenshots is where screenshots go; default: a new temporary
	// directory, removed when the test passes and kept when it fails.
	envScreenshots = "CRMKIT_TEST_SCREENSHOTS"
)

// chromium answers the browser binary, skipping the test when there is
// none (failing it when envRequireChromium is set).
func chromium(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found on PATH (Debian: apt-get install chromium; or set " + envChromium + ")"
	if os.Getenv(envRequireChromium) == "1" {
		tb.Fatalf("%s, and %s=1", msg, envRequireChromium)
	}
	tb.Skip(msg)
	return ""
}

// screenshotDir answers where the test's screenshots go.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv(envScreenshots); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	d, err := os.MkdirTemp("", "crmkit-console-screenshots-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screenshots kept in %s", d)
			return
		}
		_ = os.RemoveAll(d)
	})
	return d
}

// tab is one browser tab on the console with the helpers the walk-through
// uses.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	step int
	// checked names the pages axe checked.
	checked []string
}

func newTab(t *testing.T, base string) *tab {
	t.Helper()
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	tb := &tab{t: t, ctx: ctx, base: base, dir: screenshotDir(t)}
	// The first Run starts the browser and must not carry a timeout.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	return tb
}

// do runs steps with a time limit, taking a screenshot when they fail.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.doWithin(30*time.Second, what, steps...)
}

// doWithin is do with the time limit given, for steps that wait on work
// the server does in the background rather than on the page.
func (b *tab) doWithin(limit time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *tab) value(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return v
}

func (b *tab) html() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(b.t, err)
	return v
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return v
}

// screenshot saves the whole page as NN-name.png.
func (b *tab) screenshot(name string) string {
	b.t.Helper()
	b.step++
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.step, name))
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	return path
}

// screenshots saves the page at a phone's width and a desktop's, checking
// at each that nothing is wider than the window.
func (b *tab) screenshots(name string) {
	b.t.Helper()
	for _, w := range []struct {
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{{390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}, {1280, 900, nil}} {
		b.do("resize", chromedp.EmulateViewport(w.width, w.height, w.opts...))
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
		cancel()
		require.NoError(b.t, err)
		path := b.screenshot(fmt.Sprintf("%s-%d", name, w.width))
		require.LessOrEqual(b.t, overflow, 0, "%s is %d px wider than a %d px window (%s)", name, overflow, w.width, path)
		b.axe(fmt.Sprintf("%s-%d", name, w.width))
	}
}

func (b *tab) open(path string, ready string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(ready)))
}

// signIn opens path, which asks for a key, signs in with key and waits
// for landed, a selector of the page it then shows.
func (b *tab) signIn(path, key, landed string) {
	b.t.Helper()
	b.open(path, "#key")
	b.do("sign in",
		chromedp.SendKeys(chromedp.ID("key"), key),
		chromedp.Click(chromedp.CSS(`form[action="/sign-in"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(landed)),
	)
}

// apiEnv is what the reference server runs: the REST API of an
// integration.Service and the console over the same services, on one
// loopback server and a real SQLite store, with a workspace and its ADMIN
// key. Deliveries retry once, after 50 ms.
type apiEnv struct {
	st   *store.Store
	svc  *integration.Service
	srv  *httptest.Server
	logs *testlog.Buffer

	ws, admin string
}

func newAPIEnv(tb testing.TB) *apiEnv { return newAPIEnvWith(tb, nil, nil) }

// newAPIEnvWith is newAPIEnv with the service's configuration and the
// console's adjusted by service and con, when they are not nil.
func newAPIEnvWith(tb testing.TB, service func(*integration.Config), con func(*console.Config)) *apiEnv {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testdb.SQLiteDSN(tb))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	e := &apiEnv{st: st, logs: &testlog.Buffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb.Cleanup(func() {
		// Warnings and errors (a job's failed run among them) are shown
		// when the test fails.
		if !tb.Failed() {
			return
		}
		var warned []string
		for line := range strings.Lines(e.logs.String()) {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				warned = append(warned, line)
			}
		}
		if len(warned) > 0 {
			tb.Logf("the service warned:\n%s", strings.Join(warned[max(len(warned)-50, 0):], ""))
		}
	})
	cfg := integration.Config{Store: st, Logger: log, AllowPrivateWebhooks: true,
		Webhooks: outbound.Config{Schedule: []time.Duration{50 * time.Millisecond}, Jitter: -1}}
	if service != nil {
		service(&cfg)
	}
	e.svc, err = integration.New(cfg)
	require.NoError(tb, err)
	require.NoError(tb, e.svc.Start(ctx))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.svc.Stop(ctx)
	})
	e.ws, e.admin = e.workspace(tb, "Acme", "enterprise")

	conCfg := console.Config{Keys: e.svc.Keys(), Webhooks: e.svc.Webhooks(), Audit: st, Logger: log,
		Inbound: e.svc.Inbound(), Connectors: e.svc.Connectors(), Imports: e.svc.Importer()}
	if con != nil {
		con(&conCfg)
	}
	h, err := console.New(conCfg)
	require.NoError(tb, err)
	mux := http.NewServeMux()
	mux.Handle("/api/", e.svc.Handler())
	mux.Handle("/", h)
	e.srv = httptest.NewServer(mux)
	tb.Cleanup(e.srv.Close)
	return e
}

// workspace adds a workspace on plan with an ADMIN key.
func (e *apiEnv) workspace(tb testing.TB, name, plan string) (ws, admin string) {
	tb.Helper()
	return adminWorkspace(tb, e.st, e.svc.Keys(), name, plan)
}

// call sends a JSON request to the REST API with key and answers the
// status and the decoded body.
func (e *apiEnv) call(tb testing.TB, method, path, key string, body any) (int, map[string]any) {
	tb.Helper()
	b, err := json.Marshal(body)
	require.NoError(tb, err)
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(b))
	require.NoError(tb, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// closeDeal creates an opportunity in Negotiation and moves it to Closed
// Won through the REST API with key, as a finance system would, and
// answers its id.
func (e *apiEnv) closeDeal(tb testing.TB, key, name string) string {
	tb.Helper()
	status, rec := e.call(tb, http.MethodPost, "/api/v1/records/opportunity", key,
		map[string]any{"fields": map[string]any{"name": name, "stage": "Negotiation", "amount": 5000}})
	require.Equal(tb, http.StatusCreated, status, rec)
	id := rec["id"].(string)
	status, rec = e.call(tb, http.MethodPatch, "/api/v1/records/opportunity/"+id, key,
		map[string]any{"fields": map[string]any{"stage": "Closed Won"}})
	require.Equal(tb, http.StatusOK, status, rec)
	return id
}

// waitDeliveries waits for the endpoint to have n deliveries, none pending,
// and answers them newest first.
func (e *apiEnv) waitDeliveries(tb testing.TB, endpointID string, n int) []*outbound.Delivery {
	tb.Helper()
	var got []*outbound.Delivery
	require.Eventually(tb, func() bool {
		ds, err := e.svc.Webhooks().Deliveries(context.Background(), outbound.DeliveryQuery{Workspace: e.ws, EndpointID: endpointID, Limit: 200})
		if err != nil || len(ds) != n || slices.ContainsFunc(ds, func(d *outbound.Delivery) bool { return d.Status == outbound.StatusPending }) {
			return false
		}
		got = ds
		return true
	}, waitTimeout, 20*time.Millisecond)
	return got
}

// fieldError checks that the form control sel is described by the error
// message errID, shown inside the control's own field box, which is marked
// invalid (and so is the control, when it is an input), and answers the
// message.
func (b *tab) fieldError(sel, errID string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(() => {
		const el = document.querySelector(`+strconv.Quote(sel)+`);
		const msg = document.getElementById(`+strconv.Quote(errID)+`);
		if (!el || !msg) return {};
		const box = el.closest(".field");
		return {input: el.matches("input, select, textarea"), invalid: el.getAttribute("aria-invalid") || "",
			describedBy: el.getAttribute("aria-describedby") || "",
			inBox: !!box && box.contains(msg) && box.classList.contains("invalid"), text: msg.textContent};
	})()`))
	require.NoError(b.t, err)
	require.NotEmpty(b.t, got, "%s and #%s are on the page", sel, errID)
	if got["input"] == true {
		require.Equal(b.t, "true", got["invalid"], "%s is marked invalid", sel)
	}
	require.Contains(b.t, strings.Fields(fmt.Sprint(got["describedBy"])), errID, "%s is described by its error", sel)
	require.Equal(b.t, true, got["inBox"], "the error is shown in %s's field", sel)
	return fmt.Sprint(got["text"])
}

// TestBrowserWalkthrough follows the product guide in headless Chromium,
// on the REST API and the console as the reference server mounts them:
// sign in with the ADMIN key, create the "Finance Sync" key and read it
// once, register a webhook endpoint on a loopback receiver, close a deal
// through the API with the Finance Sync key, see the delivery in the log,
// make the receiver fail and see the failed attempt with its error,
// redeliver and see it succeed, read the audit log, and sign out. Forms
// refused by the services show the error beside the field. Every page is
// checked with axe-core at 1280 and 390 px.
func TestBrowserWalkthrough(t *testing.T) {
	chromium(t)
	e := newAPIEnv(t)
	ctx := context.Background()
	rv := newReceiver(t)
	b := newTab(t, e.srv.URL)

	// Sign in.
	b.open("/", "#key")
	b.screenshots("sign-in")
	b.do("sign in",
		chromedp.SendKeys(chromedp.ID("key"), e.admin),
		chromedp.Click(chromedp.CSS(`form[action="/sign-in"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/keys/new"]`)),
	)
	b.screenshots("keys-first")

	// API Keys → New Key → "Finance Sync". Without a scope the key service
	// refuses it, and the form says so beside the scopes.
	b.do("new key form",
		chromedp.Click(chromedp.CSS(`a.button[href="/keys/new"]`)),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Finance Sync"),
	)
	b.screenshots("new-key")
	b.do("create key without scopes",
		chromedp.Click(chromedp.CSS(`form[action="/keys"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("scopes-error")),
	)
	require.NotEmpty(t, b.fieldError(`fieldset:has(input[name=scopes])`, "scopes-error"))
	require.Equal(t, "Finance Sync", b.value("#name"), "the name typed is kept")
	b.screenshots("new-key-refused")

	// READ + WRITE: the plaintext is shown once.
	b.do("create key",
		chromedp.Click(chromedp.CSS(`input[name=scopes][value=READ]`)),
		chromedp.Click(chromedp.CSS(`input[name=scopes][value=WRITE]`)),
		chromedp.Click(chromedp.CSS(`form[action="/keys"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("plaintext")),
		chromedp.WaitVisible(chromedp.CSS(`button.copy`)), // shown by script
	)
	financeKey := b.value("#plaintext")
	p, err := e.svc.Keys().Verify(ctx, financeKey)
	require.NoError(t, err, "the key shown works")
	require.Equal(t, []apikey.Scope{apikey.ScopeRead, apikey.ScopeWrite}, p.Scopes)
	financeKeyID := p.KeyID
	b.screenshots("key-created")

	b.do("done", chromedp.Click(chromedp.CSS(`a.button[href="/keys"]`)), chromedp.WaitVisible(chromedp.CSS(`a.button[href="/keys/new"]`)))
	keysPage := b.html()
	require.Contains(t, keysPage, "Finance Sync")
	require.Contains(t, keysPage, "READ, WRITE")
	require.NotContains(t, keysPage, financeKey, "read once")
	require.NotContains(t, keysPage, e.admin)
	b.screenshots("keys")

	// Webhooks → New Endpoint → the loopback receiver, record.updated of
	// opportunities. A misspelt object is refused beside its field.
	b.do("webhooks",
		chromedp.Click(chromedp.CSS(`nav a[href="/webhooks"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/webhooks/new"]`)),
	)
	b.screenshots("webhooks-empty")
	b.do("new endpoint form",
		chromedp.Click(chromedp.CSS(`a.button[href="/webhooks/new"]`)),
		chromedp.WaitVisible(chromedp.ID("url")),
		chromedp.SendKeys(chromedp.ID("url"), rv.srv.URL+"/finance"),
		chromedp.SendKeys(chromedp.ID("objects"), "opportunity, oportunity"),
		chromedp.SendKeys(chromedp.ID("condition_field"), "stage"),
		chromedp.SendKeys(chromedp.ID("condition_value"), "Closed Won"),
	)
	b.screenshots("new-endpoint")
	b.do("create endpoint with a misspelt object",
		chromedp.Click(chromedp.CSS(`form[action="/webhooks"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("objects-error")),
	)
	require.Contains(t, b.fieldError("#objects", "objects-error"), "oportunity")
	require.Equal(t, rv.srv.URL+"/finance", b.value("#url"), "what was typed is kept")
	require.Equal(t, "Closed Won", b.value("#condition_value"))
	b.screenshots("new-endpoint-refused")
	b.do("create endpoint",
		chromedp.SetValue(chromedp.ID("objects"), "opportunity"),
		chromedp.Click(chromedp.CSS(`form[action="/webhooks"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("secret")),
	)
	secret := b.value("#secret")
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	eps, err := e.svc.Webhooks().List(ctx, e.ws, "", 10)
	require.NoError(t, err)
	require.Len(t, eps, 1)
	id := eps[0].ID
	require.Equal(t, []string{"record.updated"}, eps[0].Events, "record.updated is checked by default")
	require.Equal(t, []string{"opportunity"}, eps[0].Objects)
	require.Equal(t, &outbound.Condition{Field: "stage", ChangedTo: "Closed Won"}, eps[0].Condition)
	b.screenshots("endpoint-created")

	// A deal closes through the API, with the Finance Sync key: the
	// receiver gets the signed payload, and the delivery is in the log.
	deal := e.closeDeal(t, financeKey, "Big deal")
	e.waitDeliveries(t, id, 1)
	require.Equal(t, 1, rv.received())
	rv.mu.Lock()
	require.NoError(t, webhook.Verify(rv.got[0].Header, rv.bodies[0], []string{secret}), "signed with the secret shown")
	var payload struct {
		Type string `json:"type"`
		Data struct {
			Record  map[string]any `json:"record"`
			Changes map[string]struct {
				To any `json:"to"`
			} `json:"changes"`
			Source string        `json:"source"`
			Actor  records.Actor `json:"actor"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rv.bodies[0], &payload))
	rv.mu.Unlock()
	require.Equal(t, "record.updated", payload.Type)
	require.Equal(t, deal, payload.Data.Record["id"])
	require.Equal(t, "Closed Won", payload.Data.Changes["stage"].To)
	require.Equal(t, "api", payload.Data.Source)
	require.Equal(t, records.Actor{Kind: "api_key", ID: financeKeyID}, payload.Data.Actor)

	b.open("/webhooks/"+id, "#log")
	require.Contains(t, b.text("#log"), "Succeeded")
	require.Contains(t, b.text("#log"), "record.updated")
	require.NotContains(t, html.UnescapeString(b.html()), secret, "the secret was shown once")
	b.screenshots("endpoint")

	// The receiver fails: the next deal's delivery fails, and the log
	// filtered to failures shows each attempt with its error and the
	// receiver's answer.
	rv.setStatus(http.StatusBadGateway)
	e.closeDeal(t, financeKey, "Bigger deal")
	ds := e.waitDeliveries(t, id, 2)
	require.Equal(t, outbound.StatusFailed, ds[0].Status)
	b.open("/webhooks/"+id, "#log")
	b.do("filter failed",
		chromedp.SetValue(chromedp.ID("filter_status"), "failed"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#log .badge.ok`)),
		chromedp.Click(chromedp.CSS(`#log details.delivery > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#log .attempt-error`)),
	)
	logText := b.text("#log")
	require.Contains(t, logText, "Failed")
	require.Contains(t, logText, "2 attempts")
	require.Contains(t, logText, "HTTP 502")
	require.Contains(t, b.text("#log .attempt-error"), "unexpected status 502 Bad Gateway")
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(t, err)
	require.Contains(t, loc, "status=failed", "htmx pushed the filter into the URL")
	b.do("show the receiver's answer", chromedp.Click(chromedp.CSS(`#log details.delivery .attempt details:last-of-type > summary`)))
	require.Contains(t, b.text("#log"), "receiver says no")
	b.screenshots("endpoint-failed")

	// Redeliver once the receiver is fixed: it succeeds, by hand.
	rv.setStatus(http.StatusOK)
	b.do("redeliver",
		chromedp.Click(chromedp.CSS(`#log details.delivery form.inline button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	require.Contains(t, b.text("p.notice"), "queued to be sent again")
	require.Eventually(t, func() bool {
		d, err := e.svc.Webhooks().Delivery(ctx, e.ws, ds[0].ID)
		return err == nil && d.Status == outbound.StatusSucceeded
	}, waitTimeout, 20*time.Millisecond)
	b.open("/deliveries/"+ds[0].ID, "details.delivery[open]")
	delivery := b.text("details.delivery")
	require.Contains(t, delivery, "Succeeded")
	require.Contains(t, delivery, "Attempt 3")
	require.Contains(t, delivery, "manual")
	b.screenshots("redelivered")

	// The list shows the endpoint's health.
	b.open("/webhooks", "table.list")
	list := b.text("table.list")
	require.Contains(t, list, "Healthy")
	require.Contains(t, list, "0% of 2", "both deliveries succeeded in the end")
	b.screenshots("webhooks")

	// The audit log: the deals' writes, made through the API by the key.
	b.do("audit log",
		chromedp.Click(chromedp.CSS(`nav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.ID("actor")),
		chromedp.SetValue(chromedp.ID("source"), "api"),
		chromedp.SendKeys(chromedp.ID("actor"), financeKeyID),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		// The value attribute is the server's: the filtered page has come.
		chromedp.WaitVisible(chromedp.CSS(`#actor[value="`+financeKeyID+`"]`)),
	)
	audit := b.text("table.list")
	require.Contains(t, audit, deal)
	require.Contains(t, audit, "Finance Sync")
	require.Equal(t, 4, strings.Count(b.html(), `<td data-label="Action">`), "two deals, each created and closed")
	b.screenshots("audit")

	// Sign out ends the session.
	b.do("sign out",
		chromedp.Click(chromedp.CSS(`form.signout button`)),
		chromedp.WaitVisible(chromedp.ID("key")),
	)
	require.Contains(t, b.text("p.notice"), "You have signed out.")
	b.screenshots("signed-out")
	b.open("/keys", "#key")
	b.open("/webhooks/"+id, "#key")

	logs := e.logs.String()
	require.NotContains(t, logs, e.admin)
	require.NotContains(t, logs, financeKey)
	require.NotContains(t, logs, secret)
	t.Logf("axe-core checked %d page views: %s", len(b.checked), strings.Join(b.checked, ", "))
}
