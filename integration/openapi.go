package integration

import (
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/smartlite/crmkit/apikey"
)

// recordSchemas are the OpenAPI component schemas of the records routes.
func recordSchemas() map[string]any {
	return map[string]any{
		"Fields": obj("The record's field values, by field name, as the object's schema types them.", nil, nil,
			"additionalProperties", true),
		"Record": obj("A CRM record.", []string{"id", "object", "version", "created_at", "updated_at", "fields"}, map[string]any{
			"id":         str("Prefixed, time-sortable id.", "example", "rec_01hzy3v6b5q6c8n9d0e1f2g3h4"),
			"object":     str("The object the record belongs to.", "example", "opportunity"),
			"version":    integer("Grows by one on every write; send it back in If-Match."),
			"created_at": dateTime(""),
			"updated_at": dateTime(""),
			"fields":     ref("Fields"),
		}),
		"RecordInput": obj("The body of create, update and upsert; an update carries only the fields to change.",
			[]string{"fields"}, map[string]any{"fields": ref("Fields")}),
		"RecordList": list("Record"),
	}
}

// metaSchemas are the component schemas every route may refer to: problems
// and their field errors, health and the document itself.
func metaSchemas() map[string]any {
	return map[string]any{
		"FieldError": obj("One field that failed validation.", []string{"field", "code", "message"}, map[string]any{
			"field":   str("The field's name."),
			"code":    str("Machine code, e.g. required, invalid_type, one_of, unknown_field."),
			"message": str("Readable explanation."),
		}),
		"Problem": obj("An RFC 9457 problem document.", []string{"type", "title", "status", "code"}, map[string]any{
			"type":   str("URI of the problem type.", "format", "uri"),
			"title":  str(""),
			"status": integer(""),
			"detail": str(""),
			"code": str("Stable machine code: invalid_json, invalid_parameter, body_too_large, not_found, " +
				"version_conflict, duplicate, validation_failed, plan_limit_exceeded, unauthorized, " +
				"missing_scope, rate_limited, method_not_allowed, internal."),
			"scope":  str("The scope a 403 missing_scope needed."),
			"errors": map[string]any{"type": "array", "items": ref("FieldError"), "maxItems": maxProblemErrors},
			"errors_omitted": integer("How many field errors were left out of errors, which lists " +
				strconv.Itoa(maxProblemErrors) + " at most."),
		}),
		"Health": obj("Health of the service.", []string{"status"}, map[string]any{
			"status": str("ok, or unavailable when the database does not answer.", "enum", []string{"ok", "unavailable"}),
		}),
		"Readiness": obj("Readiness of this replica: 503 unless the database answers and its job client runs.",
			[]string{"status", "database", "jobs"}, map[string]any{
				"status":   str("", "enum", []string{"ok", "unavailable"}),
				"database": str("", "enum", []string{"ok", "unavailable"}),
				"jobs":     str("", "enum", []string{"running", "stopped"}),
			}),
		"OpenAPIDocument": obj("An OpenAPI 3.1 document.", nil, nil, "additionalProperties", true),
	}
}

func scopeNames() []string {
	out := make([]string, len(apikey.AllScopes))
	for i, s := range apikey.AllScopes {
		out[i] = string(s)
	}
	return out
}

// Schema builders, to keep the table above readable.

func obj(desc string, required []string, props map[string]any, extra ...any) map[string]any {
	m := map[string]any{"type": "object"}
	if desc != "" {
		m["description"] = desc
	}
	if props != nil {
		m["properties"] = props
	}
	if len(required) > 0 {
		m["required"] = required
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func str(desc string, extra ...any) map[string]any {
	m := map[string]any{"type": "string"}
	if desc != "" {
		m["description"] = desc
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func integer(desc string) map[string]any {
	m := map[string]any{"type": "integer"}
	if desc != "" {
		m["description"] = desc
	}
	return m
}

func dateTime(desc string) map[string]any { return str(desc, "format", "date-time") }

func nullable(s map[string]any) map[string]any {
	c := make(map[string]any, len(s))
	for k, v := range s {
		c[k] = v
	}
	c["type"] = []any{s["type"], "null"}
	return c
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func list(item string) map[string]any {
	return obj("One page; pass next_cursor as ?cursor= for the next, until it is null.", []string{"data", "next_cursor"}, map[string]any{
		"data":        map[string]any{"type": "array", "items": ref(item)},
		"next_cursor": map[string]any{"type": []any{"string", "null"}},
	})
}

var pathParam = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*)(\.\.\.)?\}`)

// openAPIDocument builds the OpenAPI 3.1 document from the features' route
// table and schemas.
func openAPIDocument(fs []feature, version string) map[string]any {
	schemas := map[string]any{}
	for _, f := range fs {
		maps.Copy(schemas, f.schemas)
	}
	paths := map[string]any{}
	for _, rt := range routeTable(fs) {
		item, _ := paths[rt.pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.pattern] = item
		}
		item[strings.ToLower(rt.method)] = operation(rt)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "crmkit REST API",
			"version": version,
			"description": "The integration API of the SmartLite CRM. Authenticate with an API key: " +
				"Authorization: Bearer slk_…. Each operation names the scope it needs in x-required-scope; " +
				"ADMIN implies every scope; WRITE, DELETE and BULK imply READ. Errors are RFC 9457 problem documents with a stable code.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"apiKey": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "slk_ API key"},
			},
			"responses": map[string]any{
				"Problem": map[string]any{"description": "A problem document.",
					"content": map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}}},
			},
		},
	}
}

func operation(rt route) map[string]any {
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, p := range rt.query {
		q := map[string]any{"name": p.name, "in": "query", "schema": p.schema}
		if p.description != "" {
			q["description"] = p.description
		}
		if p.style != "" {
			q["style"] = p.style
			q["explode"] = true
		}
		params = append(params, q)
	}
	for _, p := range rt.headers {
		params = append(params, map[string]any{"name": p.name, "in": "header", "description": p.description, "schema": p.schema})
	}
	op := map[string]any{"operationId": rt.id, "summary": rt.summary}
	if rt.tag != "" {
		op["tags"] = []string{rt.tag}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if rt.request != "" {
		op["requestBody"] = map[string]any{"required": true,
			"content": map[string]any{"application/json": map[string]any{"schema": ref(rt.request)}}}
	}
	responses := map[string]any{}
	ok := map[string]any{"description": http.StatusText(rt.status)}
	if rt.response != "" {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.response)}}
	}
	responses[strconv.Itoa(rt.status)] = ok
	if rt.method == "PUT" && rt.status == http.StatusOK && rt.request != "" {
		responses["201"] = map[string]any{"description": "Created",
			"content": map[string]any{"application/json": map[string]any{"schema": ref(rt.response)}}}
	}
	problems := rt.errors
	if rt.scope != "" {
		problems = append(problems[:len(problems):len(problems)], 401, 403, 429)
		op["security"] = []any{map[string]any{"apiKey": []any{}}}
		op["x-required-scope"] = string(rt.scope)
	} else {
		op["security"] = []any{}
	}
	for _, st := range problems {
		responses[strconv.Itoa(st)] = map[string]any{"$ref": "#/components/responses/Problem"}
	}
	op["responses"] = responses
	return op
}

// openAPI serves the document, built once at New.
func (s *Service) openAPI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = []string{"public, max-age=300"}
	_, _ = w.Write(s.openAPIJSON)
	return nil
}

func marshalDocument(doc map[string]any) ([]byte, error) {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
