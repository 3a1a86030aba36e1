package ratelimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/smartlite/crmkit/ratelimit"
)

func ExampleMiddleware() {
	// Who is calling and on which plan: in crmkit this comes from the API key
	// principal and the workspace's plan; here from a header.
	key := func(r *http.Request) (id, plan string, ok bool) {
		id = r.Header.Get("X-Key-ID")
		return id, "starter", id != ""
	}
	l, err := ratelimit.New(ratelimit.Config{Limits: map[string]uint64{"starter": 2}, Key: key})
	if err != nil {
		fmt.Println(err)
		return
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") })
	h := ratelimit.Middleware(l)(hello)

	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Key-ID", "key_01")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("RateLimit-Policy"), "remaining", rec.Header().Get("X-RateLimit-Remaining"), "retry-after set:", rec.Header().Get("Retry-After") != "")
	}
	// Output:
	// 200 "starter";q=2;w=60 remaining 1 retry-after set: false
	// 200 "starter";q=2;w=60 remaining 0 retry-after set: false
	// 429 "starter";q=2;w=60 remaining 0 retry-after set: true
}
