package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

var _ outbound.Store = (*Store)(nil)

type endpointRow struct {
	bun.BaseModel `bun:"table:webhook_endpoints"`

	ID                      string     `bun:"id,pk"`
	WorkspaceID             string     `bun:"workspace_id"`
	URL                     string     `bun:"url"`
	Events                  string     `bun:"events"`
	Objects                 string     `bun:"objects"`
	Condition               *string    `bun:"condition"`
	Description             string     `bun:"description"`
	Enabled                 bool       `bun:"enabled"`
	Secret                  string     `bun:"secret"`
	PreviousSecret          string     `bun:"previous_secret"`
	PreviousSecretExpiresAt *time.Time `bun:"previous_secret_expires_at"`
	CreatedAt               time.Time  `bun:"created_at"`
	UpdatedAt               time.Time  `bun:"updated_at"`
	DisabledAt              *time.Time `bun:"disabled_at"`
	DisabledReason          string     `bun:"disabled_reason"`
	FailingSince            *time.Time `bun:"failing_since"`
}

type deliveryRow struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`

	ID            string     `bun:"id,pk"`
	WorkspaceID   string     `bun:"workspace_id"`
	EndpointID    string     `bun:"endpoint_id"`
	EventID       string     `bun:"event_id"`
	EventType     string     `bun:"event_type"`
	Status        string     `bun:"status"`
	AttemptCount  int        `bun:"attempt_count"`
	CreatedAt     time.Time  `bun:"created_at"`
	LastAttemptAt *time.Time `bun:"last_attempt_at"`
	NextAttemptAt *time.Time `bun:"next_attempt_at"`
}

type attemptRow struct {
	bun.BaseModel `bun:"table:webhook_attempts"`

	DeliveryID      string    `bun:"delivery_id,pk"`
	Number          int       `bun:"number,pk"`
	At              time.Time `bun:"at"`
	DurationMS      int64     `bun:"duration_ms"`
	StatusCode      int       `bun:"status_code"`
	ResponseHeaders *string   `bun:"response_headers"`
	ResponseBody    string    `bun:"response_body"`
	Error           string    `bun:"error"`
	ErrorKind       string    `bun:"error_kind"`
	TriggeredBy     string    `bun:"triggered_by"`
}

// webhookTime is an optional time as both dialects store it.
func webhookTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	st := storedTime(*t)
	return &st
}

func utcTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func newEndpointRow(e *outbound.Endpoint) (*endpointRow, error) {
	e.CreatedAt, e.UpdatedAt = storedTime(e.CreatedAt), storedTime(e.UpdatedAt)
	e.PreviousSecretExpiresAt = webhookTime(e.PreviousSecretExpiresAt)
	e.DisabledAt, e.FailingSince = webhookTime(e.DisabledAt), webhookTime(e.FailingSince)
	events, err := json.Marshal(nonNilStrings(e.Events))
	if err != nil {
		return nil, err
	}
	objects, err := json.Marshal(nonNilStrings(e.Objects))
	if err != nil {
		return nil, err
	}
	row := &endpointRow{
		ID: e.ID, WorkspaceID: e.Workspace, URL: e.URL, Events: string(events), Objects: string(objects),
		Description: e.Description, Enabled: e.Enabled, Secret: e.Secret, PreviousSecret: e.PreviousSecret,
		PreviousSecretExpiresAt: e.PreviousSecretExpiresAt, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
		DisabledAt: e.DisabledAt, DisabledReason: e.DisabledReason, FailingSince: e.FailingSince,
	}
	if e.Condition != nil {
		c, err := json.Marshal(e.Condition)
		if err != nil {
			return nil, fmt.Errorf("store: endpoint condition: %w", err)
		}
		cs := string(c)
		row.Condition = &cs
	}
	return row, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (r *endpointRow) endpoint() (*outbound.Endpoint, error) {
	e := &outbound.Endpoint{
		ID: r.ID, Workspace: r.WorkspaceID, URL: r.URL, Description: r.Description, Enabled: r.Enabled,
		Secret: r.Secret, PreviousSecret: r.PreviousSecret, PreviousSecretExpiresAt: utcTime(r.PreviousSecretExpiresAt),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), DisabledAt: utcTime(r.DisabledAt),
		DisabledReason: r.DisabledReason, FailingSince: utcTime(r.FailingSince),
	}
	if err := json.Unmarshal([]byte(r.Events), &e.Events); err != nil {
		return nil, fmt.Errorf("store: endpoint %s events: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(r.Objects), &e.Objects); err != nil {
		return nil, fmt.Errorf("store: endpoint %s objects: %w", r.ID, err)
	}
	if r.Condition != nil {
		e.Condition = new(outbound.Condition)
		if err := json.Unmarshal([]byte(*r.Condition), e.Condition); err != nil {
			return nil, fmt.Errorf("store: endpoint %s condition: %w", r.ID, err)
		}
	}
	return e, nil
}

// newEndpointRow is the row of e with its secrets sealed (see SealSecret).
func (s *Store) newEndpointRow(e *outbound.Endpoint) (*endpointRow, error) {
	row, err := newEndpointRow(e)
	if err != nil {
		return nil, err
	}
	if err := s.sealSecrets(&row.Secret, &row.PreviousSecret); err != nil {
		return nil, err
	}
	return row, nil
}

// endpointOf is the endpoint of r with its secrets opened (see OpenSecret).
func (s *Store) endpointOf(r *endpointRow) (*outbound.Endpoint, error) {
	e, err := r.endpoint()
	if err != nil {
		return nil, err
	}
	if err := s.openSecrets("store: webhook endpoint "+r.ID+" secret", &e.Secret, &e.PreviousSecret); err != nil {
		return nil, err
	}
	return e, nil
}

func endpointNotFound(id string) error {
	return fmt.Errorf("store: webhook endpoint %s: %w", id, records.ErrNotFound)
}

// CreateEndpoint stores a new webhook endpoint.
func (s *Store) CreateEndpoint(ctx context.Context, e *outbound.Endpoint) error {
	row, err := s.newEndpointRow(e)
	if err != nil {
		return err
	}
	if _, err := s.IDB(ctx).NewInsert().Model(row).Exec(ctx); err != nil {
		return mapWriteErr("insert webhook endpoint", err)
	}
	return nil
}

// GetEndpoint answers one endpoint of the workspace, or ErrNotFound.
func (s *Store) GetEndpoint(ctx context.Context, workspace, id string) (*outbound.Endpoint, error) {
	var row endpointRow
	err := s.IDB(ctx).NewSelect().Model(&row).Where("workspace_id = ? AND id = ?", workspace, id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, endpointNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get webhook endpoint: %w", err)
	}
	return s.endpointOf(&row)
}

// ListEndpoints answers the workspace's endpoints in id order after the id
// after, at most limit (DefaultListLimit when 0).
func (s *Store) ListEndpoints(ctx context.Context, workspace, after string, limit int) ([]*outbound.Endpoint, error) {
	var rows []endpointRow
	if err := pageAfter(s.IDB(ctx).NewSelect().Model(&rows), workspace, after, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list webhook endpoints: %w", err)
	}
	return s.endpoints(rows)
}

// fanoutRow is an event with one enabled endpoint of its workspace, or with
// none (the endpoint columns NULL).
type fanoutRow struct {
	EventObject   string     `bun:"ev_object"`
	EventRecordID string     `bun:"ev_record_id"`
	EventPayload  string     `bun:"ev_payload"`
	ID            *string    `bun:"id"`
	WorkspaceID   *string    `bun:"workspace_id"`
	URL           *string    `bun:"url"`
	Events        *string    `bun:"events"`
	Objects       *string    `bun:"objects"`
	Condition     *string    `bun:"condition"`
	Description   *string    `bun:"description"`
	Enabled       *bool      `bun:"enabled"`
	Secret        *string    `bun:"secret"`
	PrevSecret    *string    `bun:"previous_secret"`
	PrevExpires   *time.Time `bun:"previous_secret_expires_at"`
	CreatedAt     *time.Time `bun:"created_at"`
	UpdatedAt     *time.Time `bun:"updated_at"`
	DisabledAt    *time.Time `bun:"disabled_at"`
	DisabledWhy   *string    `bun:"disabled_reason"`
	FailingSince  *time.Time `bun:"failing_since"`
}

// fanoutTargetsSQL reads an event with the enabled endpoints of its
// workspace. The hot reads of webhook delivery bind their values (see
// boundRows).
const fanoutTargetsSQL = `SELECT ev.object AS ev_object, ev.record_id AS ev_record_id, ev.payload AS ev_payload,
	e.id, e.workspace_id, e.url, e.events, e.objects, e.condition, e.description, e.enabled, e.secret,
	e.previous_secret, e.previous_secret_expires_at, e.created_at, e.updated_at, e.disabled_at,
	e.disabled_reason, e.failing_since
