package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
)

func TestSignIn(t *testing.T) {
	e := newEnv(t, nil)

	t.Run("pages ask strangers to sign in", func(t *testing.T) {
		b := e.browser(t)
		p := b.get("/webhooks")
		require.Equal(t, "/sign-in", p.url.Path)
		require.Equal(t, "/webhooks", p.url.Query().Get("next"))
		require.Contains(t, p.body, `type="password"`)
	})

	t.Run("an ADMIN key opens a session", func(t *testing.T) {
		b := e.browser(t)
		b.get("/sign-in?next=/webhooks")
		form := url.Values{"key": {e.admin}, "next": {"/webhooks"}}
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/sign-in", strings.NewReader(form.Encode()+"&csrf="+url.QueryEscape(b.csrf)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range b.client.Jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		// Without following the redirect, to read the cookie it sets.
		resp, err := noRedirect(e.srv.Client()).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/webhooks", resp.Header.Get("Location"))
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "crmkit_console" {
				session = c
			}
		}
		require.NotNil(t, session, "session cookie")
		require.True(t, session.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, session.SameSite)
		require.False(t, session.Secure, "plain HTTP")
		require.Equal(t, "/", session.Path)
		require.Len(t, session.Value, 43, "32 random bytes, base64url")
		require.NotContains(t, session.Value, e.admin)

		p := b.signIn(e.admin)
		require.Equal(t, "/keys", p.url.Path)
		require.Contains(t, p.body, "Acme admin")
		require.Contains(t, p.body, "Sign out")
	})

	t.Run("refusals", func(t *testing.T) {
		_, readOnly, err := e.keys.Create(context.Background(), e.ws, "reader", []apikey.Scope{apikey.ScopeRead}, nil)
		require.NoError(t, err)
		revoked, revokedPlain, err := e.keys.Create(context.Background(), e.ws, "gone", []apikey.Scope{apikey.ScopeAdmin}, nil)
		require.NoError(t, err)
		_, err = e.keys.Revoke(context.Background(), e.ws, revoked.ID)
		require.NoError(t, err)
		for _, tc := range []struct {
			name, key string
			status    int
			message   string
		}{
			{"not a key", "slk_nonsense", http.StatusUnauthorized, "This key is not valid"},
			{"wrong checksum", e.admin[:len(e.admin)-1] + "x", http.StatusUnauthorized, "This key is not valid"},
			{"revoked", revokedPlain, http.StatusUnauthorized, "This key is not valid"},
			{"without ADMIN", readOnly, http.StatusForbidden, "does not have the ADMIN scope"},
			{"empty", "", http.StatusUnauthorized, "This key is not valid"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := e.browser(t)
				b.get("/sign-in")
				p := b.post("/sign-in", url.Values{"key": {tc.key}})
				require.Equal(t, tc.status, p.status)
				require.Contains(t, p.body, tc.message)
				if tc.key != "" {
					require.NotContains(t, p.body, tc.key, "a refused key is not rendered back")
				}
				require.Equal(t, "/sign-in", b.get("/keys").url.Path, "no session")
			})
		}
	})

	t.Run("the sign-in form needs its CSRF token", func(t *testing.T) {
		b := e.browser(t)
		b.get("/sign-in")
		p := b.post("/sign-in", url.Values{"key": {e.admin}, "csrf": {"forged"}})
		require.Equal(t, http.StatusForbidden, p.status)
		require.Equal(t, "/sign-in", b.get("/keys").url.Path)

		fresh := e.browser(t) // no sign-in cookie at all
		fresh.csrf = b.csrf
		p = fresh.post("/sign-in", url.Values{"key": {e.admin}})
		require.Equal(t, http.StatusForbidden, p.status)
	})

	t.Run("next must be a console page", func(t *testing.T) {
		for _, next := range []string{"https://evil.example/", "//evil.example/x", `/\evil.example`, "/sign-in"} {
			b := e.browser(t)
			b.get("/sign-in")
			p := b.post("/sign-in", url.Values{"key": {e.admin}, "next": {next}})
			require.Equal(t, e.srv.URL+"/keys", p.url.String(), next)
		}
	})

	t.Run("a key in the query string is ignored", func(t *testing.T) {
		b := e.browser(t)
		b.get("/sign-in")
		p := b.post("/sign-in?key="+url.QueryEscape(e.admin), url.Values{})
		require.Equal(t, http.StatusUnauthorized, p.status)
	})
}

