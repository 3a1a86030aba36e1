package problem_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/smartlite/crmkit/internal/problem"
)

func ExampleWrite() {
	rec := httptest.NewRecorder()
	problem.Write(rec, problem.Details{Status: http.StatusForbidden, Code: "missing_scope", Scope: "WRITE", Detail: "this key lacks the WRITE scope"})
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Print(rec.Body.String())
	// Output:
	// 403 application/problem+json
	// {"type":"https://smartlite.dev/problems/missing_scope","title":"Forbidden","status":403,"detail":"this key lacks the WRITE scope","code":"missing_scope","scope":"WRITE"}
}
