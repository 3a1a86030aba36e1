// Package problem writes RFC 9457 problem details. Every HTTP error crmkit
// answers goes through Write, so the shape of an error is decided here once.
package problem

import (
	"encoding/json"
	"net/http"
)

// Details is an RFC 9457 problem document with crmkit's extensions: a stable
// machine Code, and per-field Errors for validation failures.
type Details struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	// Scope names the scope a 403 needed.
	Scope string `json:"scope,omitempty"`
	// Limit names what a 403 plan_limit_exceeded or a 429 hit:
	// "api_keys", "webhook_endpoints"; "key" or "workspace" for a rate
	// limit.
	Limit  string `json:"limit,omitempty"`
	Errors any    `json:"errors,omitempty"`
	// ErrorsOmitted counts the errors left out of a capped Errors list.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Write answers with p, filling Type and Title from the status when empty.
func Write(w http.ResponseWriter, p Details) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Type == "" {
		p.Type = "https://smartlite.dev/problems/" + p.Code
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
