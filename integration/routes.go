package integration

import (
	"net/http"
	"slices"
	"strings"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/problem"
)

// route is one operation of the REST API. The route table is the single
// source of truth: the mux is built from it and so is the OpenAPI document,
// and a test holds the two together.
type route struct {
	method  string
	pattern string // an http.ServeMux path pattern, e.g. /api/v1/records/{object}/{id}
	// scope is the API key scope the route needs; "" means the route takes no
	// key at all (health, the OpenAPI document, signed inbound calls).
	scope   apikey.Scope
	handle  func(w http.ResponseWriter, r *http.Request) error
	summary string
	id      string // OpenAPI operationId
	tag     string

	// What the OpenAPI document says about the operation.
	query    []param
	request  string // schema name of the JSON body; "" for none
	status   int    // success status
	response string // schema name of the success body; "" for none
	errors   []int  // problem statuses the route answers besides 401/403/429
	headers  []param
}

// param is one documented query or header parameter.
type param struct {
	name, description string
	schema            map[string]any
	style             string // OpenAPI "deepObject" for filter[field]
}

func (s *Service) metaFeature() feature {
	return feature{name: "meta", schemas: metaSchemas(), routes: []route{
		{method: "GET", pattern: "/healthz", handle: s.health, summary: "Liveness and database health", id: "health", tag: "meta",
			status: 200, response: "Health", errors: []int{503}},
		{method: "GET", pattern: "/readyz", handle: s.ready, summary: "Readiness: the database answers and background jobs run",
			id: "ready", tag: "meta", status: 200, response: "Readiness", errors: []int{503}},
		{method: "GET", pattern: "/api/v1/openapi.json", handle: s.openAPI, summary: "This document", id: "openapi", tag: "meta",
			status: 200, response: "OpenAPIDocument"},
	}}
}

// buildMux registers every route of the table, each behind its middleware
// chain, on a fresh mux.
func (s *Service) buildMux(rs []route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range rs {
		mux.Handle(rt.method+" "+rt.pattern, s.chain(rt))
	}
	// Anything no route matches ends here, so 404 and 405 are problem
	// documents like every other error.
	mux.Handle("/", s.accessLog(s.unmatched(mux, rs)))
	return mux
}

// unmatched answers requests no route takes: 405 with Allow when the path
// exists under other methods, 404 otherwise.
func (s *Service) unmatched(mux *http.ServeMux, rs []route) http.HandlerFunc {
	var methods []string
	for _, rt := range rs {
		if !slices.Contains(methods, rt.method) {
			methods = append(methods, rt.method)
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pat := mux.Handler(probe); pat != "" && pat != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			if slices.Contains(allow, "GET") {
				allow = append(allow, "HEAD")
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			problem.Write(w, problem.Details{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Detail: r.Method + " is not allowed here; allowed: " + strings.Join(allow, ", ")})
			return
		}
		problem.Write(w, problem.Details{Status: http.StatusNotFound, Code: "not_found", Detail: "no such route"})
	}
}