FROM events AS ev
LEFT JOIN webhook_endpoints AS e ON e.workspace_id = ev.workspace_id AND e.enabled
WHERE ev.workspace_id = $1 AND ev.id = $2
ORDER BY e.id`

// FanoutTargets answers the event with the enabled endpoints of its
// workspace, in one query.
func (s *Store) FanoutTargets(ctx context.Context, workspace, eventID string) (*records.Event, []*outbound.Endpoint, error) {
	var rows []fanoutRow
	err := s.queryAll(ctx, &rows, fanoutTargetsSQL, workspace, eventID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("store: fan-out targets: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("store: event %s: %w", eventID, records.ErrNotFound)
	}
	ev := new(records.Event)
	if err := json.Unmarshal([]byte(rows[0].EventPayload), ev); err != nil {
		return nil, nil, fmt.Errorf("store: event %s: %w", eventID, err)
	}
	ev.Object, ev.RecordID = rows[0].EventObject, rows[0].EventRecordID
	var out []*outbound.Endpoint
	for _, r := range rows {
		if r.ID == nil {
			continue
		}
		er := endpointRow{ID: *r.ID, WorkspaceID: *r.WorkspaceID, URL: *r.URL, Events: *r.Events, Objects: *r.Objects,
			Condition: r.Condition, Description: *r.Description, Enabled: *r.Enabled, Secret: *r.Secret,
			PreviousSecret: *r.PrevSecret, PreviousSecretExpiresAt: r.PrevExpires, CreatedAt: *r.CreatedAt,
			UpdatedAt: *r.UpdatedAt, DisabledAt: r.DisabledAt, DisabledReason: *r.DisabledWhy, FailingSince: r.FailingSince}
		e, err := s.endpointOf(&er)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, e)
	}
	return ev, out, nil
}

func (s *Store) endpoints(rows []endpointRow) ([]*outbound.Endpoint, error) {
	out := make([]*outbound.Endpoint, len(rows))
	for i := range rows {
		e, err := s.endpointOf(&rows[i])
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// UpdateEndpoint stores every field of e but its id, workspace and creation
// time.
func (s *Store) UpdateEndpoint(ctx context.Context, e *outbound.Endpoint) error {
	row, err := s.newEndpointRow(e)
	if err != nil {
		return err
	}
	res, err := s.IDB(ctx).NewUpdate().Model(row).
		ExcludeColumn("id", "workspace_id", "created_at").
		Where("workspace_id = ? AND id = ?", e.Workspace, e.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: update webhook endpoint: %w", err)
	}
	return affectedOne(res, e.ID)
}

func affectedOne(res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: webhook endpoint %s: %w", id, err)
	}
	if n == 0 {
		return endpointNotFound(id)
	}
	return nil
}

// DisableEndpoint disables an enabled endpoint, recording when and why; an
// endpoint already disabled keeps its first reason.
func (s *Store) DisableEndpoint(ctx context.Context, workspace, id string, at time.Time, reason string) error {
	return disableEndpoint(ctx, s.IDB(ctx), workspace, id, at, reason)
}

func disableEndpoint(ctx context.Context, db bun.IDB, workspace, id string, at time.Time, reason string) error {
	_, err := db.NewUpdate().Model((*endpointRow)(nil)).
		Set("enabled = ?", false).Set("disabled_at = ?", storedTime(at)).Set("disabled_reason = ?", reason).
		Set("updated_at = ?", storedTime(at)).
		Where("workspace_id = ? AND id = ? AND enabled", workspace, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: disable webhook endpoint: %w", err)
	}
	return nil
}

// DeleteEndpoint removes an endpoint; its deliveries and their attempts go
// with it (ON DELETE CASCADE).
func (s *Store) DeleteEndpoint(ctx context.Context, workspace, id string) error {
	res, err := s.IDB(ctx).NewDelete().Model((*endpointRow)(nil)).
		Where("workspace_id = ? AND id = ?", workspace, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: delete webhook endpoint: %w", err)
	}
	return affectedOne(res, id)
}

func newDeliveryRow(d *outbound.Delivery) deliveryRow {
	d.CreatedAt = storedTime(d.CreatedAt)
	d.LastAttemptAt, d.NextAttemptAt = webhookTime(d.LastAttemptAt), webhookTime(d.NextAttemptAt)
	return deliveryRow{
		ID: d.ID, WorkspaceID: d.Workspace, EndpointID: d.EndpointID, EventID: d.EventID, EventType: d.EventType,
		Status: d.Status, AttemptCount: d.AttemptCount, CreatedAt: d.CreatedAt,
		LastAttemptAt: d.LastAttemptAt, NextAttemptAt: d.NextAttemptAt,
	}
}

func (r *deliveryRow) delivery() *outbound.Delivery {
	return &outbound.Delivery{
		ID: r.ID, Workspace: r.WorkspaceID, EndpointID: r.EndpointID, EventID: r.EventID, EventType: r.EventType,
		Status: r.Status, AttemptCount: r.AttemptCount, CreatedAt: r.CreatedAt.UTC(),
		LastAttemptAt: utcTime(r.LastAttemptAt), NextAttemptAt: utcTime(r.NextAttemptAt),
		Attempts: []outbound.Attempt{},
	}
}

func deliveryNotFound(id string) error {
	return fmt.Errorf("store: webhook delivery %s: %w", id, records.ErrNotFound)
}

// CreateDeliveries inserts the deliveries whose (event, endpoint) pair is
// new, hands those to enqueue (when not nil) in the same transaction, and
// answers them.
func (s *Store) CreateDeliveries(ctx context.Context, ds []*outbound.Delivery, enqueue outbound.EnqueueFunc) ([]*outbound.Delivery, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	rows := make([]deliveryRow, len(ds))
	byID := make(map[string]*outbound.Delivery, len(ds))
	for i, d := range ds {
		rows[i] = newDeliveryRow(d)
		byID[d.ID] = d
	}
	createdOf := func(ids []string) []*outbound.Delivery {
		out := make([]*outbound.Delivery, 0, len(ids))
		for _, id := range ids {
			out = append(out, byID[id])
		}
		return out
	}
	var ids []string
	if enqueue == nil && s.dialect == DialectPostgres {
		// Nothing to enqueue: one statement, committed asynchronously.
		values := make([]string, len(rows))
		args := make([]any, 0, 8*len(rows))
		for i, r := range rows {
			values[i] = "(?, ?, ?, ?, ?, ?, 0, ?::timestamptz, ?::timestamptz)"
			args = append(args, r.ID, r.WorkspaceID, r.EndpointID, r.EventID, r.EventType, r.Status, r.CreatedAt, r.NextAttemptAt)
		}
		err := s.db.NewRaw(`WITH `+asyncCommitCTE+`
			INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id, event_type, status, attempt_count, created_at, next_attempt_at)
			SELECT v.* FROM (VALUES `+strings.Join(values, ", ")+`) AS v, async
			ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id`, args...).Scan(ctx, &ids)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: insert webhook deliveries: %w", err)
		}
		return createdOf(ids), nil
	}
	err := s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.asyncCommit(ctx, tx); err != nil {
			return err
		}
		ids = nil
		if err := tx.NewInsert().Model(&rows).On("CONFLICT (event_id, endpoint_id) DO NOTHING").
			Returning("id").Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: insert webhook deliveries: %w", err)
		}
		if len(ids) == 0 || enqueue == nil {
			return nil
		}
		return enqueue(ctx, tx.Tx, createdOf(ids))
	})
	if err != nil {
		return nil, err
	}
	return createdOf(ids), nil
}

// targetRow is a delivery joined with its endpoint and its event's payload,
// so the delivery worker reads everything it needs in one round trip.
type targetRow struct {
	deliveryRow `bun:"extend"`

	EndpointURL             string     `bun:"e_url"`
	EndpointEvents          string     `bun:"e_events"`
	EndpointObjects         string     `bun:"e_objects"`
	EndpointCondition       *string    `bun:"e_condition"`
	EndpointDescription     string     `bun:"e_description"`
	EndpointEnabled         bool       `bun:"e_enabled"`
	EndpointSecret          string     `bun:"e_secret"`
	EndpointPreviousSecret  string     `bun:"e_previous_secret"`
	EndpointPreviousExpires *time.Time `bun:"e_previous_secret_expires_at"`
	EndpointCreatedAt       time.Time  `bun:"e_created_at"`
	EndpointUpdatedAt       time.Time  `bun:"e_updated_at"`
	EndpointDisabledAt      *time.Time `bun:"e_disabled_at"`
	EndpointDisabledReason  string     `bun:"e_disabled_reason"`
	EndpointFailingSince    *time.Time `bun:"e_failing_since"`
	EventObject             string     `bun:"ev_object"`
	EventRecordID           string     `bun:"ev_record_id"`
	EventPayload            string     `bun:"ev_payload"`
}

// asyncCommitCTE is asyncCommit for a single statement outside a
// transaction: set_config with is_local applies to the statement's own
// implicit transaction, and the statement must read "async" so that
// Postgres evaluates it.
const asyncCommitCTE = `async AS (SELECT set_config('synchronous_commit', 'off', true) AS off)`

// asyncCommit lets a Postgres transaction commit without waiting for its
// WAL to reach disk. That is safe for the webhook writes that use it: each
// is followed by River marking the job that made it complete, a synchronous
// commit that flushes all WAL before it; should the database crash before
// that, the job is still running and runs again, repeating the work (a
// delivery may then arrive twice, which at-least-once allows). It takes the
// fsync off the path from a record's commit to its first delivery attempt.
func (s *Store) asyncCommit(ctx context.Context, tx bun.Tx) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// deliveryTargetSQL reads a delivery with its endpoint and event.
const deliveryTargetSQL = `SELECT d.*,
	e.url AS e_url, e.events AS e_events, e.objects AS e_objects, e.condition AS e_condition,
	e.description AS e_description, e.enabled AS e_enabled, e.secret AS e_secret,
	e.previous_secret AS e_previous_secret, e.previous_secret_expires_at AS e_previous_secret_expires_at,
	e.created_at AS e_created_at, e.updated_at AS e_updated_at, e.disabled_at AS e_disabled_at,
	e.disabled_reason AS e_disabled_reason, e.failing_since AS e_failing_since,
	ev.object AS ev_object, ev.record_id AS ev_record_id, ev.payload AS ev_payload
