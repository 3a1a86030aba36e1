package outbound

import (
	"context"
	"database/sql"
	"net/http"
	"time"

	"github.com/smartlite/crmkit/records"
)

// Delivery statuses.
const (
	// StatusPending: not delivered yet; an attempt is queued or running.
	StatusPending = "pending"
	// StatusSucceeded: an attempt got a 2xx answer.
	StatusSucceeded = "succeeded"
	// StatusFailed: retries ran out, the endpoint answered 410 Gone, or it was
	// disabled. A redeliver or a replay makes it pending again.
	StatusFailed = "failed"
)

// Triggers say what started an attempt.
const (
	TriggerScheduled = "scheduled" // fan-out and automatic retries
	TriggerManual    = "manual"    // a redeliver or a test send
	TriggerReplay    = "replay"    // a replay of failed deliveries
)

// Delivery is one event on its way to one endpoint, with the log of its
// attempts.
type Delivery struct {
	ID            string     `json:"id"`
	Workspace     string     `json:"-"`
	EndpointID    string     `json:"endpoint_id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	AttemptCount  int        `json:"attempt_count"`
	CreatedAt     time.Time  `json:"created_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	// NextAttemptAt is when the next automatic attempt is due, while pending.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	Attempts      []Attempt  `json:"attempts"`
}

