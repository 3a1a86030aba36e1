package outbound

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/smartlite/crmkit/records"
)

// Endpoint is one URL a workspace wants record events pushed to.
type Endpoint struct {
	ID        string `json:"id"`
	Workspace string `json:"-"`
	URL       string `json:"url"`
	// Events are the event types the endpoint wants: "record.created",
	// "record.updated", "record.deleted", the wildcard "record.*", or "*".
	Events []string `json:"events"`
	// Objects limits the endpoint to records of these objects; empty means
	// every object.
	Objects []string `json:"objects"`
	// Condition, when set, limits the endpoint to events that changed one
	// field to one value.
	Condition   *Condition `json:"condition"`
	Description string     `json:"description"`
	Enabled     bool       `json:"enabled"`
	// Secret signs every delivery. PreviousSecret, until
	// PreviousSecretExpiresAt, signs them too, so a receiver still holding
	// it keeps verifying while it rolls over to the new one.
	Secret                  string     `json:"-"`
	PreviousSecret          string     `json:"-"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
	DisabledAt              *time.Time `json:"disabled_at,omitempty"`
	DisabledReason          string     `json:"disabled_reason,omitempty"`
	// FailingSince is the time of the first failed attempt after the last
	// success; nil while the endpoint is healthy.
	FailingSince *time.Time `json:"failing_since,omitempty"`
}

// Condition matches an event whose changes set Field to ChangedTo: an edge
// ("stage changed to Closed Won"), not a level, so an update that leaves a
// closed deal closed does not match again.
type Condition struct {
	Field     string `json:"field"`
	ChangedTo any    `json:"changed_to"`
}

// Secrets answers the secrets that sign a delivery made at now: the current
// one, then the previous one while its grace period lasts.
func (e *Endpoint) Secrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != "" && e.PreviousSecretExpiresAt != nil && now.Before(*e.PreviousSecretExpiresAt) {
		s = append(s, e.PreviousSecret)
	}
	return s
}

// Matches reports whether the endpoint wants ev, by event type, object and
// condition. It does not look at Enabled.
func (e *Endpoint) Matches(ev *records.Event) bool {
	if !slices.ContainsFunc(e.Events, func(p string) bool { return EventTypeMatches(p, ev.Type) }) {
		return false
	}
	if len(e.Objects) > 0 && !slices.Contains(e.Objects, ev.Object) {
		return false
	}
	return e.Condition.Matches(ev)
}

// Matches reports whether ev changed the condition's field to its value. A
// nil condition matches every event.
func (c *Condition) Matches(ev *records.Event) bool {
	if c == nil {
		return true
	}
	ch, ok := ev.Changes[c.Field]
	if !ok {
		return false
	}
	return jsonEqual(ch.To, c.ChangedTo)
}

// jsonEqual compares two values by their JSON text, so the float64 a decoded
// request holds equals the int a Go caller wrote.
func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// EventTypeMatches reports whether the pattern p selects the event type t.
// A pattern is a type, "*" for every type, or a prefix ending in ".*"
// ("record.*") for every type under it.
func EventTypeMatches(p, t string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasSuffix(p, ".*"):
		return strings.HasPrefix(t, p[:len(p)-1])
	default:
		return p == t
	}
}

// eventTypes are the types an endpoint may ask for; patterns must select
// at least one of them.
var eventTypes = []string{records.EventCreated, records.EventUpdated, records.EventDeleted}

func validEventPattern(p string) bool {
	return slices.ContainsFunc(eventTypes, func(t string) bool { return EventTypeMatches(p, t) })
}
