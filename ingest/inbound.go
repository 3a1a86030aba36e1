package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
)

// Kinds of inbound source: how a source's deliveries are signed.
const (
	// KindShopify: X-Shopify-Hmac-Sha256, the base64 HMAC-SHA256 of the
	// body keyed with the app's client secret, taken as given.
	KindShopify = "shopify"
	// KindStandard: Standard Webhooks (webhook-id, webhook-timestamp,
	// webhook-signature), with a 5-minute tolerance.
	KindStandard = "standard"
	// KindSmartLite: X-SmartLite-Signature, as crmkit's own outbound
	// webhooks sign.
	KindSmartLite = "smartlite"
)

// Statuses of an inbound event.
const (
	// StatusReceived: stored with its processing job, not processed yet.
	StatusReceived = "received"
	// StatusProcessed: mapped and written (or found stale); Written says
	// what became of each target.
	StatusProcessed = "processed"
	// StatusFailed: the mapping, the pipeline's validation or a plan limit
	// refused the document; Error says why. Retry processes it again.
	StatusFailed = "failed"
	// StatusDuplicate is not a status an event holds: it is the answer to a
	// delivery whose id was seen before, and as a list filter it selects the
	// events that were delivered more than once (Duplicates > 0).
	StatusDuplicate = "duplicate"
)

// Actions of a written target.
const (
	ActionCreated   = "created"
	ActionUpdated   = "updated"
	ActionUnchanged = "unchanged"
	// ActionStale: the document is older than the one last applied to the
	// record, which was left as it is.
	ActionStale = "stale"
)

// Defaults of InboundConfig.
const (
	DefaultInboundMaxBody   = 1 << 20
	DefaultInboundRetention = 30 * 24 * time.Hour
	DefaultInboundQueue     = "crmkit_inbound"
	DefaultInboundWorkers   = 8
	// inboundAttempts bounds how often River runs an event's job when the
	// database fails it; the event is then failed with code "internal".
	inboundAttempts = 10
)

// ErrUnauthenticated is what a delivery that may not be accepted fails
// with: its source does not exist or is disabled, or its signature is
// missing, malformed, wrong or (standard, smartlite) too old. The four are
// one error on purpose, so that a caller learns nothing about which
// sources exist. Its text never holds a secret or a signature.
var ErrUnauthenticated = errors.New("inbound: unknown source or invalid signature")

// ErrNotRetryable: a retry named an event that is still waiting to be
// processed.
var ErrNotRetryable = errors.New("inbound: the event is not processed yet")