// Attempt is one try at delivering, successful or not.
type Attempt struct {
	Number     int       `json:"number"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	// StatusCode is the HTTP status of the answer; 0 when there was none.
	StatusCode int         `json:"status_code,omitempty"`
	Headers    http.Header `json:"response_headers,omitempty"`
	// Body holds the first 4 KiB of the answer's body, as valid UTF-8.
	Body string `json:"response_body,omitempty"`
	// Error says why the attempt failed; empty on success.
	Error string `json:"error,omitempty"`
	// ErrorKind classifies Error: see the ErrorKind constants.
	ErrorKind string `json:"error_kind,omitempty"`
	Trigger   string `json:"trigger"`
}

// Kinds of attempt failure.
const (
	ErrorKindDNS        = "dns"
	ErrorKindRefused    = "refused"
	ErrorKindTimeout    = "timeout"
	ErrorKindTLS        = "tls"
	ErrorKindRedirect   = "redirect"
	ErrorKindStatus     = "http_status"
	ErrorKindBlocked    = "blocked_address"
	ErrorKindConnection = "connection" // reset or closed mid-exchange
	ErrorKindNetwork    = "network"
	ErrorKindDisabled   = "endpoint_disabled"
)

// DeliveryQuery selects deliveries of one workspace, newest first.
type DeliveryQuery struct {
	Workspace  string
	EndpointID string // "" for every endpoint
	Status     string // "" for every status
	// Before is the cursor: the id of the last delivery of the previous page.
	Before string
	Limit  int
}

// RequeueQuery selects deliveries to send again: those named by IDs, or
// else the failed ones created since FailedSince whose endpoint is enabled
// (of EndpointID only, when set).
type RequeueQuery struct {
	Workspace string
	// At is the requeue time, which becomes the deliveries' NextAttemptAt.
	At          time.Time
	IDs         []string
	EndpointID  string
	FailedSince time.Time
	// Limit caps how many one call requeues; 0 means no cap.
	Limit int
}

// AttemptRecord is what one attempt changes: the attempt logged, the
// delivery's status, and the endpoint's health.
type AttemptRecord struct {
	Workspace  string
	DeliveryID string
	EndpointID string
	// Attempt is logged; the store sets its Number to the delivery's next one.
	Attempt       Attempt
	Status        string
	NextAttemptAt *time.Time
	// WasFailing is whether the endpoint had FailingSince set when the
	// attempt began. The store may skip the endpoint's health when the
	// attempt leaves it as it was (a success on a healthy endpoint, a failure
	// on a failing one).
	WasFailing bool
	// Enqueue, when set, is called in the transaction that logs the attempt
	// (with the delivery alone), to queue the retry atomically with it.
	Enqueue EnqueueFunc
	// DisableReason, when set, disables the endpoint with this reason (kept
	// if it is disabled already), in the transaction that logs the attempt.
	DisableReason string
	// New, when set, is a delivery not stored yet, whose first attempt this
	// is: the store inserts it (with the attempt's status and times) and its
	// attempt together, failing with records.ErrDuplicate when its (event,
	// endpoint) pair exists already, and recording nothing then.
	New *Delivery
}

// EnqueueFunc inserts jobs in the transaction that wrote deliveries, so a
// delivery row exists exactly when its job does.
type EnqueueFunc func(ctx context.Context, tx *sql.Tx, deliveries []*Delivery) error

// Store is what outbound needs from persistence. The store package implements
// it on bun for Postgres and SQLite.
//
// Reads name a workspace and answer records.ErrNotFound for what does not
// exist in it: another workspace's endpoint or delivery does not exist.
type Store interface {
	// CreateEndpoint stores a new endpoint.
	CreateEndpoint(ctx context.Context, e *Endpoint) error
	// CreateEndpointWithin stores a new endpoint unless its workspace
	// already holds max endpoints, answering an error wrapping
	// records.ErrPlanLimit then; max 0 means no cap. The count and the
	// insert are one transaction, so concurrent creates cannot pass the cap.
	CreateEndpointWithin(ctx context.Context, e *Endpoint, max int) error
	GetEndpoint(ctx context.Context, workspace, id string) (*Endpoint, error)
	// ListEndpoints answers endpoints ordered by id with an id greater than
	// after, at most limit of them.
	ListEndpoints(ctx context.Context, workspace, after string, limit int) ([]*Endpoint, error)
	// FanoutTargets answers an event of the workspace with every enabled
	// endpoint of its workspace, in one round trip; ErrNotFound when there is
	// no such event.
	FanoutTargets(ctx context.Context, workspace, eventID string) (*records.Event, []*Endpoint, error)
	// UpdateEndpoint stores every field of e but ID, Workspace and CreatedAt;
	// ErrNotFound when there is no such endpoint.
	UpdateEndpoint(ctx context.Context, e *Endpoint) error
	// DeleteEndpoint removes an endpoint with its deliveries and their attempts.
	DeleteEndpoint(ctx context.Context, workspace, id string) error

	// CreateDeliveries inserts the deliveries, skipping any whose (event,
	// endpoint) pair exists already, calls enqueue (when not nil) with those
	// it inserted, in the same transaction, and answers them. It does not
	// call enqueue when it inserted none.
	CreateDeliveries(ctx context.Context, deliveries []*Delivery, enqueue EnqueueFunc) ([]*Delivery, error)
	// DeliveryTarget answers a delivery (without attempts) with its endpoint
	// and event, for the worker that sends it; it looks the delivery up by id
	// alone, since a job already names the workspace's own delivery.
	DeliveryTarget(ctx context.Context, id string) (*Delivery, *Endpoint, *records.Event, error)
	// RecordAttempt logs an attempt and applies its effects in one
	// transaction: the delivery's status, attempt count and times, and the
	// endpoint's FailingSince (cleared on success, set to the attempt's time
	// on failure unless already set; see AttemptRecord.WasFailing).
	RecordAttempt(ctx context.Context, r *AttemptRecord) error
	// SetDeliveryStatus changes a delivery's status without an attempt.
	SetDeliveryStatus(ctx context.Context, workspace, id, status string) error
	// GetDelivery answers a delivery with its attempts in number order.
	GetDelivery(ctx context.Context, workspace, id string) (*Delivery, error)
	// ListDeliveries answers deliveries with their attempts, ordered by id
	// descending (newest first), at most q.Limit of them.
	ListDeliveries(ctx context.Context, q DeliveryQuery) ([]*Delivery, error)
	// CountDeliveries answers how many of the endpoint's deliveries made
	// at or after since are in each status, by the hour they were made in
	// (since plus whole hours).
	CountDeliveries(ctx context.Context, workspace, endpointID string, since time.Time) (map[time.Time]map[string]int, error)
	// RequeueDeliveries makes the selected deliveries pending and calls
	// enqueue with them, in one transaction; it answers them.
	RequeueDeliveries(ctx context.Context, q RequeueQuery, enqueue EnqueueFunc) ([]*Delivery, error)
	// PruneDeliveries removes deliveries created before the time that are no
	// longer pending, with their attempts, and answers how many it removed.
	PruneDeliveries(ctx context.Context, before time.Time) (int64, error)
}
