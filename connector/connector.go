package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// Modes, delete policies, run triggers and run statuses.
const (
	ModeIncremental = "incremental"
	ModeFull        = "full"

	DeletesOff    = "off"
	DeletesDelete = "delete"
	DeletesFlag   = "flag"

	TriggerManual   = "manual"
	TriggerSchedule = "schedule"

	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
)

// DefaultMaxDeleteRatio is the largest share of a connector's records one
// full run may delete when the connector does not say.
const DefaultMaxDeleteRatio = 0.5

// FlagField is the datetime field deletes "flag" sets on records a complete
// full run no longer saw; every target object of such a connector needs it.
const FlagField = "connector_deleted_at"

// redactedValue replaces every header value shown back.
const redactedValue = "[redacted]"

// Connector is a pull connector: where it fetches (its kind and the kind's
// settings), how the records map, when it runs and what it does with
// records that disappear upstream.
type Connector struct {
	ID        string
	Workspace string
	Name      string
	// Kind names the Poller's factory in the Registry; KindHTTP by default.
	Kind string
	// Settings are the kind's own members of the definition (for KindHTTP,
	// url, records_path, pagination, incremental), as a JSON object,
	// without headers.
	Settings json.RawMessage
	// Headers are the credentials sent with every request. They are never
	// shown back (see MarshalJSON) and never logged.
	Headers        map[string]string
	Schedule       string
	Mode           string
	Deletes        string
	MaxDeleteRatio float64
	Mapping        mapping.Spec
	Enabled        bool
	CreatedAt      time.Time
	UpdatedAt      time.Time

	// State is the stored Sync (see Sync.String); ActiveRunID the run that
	// holds the connector, "" when none does. Both are kept by the store.
	State       string
	ActiveRunID string
}

// definition answers the document the kind's Factory reads: the settings
// with the headers.
func (c *Connector) definition() (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(c.Settings) > 0 {
		if err := json.Unmarshal(c.Settings, &m); err != nil {
			return nil, fmt.Errorf("connector %s: settings: %w", c.ID, err)
		}
	}
	if len(c.Headers) > 0 {
		h, _ := json.Marshal(c.Headers)
		m["headers"] = h
	}
	return json.Marshal(m)
}

// incrementalField answers the dot path of the incremental field of a
// KindHTTP connector's settings ("" for none), which other kinds may name
// the same way.
func (c *Connector) incrementalField() string {
	var s struct {
		Incremental *Incremental `json:"incremental"`
	}
	_ = json.Unmarshal(c.Settings, &s)
	if s.Incremental == nil {
		return ""
	}
	return s.Incremental.Field
}

// start answers the checkpoint a new or reset connector begins at:
// incremental.start of its settings.
func (c *Connector) start() Checkpoint {
	var s struct {
		Incremental *Incremental `json:"incremental"`
	}
	_ = json.Unmarshal(c.Settings, &s)
	if s.Incremental == nil {
		return Checkpoint{}
	}
	return Checkpoint{Value: s.Incremental.Start}
}

// MarshalJSON answers the connector as the API shows it: the definition's
// members flat, as they were given, with every header value "[redacted]",
// and the sync state as "checkpoint".
func (c *Connector) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if len(c.Settings) > 0 {
		var s map[string]json.RawMessage
		if err := json.Unmarshal(c.Settings, &s); err != nil {
			return nil, err
		}
		for k, v := range s {
			m[k] = v
		}
	}
	headers := make(map[string]string, len(c.Headers))
	for name := range c.Headers {
		headers[name] = redactedValue
	}
	m["headers"] = headers
	m["id"], m["name"], m["kind"] = c.ID, c.Name, c.Kind
	m["schedule"], m["mode"], m["deletes"], m["max_delete_ratio"] = c.Schedule, c.Mode, c.Deletes, c.MaxDeleteRatio
	m["mapping"], m["enabled"] = c.Mapping, c.Enabled
	m["created_at"], m["updated_at"] = c.CreatedAt, c.UpdatedAt
	var active *string
	if c.ActiveRunID != "" {
		active = &c.ActiveRunID
	}
	m["active_run_id"] = active
	m["checkpoint"] = nil
	if c.State != "" {
		if st, err := ParseSync(c.State); err == nil {
			m["checkpoint"] = st.From
		}
	}
	return json.Marshal(m)
}

// common are the members of a definition every kind has; the others are the
// kind's settings.
var common = []string{"name", "kind", "headers", "schedule", "mode", "deletes", "max_delete_ratio", "mapping", "enabled"}

