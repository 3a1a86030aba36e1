package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
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
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
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
	}
}

func (b *tab) open(path string, ready string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(ready)))
}

// TestBrowserWalkthrough follows the product guide in headless Chromium:
// sign in with the ADMIN key, create the "Finance Sync" key and read it
// once, register a webhook endpoint on a loopback receiver, see deliveries
// succeed and fail in its log, redeliver, and sign out.
func TestBrowserWalkthrough(t *testing.T) {
	chromium(t)
	e := newEnv(t, nil)
	ctx := context.Background()
	rv := newReceiver(t)
	b := newTab(t, e.srv.URL)

	// Sign in.
	b.open("/", "#key")
	b.screenshot("sign-in")
	b.do("sign in",
		chromedp.SendKeys(chromedp.ID("key"), e.admin),
		chromedp.Click(chromedp.CSS(`form[action="/sign-in"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/keys/new"]`)),
	)

	// API Keys → New Key → "Finance Sync", READ + WRITE.
	b.do("new key form",
		chromedp.Click(chromedp.CSS(`a.button[href="/keys/new"]`)),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Finance Sync"),
		chromedp.Click(chromedp.CSS(`input[name=scopes][value=READ]`)),
		chromedp.Click(chromedp.CSS(`input[name=scopes][value=WRITE]`)),
	)
	b.screenshot("new-key")
	b.do("create key",
		chromedp.Click(chromedp.CSS(`form[action="/keys"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("plaintext")),
		chromedp.WaitVisible(chromedp.CSS(`button.copy`)), // shown by script
	)
	plain := b.value("#plaintext")
	p, err := e.keys.Verify(ctx, plain)
	require.NoError(t, err, "the key shown works")
	require.Equal(t, []apikey.Scope{apikey.ScopeRead, apikey.ScopeWrite}, p.Scopes)
	b.screenshots("key-created")

	b.do("done", chromedp.Click(chromedp.CSS(`a.button[href="/keys"]`)), chromedp.WaitVisible(chromedp.CSS(`a.button[href="/keys/new"]`)))
	keysPage := b.html()
	require.Contains(t, keysPage, "Finance Sync")
	require.Contains(t, keysPage, "READ, WRITE")
	require.NotContains(t, keysPage, plain, "read once")
	require.NotContains(t, keysPage, e.admin)
	b.screenshots("keys")

	// Webhooks → New Endpoint → the loopback receiver, record.updated.
	b.do("new endpoint form",
		chromedp.Click(chromedp.CSS(`nav a[href="/webhooks"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/webhooks/new"]`)),
		chromedp.Click(chromedp.CSS(`a.button[href="/webhooks/new"]`)),
		chromedp.WaitVisible(chromedp.ID("url")),
		chromedp.SendKeys(chromedp.ID("url"), rv.srv.URL+"/finance"),
		chromedp.SendKeys(chromedp.ID("objects"), "opportunity"),
	)
	b.screenshot("new-endpoint")
	b.do("create endpoint",
		chromedp.Click(chromedp.CSS(`form[action="/webhooks"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("secret")),
	)
	secret := b.value("#secret")
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	eps, err := e.hooks.List(ctx, e.ws, "", 10)
	require.NoError(t, err)
	require.Len(t, eps, 1)
	id := eps[0].ID
	require.Equal(t, secret, eps[0].Secret)
	require.Equal(t, []string{"record.updated"}, eps[0].Events, "record.updated is checked by default")

	// A deal closes: the delivery is in the log.
	e.closeDeal(t, e.ws)
	e.waitDeliveries(t, e.ws, id, 1)
	b.open("/webhooks/"+id, "#log")
	require.Contains(t, b.text("#log"), "Succeeded")
	require.NotContains(t, html.UnescapeString(b.html()), secret, "the secret was shown once")

	// The receiver fails: the failed attempt shows its status and body.
	rv.setStatus(http.StatusBadGateway)
	e.closeDeal(t, e.ws)
	ds := e.waitDeliveries(t, e.ws, id, 2)
	require.Equal(t, outbound.StatusFailed, ds[0].Status)
	b.open("/webhooks/"+id, "#log")
	b.do("filter failed",
		chromedp.SetValue(chromedp.ID("filter_status"), "failed"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#log .badge.ok`)),
		chromedp.Click(chromedp.CSS(`#log details.delivery > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#log .attempt-error`)),
	)
	require.Contains(t, b.text("#log"), "HTTP 502")
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(t, err)
	require.Contains(t, loc, "status=failed", "htmx pushed the filter into the URL")
	b.screenshots("endpoint")

	// Redeliver once the receiver is fixed.
	rv.setStatus(http.StatusOK)
	b.do("redeliver",
		chromedp.Click(chromedp.CSS(`#log details.delivery form.inline button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	require.Eventually(t, func() bool {
		d, err := e.hooks.Delivery(ctx, e.ws, ds[0].ID)
		return err == nil && d.Status == outbound.StatusSucceeded
	}, waitTimeout, 20*time.Millisecond)
	b.open("/deliveries/"+ds[0].ID, "details.delivery[open]")
	require.Contains(t, b.text("details.delivery"), "manual")
	b.screenshot("redelivered")

	// Sign out ends the session.
	b.do("sign out",
		chromedp.Click(chromedp.CSS(`form.signout button`)),
		chromedp.WaitVisible(chromedp.ID("key")),
	)
	require.Contains(t, b.text("p.notice"), "You have signed out.")
	b.open("/keys", "#key")

	logs := e.logs.String()
	require.NotContains(t, logs, e.admin)
	require.NotContains(t, logs, plain)
	require.NotContains(t, logs, secret)
}
