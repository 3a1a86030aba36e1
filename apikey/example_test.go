package apikey_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/smartlite/crmkit/apikey"
)

// A stand-in for *apikey.Service: one known key with READ only.
func exampleVerifier(known string) apikey.Verifier {
	return apikey.VerifierFunc(func(ctx context.Context, plaintext string) (*apikey.Principal, error) {
		if _, err := apikey.Parse(plaintext); err != nil {
			return nil, err
		}
		if plaintext != known {
			return nil, apikey.ErrUnknownKey
		}
		return &apikey.Principal{KeyID: "key_example", Workspace: "ws_example", Name: "Finance Sync", Scopes: []apikey.Scope{apikey.ScopeRead}}, nil
	})
}

func ExampleAuthenticate() {
	key, _ := apikey.Generate(nil)
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := apikey.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "hello %s of %s", p.Name, p.Workspace)
	})
	srv := httptest.NewServer(apikey.Authenticate(exampleVerifier(key))(hello))
	defer srv.Close()

	for _, auth := range []string{"Bearer " + key, "Bearer slk_wrong", ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
		} else {
			fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type"))
		}
	}
	// Output:
	// 200 hello Finance Sync of ws_example
	// 401 Bearer application/problem+json
	// 401 Bearer application/problem+json
}

func ExampleRequireScope() {
	key, _ := apikey.Generate(nil)
	auth := apikey.Authenticate(exampleVerifier(key))
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /records", auth(apikey.RequireScope(apikey.ScopeRead)(ok)))
	mux.Handle("POST /records", auth(apikey.RequireScope(apikey.ScopeWrite)(ok)))

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req := httptest.NewRequest(method, "/records", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(method, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// GET 200 ok
	// POST 403 {"type":"https://smartlite.dev/problems/missing_scope","title":"Forbidden","status":403,"detail":"this API key lacks the WRITE scope","code":"missing_scope","scope":"WRITE"}
}

func ExampleParse() {
	_, err := apikey.Parse("slk_not-a-key")
	fmt.Println(err)
	key, _ := apikey.Generate(nil)
	c := "a"
	if key[10] == 'a' {
		c = "b"
	}
	typo := key[:10] + c + key[11:]
	_, err = apikey.Parse(typo)
	fmt.Println(err)
	p, _ := apikey.Parse(key)
	fmt.Println(len(p.Hash), p.Display == key[:8])
	// Output:
	// apikey: invalid key: malformed
	// apikey: invalid key: bad checksum
	// 64 true
}