// apply reads a definition (create) or the members to change (update) onto
// c. Members absent stay as they are; a settings member given as null is
// removed. Header values given as "[redacted]" keep the stored value, so
// that a connector read back and sent again keeps its credentials.
func (c *Connector) apply(body []byte) error {
	var in map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil || in == nil {
		return &records.ValidationError{Fields: []records.FieldError{{Field: "body", Code: "invalid",
			Message: "the body must be a JSON object"}}}
	}
	var fe []records.FieldError
	bad := func(field, msg string) {
		fe = append(fe, records.FieldError{Field: field, Code: "type", Message: msg})
	}
	str := func(name string, dst *string) {
		if v, ok := in[name]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				bad(name, name+" must be a string")
			}
		}
	}
	str("name", &c.Name)
	str("kind", &c.Kind)
	str("schedule", &c.Schedule)
	str("mode", &c.Mode)
	str("deletes", &c.Deletes)
	if v, ok := in["max_delete_ratio"]; ok {
		if err := json.Unmarshal(v, &c.MaxDeleteRatio); err != nil {
			bad("max_delete_ratio", "max_delete_ratio must be a number")
		}
	}
	if v, ok := in["enabled"]; ok {
		if err := json.Unmarshal(v, &c.Enabled); err != nil {
			bad("enabled", "enabled must be true or false")
		}
	}
	if v, ok := in["mapping"]; ok {
		spec, err := mapping.ParseSpec(v)
		if err != nil {
			bad("mapping", err.Error())
		}
		c.Mapping = spec
	}
	if v, ok := in["headers"]; ok {
		var h map[string]string
		if err := json.Unmarshal(v, &h); err != nil {
			bad("headers", "headers must be an object of strings")
		}
		next := make(map[string]string, len(h))
		for name, value := range h {
			if value == redactedValue {
				old, ok := c.Headers[name]
				if !ok {
					fe = append(fe, records.FieldError{Field: "headers", Code: "invalid",
						Message: fmt.Sprintf("header %q has no stored value to keep; give its value", name)})
				}
				value = old
			}
			next[name] = value
		}
		c.Headers = next
	}
	settings := map[string]json.RawMessage{}
	if len(c.Settings) > 0 {
		if err := json.Unmarshal(c.Settings, &settings); err != nil {
			return err
		}
	}
	for k, v := range in {
		if slices.Contains(common, k) {
			continue
		}
		if string(v) == "null" {
			delete(settings, k)
		} else {
			settings[k] = v
		}
	}
	c.Settings, _ = json.Marshal(settings)
	if len(fe) > 0 {
		return &records.ValidationError{Fields: fe}
	}
	return nil
}

// defaults fills what a new connector leaves out.
func (c *Connector) defaults() {
	if c.Kind == "" {
		c.Kind = KindHTTP
	}
	if c.Mode == "" {
		c.Mode = ModeIncremental
	}
	if c.Deletes == "" {
		c.Deletes = DeletesOff
	}
	if c.MaxDeleteRatio == 0 {
		c.MaxDeleteRatio = DefaultMaxDeleteRatio
	}
}

// validate checks everything but the kind's settings, and compiles the
// mapping.
func (c *Connector) validate(objects mapping.Objects) (*mapping.Mapping, error) {
	var fe []records.FieldError
	add := func(field, code, msg string) {
		fe = append(fe, records.FieldError{Field: field, Code: code, Message: msg})
	}
	if strings.TrimSpace(c.Name) == "" {
		add("name", "required", "name is required")
	} else if len(c.Name) > 200 {
		add("name", "max", "name is longer than 200 bytes")
	}
	if c.Schedule != "" {
		if _, err := ParseSchedule(c.Schedule); err != nil {
			add("schedule", "invalid", strings.TrimPrefix(err.Error(), "connector: "))
		}
	}
	switch c.Mode {
	case ModeIncremental, ModeFull:
	default:
		add("mode", "one_of", "mode must be incremental or full")
	}
	switch c.Deletes {
	case DeletesOff:
	case DeletesDelete, DeletesFlag:
		if c.Mode != ModeFull {
			add("deletes", "invalid", "deletes need mode full: only a run that reads everything knows what is gone")
		}
	default:
		add("deletes", "one_of", "deletes must be off, delete or flag")
	}
	if c.MaxDeleteRatio <= 0 || c.MaxDeleteRatio > 1 {
		add("max_delete_ratio", "range", "max_delete_ratio must be more than 0 and at most 1")
	}
	m, err := mapping.Compile(c.Mapping, objects)
	var ce *mapping.CompileError
	switch {
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			add("mapping"+p.Path, p.Code, p.String())
		}
	case err != nil:
		add("mapping", "invalid", err.Error())
	}
	for i, t := range c.Mapping.Targets {
		path := fmt.Sprintf("mapping/targets/%d", i)
		if strings.TrimSpace(t.ExternalID) == "" {
			add(path+"/external_id", "required", fmt.Sprintf("target %d (%s): a connector upserts on the external id, so every target needs one; without it each run would create the records again", i, t.Object))
		}
		if c.Deletes == DeletesFlag {
			obj, ok := objects.Object(t.Object)
			if ok && !hasField(obj, FlagField) {
				add(path+"/object", "no_flag_field", fmt.Sprintf("deletes flag sets %s, which %s does not have", FlagField, t.Object))
			}
		}
	}
	if len(fe) > 0 {
		return nil, &records.ValidationError{Fields: fe}
	}
	return m, nil
}

func hasField(obj *records.Object, name string) bool {
	for _, f := range obj.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}
