package apikey

import (
	"fmt"
	"slices"
	"strings"

	"github.com/smartlite/crmkit/records"
)

// Scope is a permission a key carries. Scopes are written in capitals.
type Scope string

// The scopes. ADMIN implies every other scope, and WRITE, DELETE and BULK
// each imply READ: a write's answer (the record written, or only whether a
// record exists) already tells what a read would, so a write scope that did
// not read would protect nothing. Stripe's restricted keys follow the same
// rule.
const (
	ScopeRead   Scope = "READ"
	ScopeWrite  Scope = "WRITE"
	ScopeDelete Scope = "DELETE"
	ScopeBulk   Scope = "BULK"
	ScopeAdmin  Scope = "ADMIN"
)

// AllScopes lists every scope in canonical order.
var AllScopes = []Scope{ScopeRead, ScopeWrite, ScopeDelete, ScopeBulk, ScopeAdmin}

func (s Scope) rank() int { return slices.Index(AllScopes, s) }

// Valid reports whether s is one of AllScopes.
func (s Scope) Valid() bool { return s.rank() >= 0 }

// ParseScope accepts a scope name in any case and returns it in capitals.
func ParseScope(s string) (Scope, error) {
	sc := Scope(strings.ToUpper(strings.TrimSpace(s)))
	if !sc.Valid() {
		return "", fmt.Errorf("apikey: unknown scope %q (want one of READ, WRITE, DELETE, BULK, ADMIN)", s)
	}
	return sc, nil
}

// NormalizeScopes validates scopes and returns them deduplicated in canonical
// order. An empty or invalid list is a *records.ValidationError on "scopes".
func NormalizeScopes(in []Scope) ([]Scope, error) {
	if len(in) == 0 {
		return nil, scopesError("required", "at least one scope is required")
	}
	out := make([]Scope, 0, len(in))
	for _, s := range in {
		sc, err := ParseScope(string(s))
		if err != nil {
			return nil, scopesError("one_of", err.Error())
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	slices.SortFunc(out, func(a, b Scope) int { return a.rank() - b.rank() })
	return out, nil
}

func scopesError(code, msg string) error {
	return &records.ValidationError{Object: "api_key", Fields: []records.FieldError{{Field: "scopes", Code: code, Message: msg}}}
}

// Grants reports whether a key holding have may do what need allows: it
// holds need itself, or ADMIN, or need is READ and it holds a write scope
// (WRITE, DELETE or BULK).
func Grants(have []Scope, need Scope) bool {
	for _, s := range have {
		if s == need || s == ScopeAdmin {
			return true
		}
		if need == ScopeRead && (s == ScopeWrite || s == ScopeDelete || s == ScopeBulk) {
			return true
		}
	}
	return false
}
