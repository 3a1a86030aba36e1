package integration

import (
	"net/http"
	"strconv"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

func (s *Service) keysFeature() feature {
	return feature{name: "keys", routes: s.keyRoutes(), schemas: keySchemas()}
}

func keySchemas() map[string]any {
	return map[string]any{
		"Scope": str("A key scope; ADMIN implies every other, and WRITE, DELETE and BULK imply READ.", "enum", scopeNames()),
		"Key": obj("An API key's metadata; the plaintext is never shown again after creation.",
			[]string{"id", "name", "prefix", "scopes", "created_at"}, map[string]any{
				"id":           str("", "example", "key_01hzy3v6b5q6c8n9d0e1f2g3h4"),
				"name":         str("", "example", "Finance Sync"),
				"prefix":       str("The key's first characters, to tell keys apart.", "example", "slk_4fQz"),
				"scopes":       map[string]any{"type": "array", "items": ref("Scope")},
				"created_at":   dateTime(""),
				"expires_at":   nullable(dateTime("")),
				"last_used_at": nullable(dateTime("Updated at most about once a minute.")),
				"revoked_at":   nullable(dateTime("For a rotated key, when its grace period ends.")),
			}),
		"KeyCreated": map[string]any{"allOf": []any{ref("Key"), obj("", []string{"key"}, map[string]any{
			"key": str("The plaintext key. Shown only in this response: store it now.", "example", "slk_…"),
		})}},
		"KeyInput": obj("A new key.", []string{"name", "scopes"}, map[string]any{
			"name":       str("", "example", "Finance Sync"),
			"scopes":     map[string]any{"type": "array", "items": ref("Scope"), "minItems": 1},
			"expires_at": nullable(dateTime("")),
		}),
		"KeyRotate": obj("How long the old key keeps working.", nil, map[string]any{
			"grace_seconds": map[string]any{"type": "integer", "minimum": 0, "default": 0,
				"description": "Seconds the old key stays valid; 0 revokes it at once."},
		}),
		"KeyList": list("Key"),
	}
}

func (s *Service) keyRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/keys", scope: apikey.ScopeAdmin, handle: s.createKey, tag: "keys", id: "createKey",
			summary: "Create an API key; the plaintext is in this response only", request: "KeyInput",
			status: 201, response: "KeyCreated", errors: []int{400, 413, 422}},
		{method: "GET", pattern: "/api/v1/keys", scope: apikey.ScopeAdmin, handle: s.listKeys, tag: "keys", id: "listKeys",
			summary: "List the workspace's API keys", query: []param{limitParam, cursorParam},
			status: 200, response: "KeyList", errors: []int{400}},
		{method: "GET", pattern: "/api/v1/keys/{id}", scope: apikey.ScopeAdmin, handle: s.getKey, tag: "keys", id: "getKey",
			summary: "Get an API key's metadata", status: 200, response: "Key", errors: []int{404}},
		{method: "DELETE", pattern: "/api/v1/keys/{id}", scope: apikey.ScopeAdmin, handle: s.revokeKey, tag: "keys", id: "revokeKey",
			summary: "Revoke an API key at once", status: 200, response: "Key", errors: []int{404}},
		{method: "POST", pattern: "/api/v1/keys/{id}/rotate", scope: apikey.ScopeAdmin, handle: s.rotateKey, tag: "keys", id: "rotateKey",
			summary: "Issue a replacement key; the old one works on for grace_seconds", request: "KeyRotate",
			status: 201, response: "KeyCreated", errors: []int{400, 404, 409, 413, 422}},
	}
}

type keyInput struct {
	Name      string         `json:"name"`
	Scopes    []apikey.Scope `json:"scopes"`
	ExpiresAt *time.Time     `json:"expires_at"`
}

// keyCreated is a key's metadata with its plaintext, the one time it is shown.
type keyCreated struct {
	apikey.Key
	Plaintext string `json:"key"`
}

func (s *Service) createKey(w http.ResponseWriter, r *http.Request) error {
	var in keyInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	scopes, err := apikey.NormalizeScopes(in.Scopes)
	if err != nil {
		return err
	}
	caller, _ := apikey.PrincipalFrom(r.Context())
	for _, sc := range scopes {
		if !caller.Has(sc) {
			return &requestError{status: http.StatusForbidden, code: "missing_scope", scope: string(sc),
				detail: "a key cannot grant the " + string(sc) + " scope it does not hold"}
		}
	}
	k, plain, err := s.keys.Create(r.Context(), caller.Workspace, in.Name, scopes, in.ExpiresAt)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/keys/"+k.ID)
	return writeJSON(w, http.StatusCreated, keyCreated{Key: k, Plaintext: plain})
}

func (s *Service) listKeys(w http.ResponseWriter, r *http.Request) error {
	return listRoute(func(r *http.Request, cursor string, limit int) ([]apikey.Key, error) {
		return s.keys.List(r.Context(), workspaceOf(r), cursor, limit)
	}, func(k apikey.Key) string { return k.ID })(w, r)
}

func (s *Service) getKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.keys.Get(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k)
}

func (s *Service) revokeKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.keys.Revoke(r.Context(), workspaceOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k)
}

// maxGrace bounds a rotation's grace period: a week is long enough to roll a
// key out everywhere, and an old key living on for months is a revocation
// that did not happen.
const maxGrace = 7 * 24 * time.Hour

func (s *Service) rotateKey(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		GraceSeconds int64 `json:"grace_seconds"`
	}
	if r.ContentLength != 0 {
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
	}
	grace := time.Duration(in.GraceSeconds) * time.Second
	if in.GraceSeconds < 0 || grace > maxGrace {
		return errInvalid(records.FieldError{Field: "grace_seconds", Code: "max",
			Message: "must be from 0 to " + strconv.FormatInt(int64(maxGrace/time.Second), 10) + " seconds"})
	}
	k, plain, err := s.keys.Rotate(r.Context(), workspaceOf(r), r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/keys/"+k.ID)
	return writeJSON(w, http.StatusCreated, keyCreated{Key: k, Plaintext: plain})
}
