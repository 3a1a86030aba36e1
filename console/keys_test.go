package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
)

var plaintextField = regexp.MustCompile(`id="plaintext" class="mono" value="(slk_[0-9A-Za-z]+)"`)

func TestKeys(t *testing.T) {
	// The clock moves past a grace period; the session outlives it.
	e := newEnv(t, func(c *console.Config) { c.IdleTimeout = 24 * time.Hour })
	ctx := context.Background()
	b := e.browser(t)
	b.signIn(e.admin)

	p := b.get("/keys/new")
	require.Equal(t, http.StatusOK, p.status)
	for _, s := range apikey.AllScopes {
		require.Contains(t, p.body, `name="scopes" value="`+string(s)+`"`)
	}
	require.Contains(t, p.body, `<label for="name">Name</label>`)

	// The guide's key: Finance Sync, READ and WRITE.
	p = b.post("/keys", url.Values{"name": {"Finance Sync"}, "scopes": {"READ", "WRITE"}})
	require.Equal(t, http.StatusCreated, p.status, p.body)
	m := plaintextField.FindStringSubmatch(p.body)
	require.NotNil(t, m, "the plaintext is shown")
	plain := m[1]
	require.Contains(t, p.body, "shown only this once")
	require.Contains(t, p.body, `data-copy="plaintext"`)
	principal, err := e.keys.Verify(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, e.ws, principal.Workspace)
	require.Equal(t, []apikey.Scope{apikey.ScopeRead, apikey.ScopeWrite}, principal.Scopes)

	list := b.get("/keys")
	require.Contains(t, list.body, "Finance Sync")
	require.Contains(t, list.body, plain[:apikey.DisplayLen]+"…")
	require.Contains(t, list.body, "READ, WRITE")
	require.NotContains(t, list.body, plain, "the plaintext is shown only once")

	t.Run("expiry", func(t *testing.T) {
		day := e.clock.Now().UTC().AddDate(0, 0, 3).Format(time.DateOnly)
		p := b.post("/keys", url.Values{"name": {"Temp"}, "scopes": {"READ"}, "expires": {day}})
		require.Equal(t, http.StatusCreated, p.status)
		require.Contains(t, p.body, day+" 00:00 UTC")
	})

	t.Run("field errors beside their fields", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			form  url.Values
			field string
			msg   string
		}{
			{"no name", url.Values{"name": {" "}, "scopes": {"READ"}}, "name", "a name is required"},
			{"no scope", url.Values{"name": {"No scope"}}, "scopes", "at least one scope is required"},
			{"past expiry", url.Values{"name": {"Old"}, "scopes": {"READ"}, "expires": {"2001-01-01"}}, "expires", "must be in the future"},
			{"bad date", url.Values{"name": {"Odd"}, "scopes": {"READ"}, "expires": {"soon"}}, "expires", "YYYY-MM-DD"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := b.post("/keys", tc.form)
				require.Equal(t, http.StatusUnprocessableEntity, p.status)
				require.Regexp(t, `<p class="field-error" id="`+tc.field+`-error">[^<]*`+regexp.QuoteMeta(tc.msg), p.body)
				require.Contains(t, p.body, `aria-describedby="`, "the input points at its error")
				if n := tc.form.Get("name"); strings.TrimSpace(n) != "" {
					require.Contains(t, p.body, `value="`+n+`"`, "what was typed is kept")
				}
			})
		}
	})

	t.Run("revoke asks first", func(t *testing.T) {
		k, victim, err := e.keys.Create(ctx, e.ws, "Old integration", []apikey.Scope{apikey.ScopeRead}, nil)
		require.NoError(t, err)
		p := b.get("/keys/" + k.ID + "/revoke")
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, "Revoke “Old integration”?")
		_, err = e.keys.Verify(ctx, victim)
		require.NoError(t, err, "showing the confirmation changes nothing")

		p = b.post("/keys/"+k.ID+"/revoke", nil)
		require.Equal(t, "/keys", p.url.Path)
		require.Contains(t, p.body, "The key was revoked.")
		_, err = e.keys.Verify(ctx, victim)
		require.ErrorIs(t, err, apikey.ErrRevoked)
		require.Regexp(t, `(?s)Old integration.*?Revoked`, p.body)
	})

	t.Run("rotate with a grace period", func(t *testing.T) {
		k, old, err := e.keys.Create(ctx, e.ws, "Billing", []apikey.Scope{apikey.ScopeRead, apikey.ScopeBulk}, nil)
		require.NoError(t, err)
		p := b.get("/keys/" + k.ID + "/rotate")
		require.Contains(t, p.body, `name="grace_hours"`)

		p = b.post("/keys/"+k.ID+"/rotate", url.Values{"grace_hours": {"many"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, p.body, "whole number of hours")

		p = b.post("/keys/"+k.ID+"/rotate", url.Values{"grace_hours": {"2"}})
		require.Equal(t, http.StatusCreated, p.status, p.body)
		m := plaintextField.FindStringSubmatch(p.body)
		require.NotNil(t, m)
		require.NotEqual(t, old, m[1])
		require.NotContains(t, p.body, old)
		np, err := e.keys.Verify(ctx, m[1])
		require.NoError(t, err)
		require.Equal(t, []apikey.Scope{apikey.ScopeRead, apikey.ScopeBulk}, np.Scopes)
		_, err = e.keys.Verify(ctx, old)
		require.NoError(t, err, "the old key works during the grace period")

		e.clock.Advance(2*time.Hour + time.Second)
		_, err = e.keys.Verify(ctx, old)
		require.ErrorIs(t, err, apikey.ErrRevoked)

		p = b.post("/keys/"+k.ID+"/rotate", url.Values{"grace_hours": {"0"}})
		require.Equal(t, http.StatusConflict, p.status)
		require.Contains(t, p.body, "cannot be rotated")
	})
}

func TestWorkspaceIsolation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	rv := newReceiver(t)
	theirKey, theirPlain, err := e.keys.Create(ctx, e.ws2, "Globex secret project", []apikey.Scope{apikey.ScopeRead}, nil)
	require.NoError(t, err)
	theirHook, _, err := e.hooks.Create(ctx, e.ws2, endpointInput(rv.srv.URL+"/globex"))
	require.NoError(t, err)
	e.closeDeal(t, e.ws2)
	theirDelivery := e.waitDeliveries(t, e.ws2, theirHook.ID, 1)[0]

	b := e.browser(t)
	b.signIn(e.admin)
	for _, path := range []string{"/keys", "/webhooks", "/audit"} {
		p := b.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		for _, theirs := range []string{"Globex", theirKey.ID, theirKey.Prefix, theirHook.ID, "/globex", theirDelivery.ID, e.ws2} {
			require.NotContains(t, p.body, theirs, path)
		}
	}
	for _, path := range []string{"/keys/" + theirKey.ID + "/revoke", "/keys/" + theirKey.ID + "/rotate",
		"/webhooks/" + theirHook.ID, "/deliveries/" + theirDelivery.ID} {
		p := b.get(path)
		require.Equal(t, http.StatusNotFound, p.status, path)
		require.NotContains(t, p.body, "Globex")
	}
	b.get("/keys")
	for _, path := range []string{"/keys/" + theirKey.ID + "/revoke", "/keys/" + theirKey.ID + "/rotate",
		"/webhooks/" + theirHook.ID + "/enabled", "/webhooks/" + theirHook.ID + "/rotate-secret",
		"/webhooks/" + theirHook.ID + "/test", "/deliveries/" + theirDelivery.ID + "/redeliver"} {
		p := b.post(path, url.Values{"grace_hours": {"0"}, "enabled": {"false"}})
		require.Equal(t, http.StatusNotFound, p.status, path)
	}
	_, err = e.keys.Verify(ctx, theirPlain)
	require.NoError(t, err, "their key still works")
	hook, err := e.hooks.Get(ctx, e.ws2, theirHook.ID)
	require.NoError(t, err)
	require.True(t, hook.Enabled)
	require.Equal(t, theirHook.Secret, hook.Secret)
}