// InboundSource is a sender that may post documents, with the mapping that
// turns each into records.
type InboundSource struct {
	ID        string `json:"id"`
	Workspace string `json:"-"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	// Secret verifies deliveries. It is never part of the JSON form: the
	// API shows a generated one once, in the answer that made it.
	Secret string `json:"-"`
	// PreviousSecret keeps verifying until PreviousSecretExpiresAt, after
	// a rotation.
	PreviousSecret          string       `json:"-"`
	PreviousSecretExpiresAt *time.Time   `json:"previous_secret_expires_at,omitempty"`
	Mapping                 mapping.Spec `json:"mapping"`
	Enabled                 bool         `json:"enabled"`
	// MaxBodyBytes caps a delivery's body; larger ones are refused with 413.
	MaxBodyBytes int64     `json:"max_body_bytes"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// URL is the path deliveries of the source are posted to.
func (s *InboundSource) URL() string { return "/api/v1/inbound/" + s.ID }

// secrets answers the secrets that verify a delivery at now.
func (s *InboundSource) secrets(now time.Time) []string {
	out := []string{s.Secret}
	if s.PreviousSecret != "" && s.PreviousSecretExpiresAt != nil && now.Before(*s.PreviousSecretExpiresAt) {
		out = append(out, s.PreviousSecret)
	}
	return out
}

// InboundEvent is one accepted delivery and what processing made of it.
type InboundEvent struct {
	ID        string `json:"id"`
	Workspace string `json:"-"`
	SourceID  string `json:"source_id"`
	// DeliveryID is the sender's id of the delivery (X-Shopify-Webhook-Id,
	// webhook-id), the key duplicates are dropped by; "" when it sent none.
	DeliveryID string `json:"delivery_id,omitempty"`
	Status     string `json:"status"`
	// Headers are the delivery's headers, signatures and credentials
	// replaced by "[redacted]".
	Headers http.Header `json:"headers,omitempty"`
	// Body is the raw body, byte for byte as it was signed.
	Body        []byte     `json:"-"`
	ReceivedAt  time.Time  `json:"received_at"`
	ProcessedAt *time.Time `json:"processed_at,omitempty"`
	// Attempts counts the times the event was processed.
	Attempts int `json:"attempts"`
	// Duplicates counts the later deliveries with the same DeliveryID,
	// answered "duplicate" and not stored.
	Duplicates int `json:"duplicates"`
	// Written lists, per target of the mapping, the record it wrote.
	Written []WrittenRecord `json:"written,omitempty"`
	// Error says why the event failed.
	Error *InboundError `json:"error,omitempty"`
}

// WrittenRecord is what one target of a document did.
type WrittenRecord struct {
	Object     string `json:"object"`
	ID         string `json:"id,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// Action is created, updated, unchanged or stale.
	Action string `json:"action"`
}

// InboundError is why an event failed.
type InboundError struct {
	// Code is a machine code: "invalid_document" (not a JSON object),
	// "mapping_failed" (an expression failed on the document),
	// "invalid_mapping" (the saved mapping no longer compiles),
	// "validation_failed" (the pipeline refused a field, listed in Fields),
	// "plan_limit_exceeded", "duplicate" (a unique value another record
	// holds), "conflict", "not_found", "source_deleted" or "internal".
	Code    string `json:"code"`
	Message string `json:"message"`
	// Target is the index of the mapping's target that failed, and Object
	// its object; absent when the failure is not one target's.
	Target *int                 `json:"target,omitempty"`
	Object string               `json:"object,omitempty"`
	Fields []records.FieldError `json:"fields,omitempty"`
}

func (e *InboundError) Error() string { return "inbound: " + e.Code + ": " + e.Message }

// InboundEventQuery selects events of one workspace, newest first.
type InboundEventQuery struct {
	Workspace string
	SourceID  string // "" for every source
	// Status is one of the statuses, or StatusDuplicate for the events
	// delivered more than once; "" for all.
	Status string
	// Before is the cursor: the id of the last event of the previous page.
	Before string
	Limit  int
}

// InboundRequeue selects events to process again: those named by IDs, or
// else those of Status (failed unless set) received since Since, of
// SourceID only when set.
type InboundRequeue struct {
	Workspace string
	IDs       []string
	SourceID  string
	Status    string
	Since     time.Time
	// Limit caps how many one call requeues; 0 means no cap.
	Limit int
}

// InboundStore is what inbound webhooks need from persistence. The store
// package implements it on Postgres and SQLite.
//
// Reads name a workspace and answer records.ErrNotFound for what does not
// exist in it; GetInboundSource with workspace "" finds a source of any
// workspace (the unauthenticated delivery route knows only its id).
type InboundStore interface {
	CreateInboundSource(ctx context.Context, s *InboundSource) error
	GetInboundSource(ctx context.Context, workspace, id string) (*InboundSource, error)
	// ListInboundSources answers sources in id order after the id after, at
	// most limit.
	ListInboundSources(ctx context.Context, workspace, after string, limit int) ([]*InboundSource, error)
	// UpdateInboundSource stores every field of s but its id, workspace
	// and creation time.
	UpdateInboundSource(ctx context.Context, s *InboundSource) error
	// DeleteInboundSource removes a source with its events.
	DeleteInboundSource(ctx context.Context, workspace, id string) error

	// ReceiveInboundEvent stores a new event and enqueues job in the same
	// transaction. When the source already holds an event with the same
	// DeliveryID it stores nothing, enqueues nothing, counts the duplicate
	// on that event, and answers it with duplicate true.
	ReceiveInboundEvent(ctx context.Context, e *InboundEvent, job river.InsertManyParams) (first *InboundEvent, duplicate bool, err error)
	GetInboundEvent(ctx context.Context, workspace, id string) (*InboundEvent, error)
	// ListInboundEvents answers events without Headers and Body, ordered
	// by id descending, at most q.Limit.
	ListInboundEvents(ctx context.Context, q InboundEventQuery) ([]*InboundEvent, error)
	// RequeueInboundEvents makes the selected events received again and
	// enqueues job(e) for each, in one transaction, and answers them. Events
	// still received are not selected.
	RequeueInboundEvents(ctx context.Context, q InboundRequeue, job func(e *InboundEvent) river.InsertManyParams) ([]*InboundEvent, error)
	// PruneInboundEvents removes events received before the time that are
	// not waiting to be processed, and answers how many.
	PruneInboundEvents(ctx context.Context, before time.Time) (int64, error)

	// ProcessInboundTx runs fn in one transaction, carried by the context
	// fn gets, through which the record pipeline and the calls below read
	// and write; it commits when fn returns nil.
	ProcessInboundTx(ctx context.Context, fn func(ctx context.Context) error) error
	// InTx runs fn in one transaction, or in a savepoint of the one ctx
	// carries, as records.Store does.
	InTx(ctx context.Context, fn func(ctx context.Context, tx records.Tx) error) error
	// LockInboundEvent answers an event by id, locking it until the
	// transaction ends, so one event is processed by one job at a time.
	LockInboundEvent(ctx context.Context, id string) (*InboundEvent, error)
	// FinishInboundEvent stores e's Status, ProcessedAt, Attempts, Written
	// and Error.
	FinishInboundEvent(ctx context.Context, e *InboundEvent) error
	// MarkInboundApplied records that a document of time t is applied to
	// the record of object with externalID, and answers true, unless a
	// document newer than t was applied to it already: then it changes
	// nothing and answers false. Concurrent calls for one record wait for
	// each other's transaction.
	MarkInboundApplied(ctx context.Context, workspace, object, externalID string, t time.Time) (bool, error)
}

// InboundPipeline is the part of the record pipeline inbound webhooks write
// and read through; integration.RecordPipeline is one.
type InboundPipeline interface {
	Batch(ctx context.Context, items []records.BatchItem, opts records.BatchOptions) ([]records.BatchResult, error)
	List(ctx context.Context, q records.ListQuery) (recs []*records.Record, next string, err error)
}

// InboundConfig configures Inbound. Store, Pipeline and Objects are
// required.
type InboundConfig struct {
	Store    InboundStore
	Pipeline InboundPipeline
	// Objects are the schemas mappings are compiled against.
	Objects mapping.Objects
	// Lookup answers the record of object with an external id, or
	// records.ErrNotFound. Default: Pipeline.List filtered on the object's
	// external id field. A host whose pipeline writes to Store passes the
	// store's indexed read.
	Lookup func(ctx context.Context, workspace, object, externalID string) (*records.Record, error)
	// MaxBodyBytes is a new source's body limit when it sets none. Default
	// 1 MiB.
	MaxBodyBytes int64
	// Retention is how long events, and with them the delivery ids that
	// drop duplicates, are kept. Default 30 days.
	Retention time.Duration
	// Queue is the River queue of processing jobs, worked by Workers
	// workers. Defaults DefaultInboundQueue and DefaultInboundWorkers.
	Queue   string
	Workers int
	// Observe, when set, is told each time an event reaches a status:
	// received, processed, failed or duplicate (metrics).
	Observe func(status string)
	Clock   func() time.Time
	Logger  *slog.Logger
}

// Inbound receives signed webhooks from external systems, stores each with
// its processing job in one transaction, and then maps it and writes its
// records through the pipeline.
//
// A delivery is verified on its raw bytes before anything is parsed or
// stored; its body and headers (signatures and credentials redacted) are
// stored with the job that processes it, so a process that dies after
// answering 202 loses nothing. Processing runs in one transaction with the
// event locked: the document's targets are written as one all-or-none
// batch by upsert on their external ids, and the outcome is stored on the
// event in the same transaction, so each event is processed exactly once
// when the pipeline writes to the same database (the default pipeline
// does). A document carrying a time (its top-level updated_at, else
// X-Shopify-Triggered-At) older than the one last applied to a target's
// record leaves that record alone (action stale).
type Inbound struct {
	st        InboundStore
	pipe      InboundPipeline
	objects   mapping.Objects
	lookup    func(ctx context.Context, workspace, object, externalID string) (*records.Record, error)
	maxBody   int64
	retention time.Duration
	queue     string
	workers   int
	observe   func(string)
	clock     func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	compiled map[string]compiledMapping
}

type compiledMapping struct {
	updated time.Time
	m       *mapping.Mapping
}

// NewInbound checks cfg and fills in its defaults.
func NewInbound(cfg InboundConfig) (*Inbound, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("ingest: InboundConfig.Store is nil")
	case cfg.Pipeline == nil:
		return nil, errors.New("ingest: InboundConfig.Pipeline is nil")
	case cfg.Objects == nil:
		return nil, errors.New("ingest: InboundConfig.Objects is nil")
	}
	in := &Inbound{st: cfg.Store, pipe: cfg.Pipeline, objects: cfg.Objects, lookup: cfg.Lookup,
		maxBody: cfg.MaxBodyBytes, retention: cfg.Retention, queue: cfg.Queue, workers: cfg.Workers,
		observe: cfg.Observe, clock: cfg.Clock, log: cfg.Logger, compiled: map[string]compiledMapping{}}
	if in.maxBody <= 0 {
		in.maxBody = DefaultInboundMaxBody
	}
	if in.retention <= 0 {
		in.retention = DefaultInboundRetention
	}
	if in.queue == "" {
		in.queue = DefaultInboundQueue
	}
	if in.workers <= 0 {
		in.workers = DefaultInboundWorkers
	}
	if in.observe == nil {
		in.observe = func(string) {}
	}
	if in.clock == nil {
		in.clock = time.Now
	}
	if in.log == nil {
		in.log = slog.Default()
	}
	if in.lookup == nil {
		in.lookup = in.listLookup
	}
	return in, nil
}

func (in *Inbound) now() time.Time { return in.clock().UTC().Truncate(time.Microsecond) }

// listLookup finds a record by external id through the pipeline's list.
func (in *Inbound) listLookup(ctx context.Context, workspace, object, externalID string) (*records.Record, error) {
	obj, ok := in.objects.Object(object)
	if !ok || obj.ExternalID == "" {
		return nil, fmt.Errorf("ingest: %s has no external id: %w", object, records.ErrNotFound)
	}
	recs, _, err := in.pipe.List(ctx, records.ListQuery{Workspace: workspace, Object: object,
		Filter: map[string]string{obj.ExternalID: externalID}, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("ingest: %s %s: %w", object, externalID, records.ErrNotFound)
	}
	return recs[0], nil
}

// SourceInput is what creating or changing a source takes; on a change,
// nil members stay as they are.
type SourceInput struct {
	Name *string `json:"name"`
	Kind *string `json:"kind"`
	// Secret is a shopify source's client secret, taken as given. A
	// standard or smartlite source gets a generated one when it is null.
	Secret       *string         `json:"secret"`
	Mapping      json.RawMessage `json:"mapping"`
	Enabled      *bool           `json:"enabled"`
	MaxBodyBytes *int64          `json:"max_body_bytes"`
}

// maxSourceBody bounds what a source may set as its body limit.
const maxSourceBody = 64 << 20

// CreateSource stores a new source of the workspace. It answers the
// secret when it generated one (standard and smartlite sources without a
// secret), "" otherwise. A mapping that does not compile, an unknown kind,
// or a shopify source without a secret fail with a
// *records.ValidationError naming each problem (a mapping problem as
// "mapping" plus its JSON Pointer, its message naming the target and
// field).
func (in *Inbound) CreateSource(ctx context.Context, workspace string, input SourceInput) (*InboundSource, string, error) {
	now := in.now()
	s := &InboundSource{ID: records.NewID("src"), Workspace: workspace, Enabled: true, MaxBodyBytes: in.maxBody,
		CreatedAt: now, UpdatedAt: now}
	var errs []records.FieldError
	if input.Name == nil || strings.TrimSpace(*input.Name) == "" {
		errs = append(errs, records.FieldError{Field: "name", Code: "required", Message: "is required"})
	}
	if input.Kind == nil {
		errs = append(errs, records.FieldError{Field: "kind", Code: "required", Message: "is required: shopify, standard or smartlite"})
	}
	if input.Mapping == nil {
		errs = append(errs, records.FieldError{Field: "mapping", Code: "required", Message: "is required"})
	}
	if len(errs) > 0 {
		return nil, "", &records.ValidationError{Fields: errs}
	}
	generated, err := in.apply(s, input, true)
	if err != nil {
		return nil, "", err
	}
	if err := in.st.CreateInboundSource(ctx, s); err != nil {
		return nil, "", err
	}
	return s, generated, nil
}

// apply sets input's members on s, checking them, and answers a secret it
// generated.
func (in *Inbound) apply(s *InboundSource, input SourceInput, create bool) (string, error) {
	var errs []records.FieldError
	if input.Name != nil {
		s.Name = strings.TrimSpace(*input.Name)
		if s.Name == "" {
			errs = append(errs, records.FieldError{Field: "name", Code: "required", Message: "is required"})
		}
	}
	if input.Kind != nil {
		switch {
		case !create && *input.Kind != s.Kind:
			errs = append(errs, records.FieldError{Field: "kind", Code: "read_only", Message: "cannot change; create another source"})
		case *input.Kind == KindShopify, *input.Kind == KindStandard, *input.Kind == KindSmartLite:
			s.Kind = *input.Kind
		default:
			errs = append(errs, records.FieldError{Field: "kind", Code: "one_of", Message: "must be shopify, standard or smartlite"})
		}
	}
	if input.Enabled != nil {
		s.Enabled = *input.Enabled
	}
	if input.MaxBodyBytes != nil {
		if *input.MaxBodyBytes < 1 || *input.MaxBodyBytes > maxSourceBody {
			errs = append(errs, records.FieldError{Field: "max_body_bytes", Code: "max",
				Message: fmt.Sprintf("must be from 1 to %d", maxSourceBody)})
		} else {
			s.MaxBodyBytes = *input.MaxBodyBytes
		}
	}
	if input.Mapping != nil {
		spec, err := compileSpec(input.Mapping, in.objects)
		if err != nil {
			errs = append(errs, mappingErrors(err)...)
		} else {
			s.Mapping = spec
		}
	}
	var generated string
	if create && s.Kind != "" {
		secret, gen, fe := newSecret(s.Kind, input.Secret)
		if fe != nil {
			errs = append(errs, *fe)
		}
		s.Secret, generated = secret, gen
	}
	if len(errs) > 0 {
		return "", &records.ValidationError{Fields: errs}
	}
	return generated, nil
}

// newSecret answers the secret a source of kind starts with: the one given,
// checked, or (standard, smartlite) a generated one, which is also answered
// as generated.
func newSecret(kind string, given *string) (secret, generated string, _ *records.FieldError) {
	if given == nil || *given == "" {
		if kind == KindShopify {
			return "", "", &records.FieldError{Field: "secret", Code: "required",
				Message: "is required for a shopify source: the app's client secret"}
		}
		s, err := webhook.NewSecret()
		if err != nil {
			return "", "", &records.FieldError{Field: "secret", Code: "internal", Message: "could not generate a secret"}
		}
		return s, s, nil
	}
	if kind == KindStandard {
		if _, err := webhook.SignStandard(*given, "check", time.Unix(0, 0), nil); err != nil {
			return "", "", &records.FieldError{Field: "secret", Code: "invalid",
				Message: `must be "whsec_" followed by base64, as Standard Webhooks secrets are`}
		}
	}
	return *given, "", nil
}

// compileSpec parses and compiles a mapping's JSON form.
func compileSpec(raw json.RawMessage, objects mapping.Objects) (mapping.Spec, error) {
	spec, err := mapping.ParseSpec(raw)
	if err != nil {
		return mapping.Spec{}, err
	}
	if _, err := mapping.Compile(spec, objects); err != nil {
		return mapping.Spec{}, err
	}
	return spec, nil
}

// mappingErrors turns a mapping's compile error into field errors: the
// field is "mapping" and the problem's JSON Pointer, the message names the
// target and field.
func mappingErrors(err error) []records.FieldError {
	var ce *mapping.CompileError
	if errors.As(err, &ce) {
		out := make([]records.FieldError, len(ce.Problems))
		for i, p := range ce.Problems {
			out[i] = records.FieldError{Field: "mapping" + p.Path, Code: p.Code, Message: p.String()}
		}
		return out
	}
	return []records.FieldError{{Field: "mapping", Code: "invalid", Message: err.Error()}}
}

// Source answers one source of the workspace.
func (in *Inbound) Source(ctx context.Context, workspace, id string) (*InboundSource, error) {
	return in.st.GetInboundSource(ctx, workspace, nonEmpty(id))
}

// nonEmpty keeps "" from meaning "any workspace" or "any id" by accident.
func nonEmpty(id string) string {
	if id == "" {
		return "-"
	}
	return id
}

// Sources answers the workspace's sources in id order after the id after.
func (in *Inbound) Sources(ctx context.Context, workspace, after string, limit int) ([]*InboundSource, error) {
	return in.st.ListInboundSources(ctx, workspace, after, limit)
}

// SourceUpdate is a change of a source: the members of SourceInput, and a
// secret rotation.
type SourceUpdate struct {
	SourceInput
	// RotateSecret replaces the secret: with Secret when given (a shopify
	// source's new client secret), else with a generated one, which
	// UpdateSource answers. The old secret keeps verifying for Grace.
	RotateSecret bool
	Grace        time.Duration
}

// UpdateSource changes a source; a secret it generated is answered.
func (in *Inbound) UpdateSource(ctx context.Context, workspace, id string, u SourceUpdate) (*InboundSource, string, error) {
	s, err := in.Source(ctx, workspace, id)
	if err != nil {
		return nil, "", err
	}
	secret := u.Secret
	u.Secret = nil
	if _, err := in.apply(s, u.SourceInput, false); err != nil {
		return nil, "", err
	}
	var generated string
	if u.RotateSecret || (secret != nil && *secret != "") {
		next, gen, fe := newSecret(s.Kind, secret)
		if fe != nil {
			return nil, "", &records.ValidationError{Fields: []records.FieldError{*fe}}
		}
		now := in.now()
		expires := now.Add(u.Grace)
		s.PreviousSecret, s.PreviousSecretExpiresAt = s.Secret, &expires
		if u.Grace <= 0 {
			s.PreviousSecret, s.PreviousSecretExpiresAt = "", nil
		}
		s.Secret, generated = next, gen
	}
	s.UpdatedAt = in.now()
	if err := in.st.UpdateInboundSource(ctx, s); err != nil {
		return nil, "", err
	}
	return s, generated, nil
}

// DeleteSource removes a source and its event log.
func (in *Inbound) DeleteSource(ctx context.Context, workspace, id string) error {
	return in.st.DeleteInboundSource(ctx, workspace, nonEmpty(id))
}

// Events answers the inbound log, newest first.
func (in *Inbound) Events(ctx context.Context, q InboundEventQuery) ([]*InboundEvent, error) {
	switch q.Status {
	case "", StatusReceived, StatusProcessed, StatusFailed, StatusDuplicate:
	default:
		return nil, &records.ValidationError{Fields: []records.FieldError{{Field: "status", Code: "one_of",
			Message: "must be received, processed, failed or duplicate"}}}
	}
	if q.SourceID != "" {
		if _, err := in.Source(ctx, q.Workspace, q.SourceID); err != nil {
			return nil, err
		}
	}
	return in.st.ListInboundEvents(ctx, q)
}

// Event answers one event with its headers and body.
func (in *Inbound) Event(ctx context.Context, workspace, id string) (*InboundEvent, error) {
	return in.st.GetInboundEvent(ctx, workspace, nonEmpty(id))
}

// mappingOf answers the compiled mapping of a source, compiling it once
// per version of the source.
func (in *Inbound) mappingOf(s *InboundSource) (*mapping.Mapping, error) {
	in.mu.Lock()
	c, ok := in.compiled[s.ID]
	in.mu.Unlock()
	if ok && c.updated.Equal(s.UpdatedAt) {
		return c.m, nil
	}
	m, err := mapping.Compile(s.Mapping, in.objects)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.compiled[s.ID] = compiledMapping{updated: s.UpdatedAt, m: m}
	in.mu.Unlock()
	return m, nil
}