FROM webhook_deliveries AS d
JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
JOIN events AS ev ON ev.id = d.event_id AND ev.workspace_id = d.workspace_id
WHERE d.id = $1`

// DeliveryTarget answers a delivery with its endpoint and event, in one
// query.
func (s *Store) DeliveryTarget(ctx context.Context, id string) (*outbound.Delivery, *outbound.Endpoint, *records.Event, error) {
	var row targetRow
	err := s.queryOne(ctx, &row, deliveryTargetSQL, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil, deliveryNotFound(id)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("store: get webhook delivery target: %w", err)
	}
	er := endpointRow{
		ID: row.EndpointID, WorkspaceID: row.WorkspaceID, URL: row.EndpointURL, Events: row.EndpointEvents,
		Objects: row.EndpointObjects, Condition: row.EndpointCondition, Description: row.EndpointDescription,
		Enabled: row.EndpointEnabled, Secret: row.EndpointSecret, PreviousSecret: row.EndpointPreviousSecret,
		PreviousSecretExpiresAt: row.EndpointPreviousExpires, CreatedAt: row.EndpointCreatedAt,
		UpdatedAt: row.EndpointUpdatedAt, DisabledAt: row.EndpointDisabledAt, DisabledReason: row.EndpointDisabledReason,
		FailingSince: row.EndpointFailingSince,
	}
	e, err := s.endpointOf(&er)
	if err != nil {
		return nil, nil, nil, err
	}
	ev := new(records.Event)
	if err := json.Unmarshal([]byte(row.EventPayload), ev); err != nil {
		return nil, nil, nil, fmt.Errorf("store: event %s: %w", row.EventID, err)
	}
	ev.Object, ev.RecordID = row.EventObject, row.EventRecordID
	return row.delivery(), e, ev, nil
}

// The one-statement attempt writes of Postgres, with bound values (see
// boundRows): a first attempt made by fan-out, which inserts the delivery
// and its attempt, and a later attempt, which updates the delivery and
// inserts the attempt. The casts type the values the SELECT lists carry.
const (
	firstAttemptSQL = `WITH ` + asyncCommitCTE + `, d AS (
		INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id, event_type, status, attempt_count, created_at, last_attempt_at, next_attempt_at)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, 1, $7::timestamptz, $8::timestamptz, $9::timestamptz FROM async
		ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id)
	INSERT INTO webhook_attempts (delivery_id, number, at, duration_ms, status_code, response_headers, response_body, error, error_kind, triggered_by)
	SELECT d.id, 1, $10::timestamptz, $11::bigint, $12::integer, $13::jsonb, $14::text, $15::text, $16::text, $17::text FROM d RETURNING number`
	nextAttemptSQL = `WITH ` + asyncCommitCTE + `, d AS (
		UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, status = $1, last_attempt_at = $2, next_attempt_at = $3
		WHERE workspace_id = $4 AND id = $5 RETURNING id, attempt_count)
	INSERT INTO webhook_attempts (delivery_id, number, at, duration_ms, status_code, response_headers, response_body, error, error_kind, triggered_by)
	SELECT d.id, d.attempt_count, $6::timestamptz, $7::bigint, $8::integer, $9::jsonb, $10::text, $11::text, $12::text, $13::text FROM d, async RETURNING number`
)

// RecordAttempt logs the attempt under the delivery's next number and
// applies its effects on the delivery and the endpoint, in one transaction.
func (s *Store) RecordAttempt(ctx context.Context, r *outbound.AttemptRecord) error {
	a := &r.Attempt
	a.At = storedTime(a.At)
	row := attemptRow{
		DeliveryID: r.DeliveryID, At: a.At, DurationMS: a.DurationMS, StatusCode: a.StatusCode,
		ResponseBody: a.Body, Error: a.Error, ErrorKind: a.ErrorKind, TriggeredBy: a.Trigger,
	}
	if a.Headers != nil {
		h, err := json.Marshal(a.Headers)
		if err != nil {
			return fmt.Errorf("store: attempt headers: %w", err)
		}
		hs := string(h)
		row.ResponseHeaders = &hs
	}
	next := webhookTime(r.NextAttemptAt)
	healthChanges := (a.Error == "") == r.WasFailing
	// The one-statement paths below write the delivery and its attempt
	// only; anything more goes through the transaction.
	onlyAttempt := !healthChanges && r.Enqueue == nil && r.DisableReason == ""
	var newRow *deliveryRow
	if r.New != nil {
		d := *r.New
		d.Status, d.AttemptCount, d.LastAttemptAt, d.NextAttemptAt = r.Status, 1, &a.At, next
		nr := newDeliveryRow(&d)
		newRow = &nr
	}
	if s.dialect == DialectPostgres && onlyAttempt && newRow != nil {
		// A first attempt made by fan-out, in one statement: the delivery
		// and its attempt are written together.
		err := s.sqldb.QueryRowContext(ctx, firstAttemptSQL,
			newRow.ID, newRow.WorkspaceID, newRow.EndpointID, newRow.EventID, newRow.EventType, newRow.Status,
			newRow.CreatedAt, a.At, next,
			a.At, a.DurationMS, a.StatusCode, row.ResponseHeaders, a.Body, a.Error, a.ErrorKind, a.Trigger).Scan(&a.Number)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: webhook delivery of event %s to %s: %w", newRow.EventID, newRow.EndpointID, records.ErrDuplicate)
		}
		if err != nil {
			return fmt.Errorf("store: record webhook attempt: %w", err)
		}
		return nil
	}
	if s.dialect == DialectPostgres && onlyAttempt {
		// The common case, one statement: Postgres lets the delivery's
		// update feed the attempt's insert, which saves a transaction's
		// four round trips on every delivery.
		err := s.sqldb.QueryRowContext(ctx, nextAttemptSQL,
			r.Status, a.At, next, r.Workspace, r.DeliveryID,
			a.At, a.DurationMS, a.StatusCode, row.ResponseHeaders, a.Body, a.Error, a.ErrorKind, a.Trigger).Scan(&a.Number)
		if errors.Is(err, sql.ErrNoRows) {
			return deliveryNotFound(r.DeliveryID)
		}
		if err != nil {
			return fmt.Errorf("store: record webhook attempt: %w", err)
		}
		return nil
	}
	return s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.asyncCommit(ctx, tx); err != nil {
			return err
		}
		if newRow != nil {
			var ids []string
			if err := tx.NewInsert().Model(newRow).On("CONFLICT (event_id, endpoint_id) DO NOTHING").
				Returning("id").Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: insert webhook delivery: %w", err)
			}
			if len(ids) == 0 {
				return fmt.Errorf("store: webhook delivery of event %s to %s: %w", newRow.EventID, newRow.EndpointID, records.ErrDuplicate)
			}
			a.Number, row.Number = 1, 1
			if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
				return fmt.Errorf("store: insert webhook attempt: %w", err)
			}
			return s.afterAttempt(ctx, tx, r, healthChanges)
		}
		var numbers []int
		err := tx.NewUpdate().Model((*deliveryRow)(nil)).
			Set("attempt_count = attempt_count + 1").Set("status = ?", r.Status).
			Set("last_attempt_at = ?", a.At).Set("next_attempt_at = ?", next).
			Where("workspace_id = ? AND id = ?", r.Workspace, r.DeliveryID).
			Returning("attempt_count").Scan(ctx, &numbers)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: update webhook delivery: %w", err)
		}
		if len(numbers) == 0 {
			return deliveryNotFound(r.DeliveryID)
		}
		a.Number, row.Number = numbers[0], numbers[0]
		if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
			return fmt.Errorf("store: insert webhook attempt: %w", err)
		}
		return s.afterAttempt(ctx, tx, r, healthChanges)
	})
}

// afterAttempt queues the retry, disables the endpoint when asked and
// updates its health, in the attempt's transaction.
func (s *Store) afterAttempt(ctx context.Context, tx bun.Tx, r *outbound.AttemptRecord, healthChanges bool) error {
	if r.Enqueue != nil {
		d := &outbound.Delivery{ID: r.DeliveryID, Workspace: r.Workspace, EndpointID: r.EndpointID, Status: r.Status}
		if err := r.Enqueue(ctx, tx.Tx, []*outbound.Delivery{d}); err != nil {
			return err
		}
	}
	if r.DisableReason != "" {
		if err := disableEndpoint(ctx, tx, r.Workspace, r.EndpointID, r.Attempt.At, r.DisableReason); err != nil {
			return err
		}
	}
	// The endpoint's health changes only on a success after failures or a
	// failure after successes; otherwise the round trip is saved.
	if !healthChanges {
		return nil
	}
	upd := tx.NewUpdate().Model((*endpointRow)(nil)).Where("workspace_id = ? AND id = ?", r.Workspace, r.EndpointID)
	if r.Attempt.Error == "" {
		upd = upd.Set("failing_since = NULL").Where("failing_since IS NOT NULL")
	} else {
		upd = upd.Set("failing_since = ?", r.Attempt.At).Where("failing_since IS NULL")
	}
	if _, err := upd.Exec(ctx); err != nil {
		return fmt.Errorf("store: update webhook endpoint health: %w", err)
	}
	return nil
}

// SetDeliveryStatus changes a delivery's status.
func (s *Store) SetDeliveryStatus(ctx context.Context, workspace, id, status string) error {
	_, err := s.IDB(ctx).NewUpdate().Model((*deliveryRow)(nil)).
		Set("status = ?", status).Set("next_attempt_at = NULL").
		Where("workspace_id = ? AND id = ?", workspace, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: set webhook delivery status: %w", err)
	}
	return nil
}

// GetDelivery answers a delivery of the workspace with its attempts.
func (s *Store) GetDelivery(ctx context.Context, workspace, id string) (*outbound.Delivery, error) {
	var row deliveryRow
	err := s.IDB(ctx).NewSelect().Model(&row).Where("workspace_id = ? AND id = ?", workspace, id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, deliveryNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get webhook delivery: %w", err)
	}
	out, err := s.withAttempts(ctx, []deliveryRow{row})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ListDeliveries answers deliveries with their attempts, newest first.
func (s *Store) ListDeliveries(ctx context.Context, q outbound.DeliveryQuery) ([]*outbound.Delivery, error) {
	var rows []deliveryRow
	sel := s.IDB(ctx).NewSelect().Model(&rows)
	if q.EndpointID != "" {
		sel = sel.Where("endpoint_id = ?", q.EndpointID)
	}
	if q.Status != "" {
		sel = sel.Where("status = ?", q.Status)
	}
	if err := pageBefore(sel, q.Workspace, q.Before, q.Limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list webhook deliveries: %w", err)
	}
	return s.withAttempts(ctx, rows)
}

// withAttempts loads the attempts of the deliveries in one query.
func (s *Store) withAttempts(ctx context.Context, rows []deliveryRow) ([]*outbound.Delivery, error) {
	out := make([]*outbound.Delivery, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	ids := make([]string, len(rows))
	byID := make(map[string]*outbound.Delivery, len(rows))
	for i := range rows {
		out[i] = rows[i].delivery()
		ids[i] = rows[i].ID
		byID[rows[i].ID] = out[i]
	}
	var attempts []attemptRow
	if err := s.IDB(ctx).NewSelect().Model(&attempts).Where("delivery_id IN (?)", bun.List(ids)).
		Order("delivery_id", "number").Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list webhook attempts: %w", err)
	}
	for _, r := range attempts {
		a := outbound.Attempt{
			Number: r.Number, At: r.At.UTC(), DurationMS: r.DurationMS, StatusCode: r.StatusCode,
			Body: r.ResponseBody, Error: r.Error, ErrorKind: r.ErrorKind, Trigger: r.TriggeredBy,
		}
		if r.ResponseHeaders != nil {
			var h http.Header
			if err := json.Unmarshal([]byte(*r.ResponseHeaders), &h); err != nil {
				return nil, fmt.Errorf("store: webhook attempt headers: %w", err)
			}
			a.Headers = h
		}
		d := byID[r.DeliveryID]
		d.Attempts = append(d.Attempts, a)
	}
	return out, nil
}

// RequeueDeliveries makes the selected deliveries pending and hands them to
// enqueue, in one transaction.
func (s *Store) RequeueDeliveries(ctx context.Context, q outbound.RequeueQuery, enqueue outbound.EnqueueFunc) ([]*outbound.Delivery, error) {
	var out []*outbound.Delivery
	err := s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		sub := tx.NewSelect().TableExpr("webhook_deliveries AS d").Column("d.id").
			Where("d.workspace_id = ?", q.Workspace)
		if len(q.IDs) > 0 {
			sub = sub.Where("d.id IN (?)", bun.List(q.IDs))
		} else {
			sub = sub.Join("JOIN webhook_endpoints AS e ON e.id = d.endpoint_id").
				Where("d.status = ?", outbound.StatusFailed).Where("d.created_at >= ?", storedTime(q.FailedSince)).
				Where("e.enabled")
			if q.EndpointID != "" {
				sub = sub.Where("d.endpoint_id = ?", q.EndpointID)
			}
			sub = sub.OrderExpr("d.id")
		}
		if q.Limit > 0 {
			sub = sub.Limit(int64(q.Limit))
		}
		var rows []deliveryRow
		err := tx.NewUpdate().Model((*deliveryRow)(nil)).
			Set("status = ?", outbound.StatusPending).Set("next_attempt_at = ?", storedTime(q.At)).
			Where("id IN (?)", sub).Returning("*").Scan(ctx, &rows)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: requeue webhook deliveries: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		out = make([]*outbound.Delivery, len(rows))
		for i := range rows {
			out[i] = rows[i].delivery()
		}
		return enqueue(ctx, tx.Tx, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PruneDeliveries removes finished deliveries created before the time, with
// their attempts.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.IDB(ctx).NewDelete().Model((*deliveryRow)(nil)).
		Where("created_at < ? AND status <> ?", storedTime(before), outbound.StatusPending).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: prune webhook deliveries: %w", err)
	}
	return res.RowsAffected()
}

// CountDeliveries answers how many of the endpoint's deliveries made at or
// after since are in each status, by the hour they were made in (since
// plus whole hours). Delivery ids sort by the time they were made, so the
// bound on the id keeps the count within the (endpoint_id, id) index's
// range for the period rather than the endpoint's whole log.
func (s *Store) CountDeliveries(ctx context.Context, workspace, endpointID string, since time.Time) (map[time.Time]map[string]int, error) {
	since = since.UTC()
	hour := "(unixepoch(created_at) - $1) / 3600"
	if s.dialect == DialectPostgres {
		hour = "(floor(extract(epoch FROM created_at))::bigint - $1) / 3600"
	}
	var rows []struct {
		Hour   int64  `bun:"hour"`
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	err := s.queryAll(ctx, &rows, `SELECT `+hour+` AS hour, status, count(*) AS n FROM webhook_deliveries
		WHERE endpoint_id = $3 AND id >= $4 AND workspace_id = $2
		GROUP BY 1, status`, since.Unix(), workspace, endpointID, records.IDFloor("dlv", since))
	if err != nil {
		return nil, fmt.Errorf("store: count deliveries: %w", err)
	}
	out := make(map[time.Time]map[string]int, 24)
	for _, r := range rows {
		if r.Hour < 0 {
			continue // made a moment before since by another clock
		}
		h := since.Add(time.Duration(r.Hour) * time.Hour)
		if out[h] == nil {
			out[h] = map[string]int{}
		}
		out[h][r.Status] += r.N
	}
	return out, nil
}