func TestSecureCookieOverTLS(t *testing.T) {
	e := newEnv(t, nil)
	tls := httptest.NewTLSServer(e.srv.Config.Handler)
	t.Cleanup(tls.Close)
	b := e.browser(t)
	b.base = tls.URL
	b.client.Transport = recorder{b: b, next: tls.Client().Transport}
	b.get("/sign-in")
	form := url.Values{"key": {e.admin}, "csrf": {b.csrf}}
	req, err := http.NewRequest(http.MethodPost, tls.URL+"/sign-in", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range b.client.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := noRedirect(tls.Client()).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	cookies := resp.Cookies()
	require.NotEmpty(t, cookies)
	for _, c := range cookies {
		require.True(t, c.Secure, c.Name)
		require.True(t, c.HttpOnly, c.Name)
		require.Equal(t, http.SameSiteStrictMode, c.SameSite, c.Name)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	b.signIn(e.admin)
	b.get("/keys/new")
	good := b.csrf
	count := func() int {
		keys, err := e.keys.List(context.Background(), e.ws, "", 200)
		require.NoError(t, err)
		return len(keys)
	}
	before := count()
	form := func(csrf ...string) url.Values {
		v := url.Values{"name": {"Sneaky"}, "scopes": {"ADMIN"}}
		if len(csrf) > 0 {
			v["csrf"] = csrf
		}
		return v
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{"name": {"Sneaky"}, "scopes": {"ADMIN"}, "csrf": {""}}, nil},
		{"wrong token", form(wrongToken(good)), nil},
		{"another session's token", form(func() string { o := e.browser(t); o.signIn(e.admin); return o.csrf }()), nil},
		{"token in the query only", url.Values{"name": {"Sneaky"}, "scopes": {"ADMIN"}, "csrf": {""}}, nil},
		{"cross-site browser request", form(good), []string{"Sec-Fetch-Site", "cross-site"}},
		{"foreign origin", form(good), []string{"Origin", "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/keys"
			if tc.name == "token in the query only" {
				path += "?csrf=" + url.QueryEscape(good)
			}
			p := b.post(path, tc.form, tc.header...)
			require.Equal(t, http.StatusForbidden, p.status, p.body)
			require.Equal(t, before, count(), "nothing created")
		})
	}

	for _, path := range []string{"/sign-out", "/webhooks", "/keys/key_x/revoke", "/keys/key_x/rotate", "/deliveries/dlv_x/redeliver"} {
		p := b.post(path, url.Values{"csrf": {"nope"}})
		require.Equal(t, http.StatusForbidden, p.status, path)
	}

	p := b.post("/keys", form(good))
	require.Equal(t, http.StatusCreated, p.status)
	require.Equal(t, before+1, count())
	require.NotContains(t, e.logs.String(), good, "the token is never logged")
}

// wrongToken answers good with its first character changed.
func wrongToken(good string) string {
	if good[0] == 'x' {
		return "y" + good[1:]
	}
	return "x" + good[1:]
}

func TestSignOut(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	b.signIn(e.admin)
	u, err := url.Parse(e.srv.URL)
	require.NoError(t, err)
	cookies := b.client.Jar.Cookies(u)

	p := b.post("/sign-out", nil)
	require.Equal(t, "/sign-in", p.url.Path)
	require.Contains(t, p.body, "You have signed out.")
	require.Equal(t, "/sign-in", b.get("/keys").url.Path)

	// The old cookie, presented again, opens nothing.
	again := e.browser(t)
	again.client.Jar.SetCookies(u, cookies)
	require.Equal(t, "/sign-in", again.get("/keys").url.Path)
	require.Contains(t, e.logs.String(), "console: signed out")
}

func TestSessionEnds(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		e := newEnv(t, func(c *console.Config) { c.IdleTimeout = 10 * time.Minute })
		b := e.browser(t)
		b.signIn(e.admin)
		e.clock.Advance(8 * time.Minute)
		require.Equal(t, "/keys", b.get("/keys").url.Path, "in use")
		e.clock.Advance(8 * time.Minute)
		require.Equal(t, "/keys", b.get("/keys").url.Path, "use moved the deadline")
		e.clock.Advance(11 * time.Minute)
		require.Equal(t, "/sign-in", b.get("/keys").url.Path, "idle too long")
	})

	t.Run("maximum age", func(t *testing.T) {
		e := newEnv(t, func(c *console.Config) { c.IdleTimeout = time.Hour; c.MaxAge = 2 * time.Hour })
		b := e.browser(t)
		b.signIn(e.admin)
		for range 3 {
			e.clock.Advance(50 * time.Minute)
			b.get("/keys")
		}
		require.Equal(t, "/sign-in", b.get("/keys").url.Path)
	})

	t.Run("revoking the key", func(t *testing.T) {
		e := newEnv(t, nil)
		b := e.browser(t)
		b.signIn(e.admin)
		p, err := e.keys.Verify(context.Background(), e.admin)
		require.NoError(t, err)
		_, err = e.keys.Revoke(context.Background(), e.ws, p.KeyID)
		require.NoError(t, err)
		require.Equal(t, "/sign-in", b.get("/keys").url.Path)
	})
}