// TestKeyNeverShown walks every page signed in with a key and checks that
// the key is in no URL, no page and no log line.
func TestKeyNeverShown(t *testing.T) {
	e := newEnv(t, nil)
	rv := newReceiver(t)
	b := e.browser(t)
	b.signIn(e.admin)
	hook, secret := createEndpoint(t, b, rv.srv.URL+"/hook")
	e.closeDeal(t, e.ws)
	ds := e.waitDeliveries(t, e.ws, hook, 1)
	for _, path := range []string{"/", "/keys", "/keys/new", "/webhooks", "/webhooks/new", "/webhooks/" + hook,
		"/webhooks/" + hook + "?status=succeeded", "/deliveries/" + ds[0].ID, "/audit", "/sign-in"} {
		require.Equal(t, http.StatusOK, b.get(path).status, path)
	}
	b.post("/webhooks/"+hook+"/test", nil)
	b.post("/sign-out", nil)
	b.get("/sign-in")
	b.post("/sign-in", url.Values{"key": {e.admin + "x"}}) // refused, logged

	urls, pages := b.seen()
	logs := e.logs.String()
	require.Contains(t, logs, "console: signed in")
	require.Contains(t, logs, "console: sign-in refused")
	for name, text := range map[string]string{"URLs": urls, "pages": pages, "log": logs} {
		require.NotContains(t, text, e.admin, "the ADMIN key in %s", name)
		require.NotContains(t, text, e.admin[len(apikey.Prefix):], "the ADMIN key's body in %s", name)
	}
	require.Equal(t, 1, strings.Count(pages, secret), "the webhook secret, once")
	require.NotContains(t, urls+logs, secret)
	for _, sig := range rv.signatures() {
		if sig == "" {
			continue
		}
		require.NotContains(t, pages+logs, sig, "a signature")
	}
}
