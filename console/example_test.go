package console_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/store"
)

// A host mounts the console under a path of its own; people who are not
// signed in are sent to its sign-in page, which asks for an ADMIN key.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "console-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "crmkit.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	keys, err := apikey.New(apikey.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}

	h, err := console.New(console.Config{Keys: keys, Audit: st, BasePath: "/admin"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/admin/audit", nil))
	fmt.Println(rec.Code, rec.Header().Get("Location"))
	// Output:
	// 303 /admin/sign-in?next=%2Fadmin%2Faudit
}