// headerAuth is a host's own authentication: a header names the workspace.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (console.Identity, bool, error) {
	ws := r.Header.Get("X-Test-Workspace")
	if ws == "" {
		return console.Identity{}, false, nil
	}
	return console.Identity{Workspace: ws, Actor: "usr_1", Name: "Ada", Session: r.Header.Get("X-Test-Session")}, true, nil
}

func TestAuthenticator(t *testing.T) {
	e := newEnv(t, func(c *console.Config) {
		c.Authenticator = headerAuth{}
		c.SignInURL = "/login"
	})
	req := func(method, path, ws, session string, form url.Values) page {
		t.Helper()
		r, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if ws != "" {
			r.Header.Set("X-Test-Workspace", ws)
			r.Header.Set("X-Test-Session", session)
		}
		resp, err := noRedirect(http.DefaultClient).Do(r)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}

	p := req("GET", "/keys", "", "", nil)
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Equal(t, "/login", p.header.Get("Location"))
	require.Equal(t, http.StatusNotFound, req("GET", "/sign-in", "", "", nil).status, "no sign-in page of its own")

	p = req("GET", "/keys/new", e.ws, "s1", nil)
	require.Equal(t, http.StatusOK, p.status)
	require.NotContains(t, p.body, "Sign out")
	token := csrfField.FindStringSubmatch(p.body)[1]

	create := url.Values{"name": {"Host made"}, "scopes": {"READ"}, "csrf": {token}}
	require.Equal(t, http.StatusForbidden, req("POST", "/keys", e.ws, "s2", create).status, "another session's token")
	require.Equal(t, http.StatusForbidden, req("POST", "/keys", e.ws2, "s1", create).status, "another workspace's token")
	require.Equal(t, http.StatusCreated, req("POST", "/keys", e.ws, "s1", create).status)

	keys, err := e.keys.List(context.Background(), e.ws, "", 200)
	require.NoError(t, err)
	require.Equal(t, "Host made", keys[len(keys)-1].Name)
}

// noRedirect answers a copy of c that does not follow redirects.
func noRedirect(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}
