package outbound

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
)

// DefaultSchedule is the default wait before each retry: after 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h and 10 h, about a day and a bit in all.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultDisableAfter  = 5 * 24 * time.Hour
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultPruneInterval = time.Hour
	DefaultJitter        = 0.2
	DefaultQueue         = "webhooks"
	DefaultUserAgent     = "SmartLite-Webhooks/1.0"
	// maxRetryAfter caps how long a receiver's Retry-After can hold a delivery.
	maxRetryAfter = 24 * time.Hour
)

// Signer turns the secrets of an endpoint, an event id, a time and a body
// into signature headers. webhook.HMACSigner is the default.
type Signer interface {
	Sign(secrets []string, id string, t time.Time, body []byte) (http.Header, error)
}

// Config configures a Service. Zero fields take the defaults above.
type Config struct {
	Store  Store // required
	Logger *slog.Logger
	// Clock tells the time of attempts, of failing periods and of retention.
	Clock func() time.Time
	// Schedule is the wait before each retry; a delivery gets
	// len(Schedule)+1 attempts.
	Schedule []time.Duration
	// Jitter adds up to this fraction of each wait, so deliveries that failed
	// together do not all retry in the same instant. Negative means none.
	Jitter float64
	// Timeout bounds one attempt, from connecting to reading the answer.
	Timeout time.Duration
	// DisableAfter disables an endpoint that has failed without a single
	// success for this long.
	DisableAfter time.Duration
	// Retention is how long finished deliveries and their attempts are kept;
	// PruneInterval is how often the prune job runs.
	Retention     time.Duration
	PruneInterval time.Duration
	// AllowPrivate lets endpoints target loopback and private networks; see
	// AddressPolicy.
	AllowPrivate bool
	// KnownObject answers whether records of the named object can exist;
	// endpoints naming another object are refused. Nil accepts any name.
	KnownObject func(name string) bool
	// KnownField answers whether the named object has the named field; an
	// endpoint naming objects whose condition names a field one of them
	// lacks is refused. Nil accepts any field.
	KnownField func(object, field string) bool
	// Resolver resolves endpoint host names at registration; nil means the
	// system resolver. Deliveries resolve through the system resolver and
	// check the address at dial time.
	Resolver Resolver
	Signer   Signer
	// Queue is the River queue deliveries run on.
	Queue     string
	UserAgent string
	// PollInterval is how often, when RiverConfig sets up the client, River
	// polls the client's queues, fan-out's among them, for jobs no
	// notification announced (default RiverFetchPollInterval). Committed
	// writes wake fan-out without it; it bounds how late a job whose
	// notification was lost starts, against an idle cost of a query per
	// queue per interval.
	PollInterval time.Duration
	// Observe, when set, hears of every attempt a delivery job or fan-out
	// records: its status (StatusSucceeded, StatusPending for one to be
	// retried, StatusFailed for the last) and, on success, the time since
	// its event was written. It must not block; metrics use it.
	Observe func(status string, sinceEvent time.Duration)
	// DeliveryShards is how many queues deliveries are spread over by
	// workspace (see DefaultDeliveryShards, the default). On SQLite use 1:
	// every queue's producer takes a pooled connection and the one write
	// lock to fetch, and eight more queues starved a long transaction of
	// another job of both; the cap on inline first attempts per fan-out
	// still keeps one workspace's many endpoints from crowding out others'.
	DeliveryShards int
	// Plans, when set, caps each workspace's endpoints at its plan's
	// MaxWebhookEndpoints: Create beyond it answers a
	// *records.PlanLimitError (which wraps records.ErrPlanLimit).
	Plans *records.Plans
	// Transport, when set, replaces the guarded transport deliveries use,
	// and with it the address check at dial time. It is for tests: to
	// observe the guard's absence, or to resolve names without asking a
	// DNS server.
	Transport http.RoundTripper
}

// Service manages endpoints and delivers events to them. Its jobs run on a
// River client the host creates; see Register, PeriodicJobs, RiverConfig and
// SetClient.
type Service struct {
	store        Store
	log          *slog.Logger
	clock        func() time.Time
	schedule     []time.Duration
	jitter       float64
	timeout      time.Duration
	disableAfter time.Duration
	retention    time.Duration
	pruneEvery   time.Duration
	policy       AddressPolicy
	resolver     Resolver
	knownObject  func(string) bool
	knownField   func(object, field string) bool
	signer       Signer
	queue        string
	userAgent    string
	pollEvery    time.Duration
	observe      func(string, time.Duration)
	http         *http.Client
	plans        *records.Plans
	shards       int
	// random answers a number in [0, 1) that scales each retry's jitter;
	// rand.Float64, but tests put a source of their own here.
	random func() float64

	client atomic.Pointer[river.Client[*sql.Tx]]
	// retryAt carries the wait a failed attempt chose (from Retry-After or
	// the schedule) to NextRetry, which River calls right after Work
	// returns, in the same process.
	retryAt sync.Map // job id (int64) -> time.Time
	// latency is the duration of the last attempt to each endpoint from this
	// process; it decides whether fan-out makes first attempts inline.
	latency sync.Map // endpoint id -> time.Duration
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("outbound: Config.Store is required")
	}
	s := &Service{
		store:        cfg.Store,
		log:          cfg.Logger,
		clock:        cfg.Clock,
		schedule:     slices.Clone(cfg.Schedule),
		jitter:       cfg.Jitter,
		timeout:      cfg.Timeout,
		disableAfter: cfg.DisableAfter,
		retention:    cfg.Retention,
		pruneEvery:   cfg.PruneInterval,
		policy:       AddressPolicy{AllowPrivate: cfg.AllowPrivate},
		resolver:     cfg.Resolver,
		knownObject:  cfg.KnownObject,
		knownField:   cfg.KnownField,
		observe:      cfg.Observe,
		signer:       cfg.Signer,
		queue:        cfg.Queue,
		userAgent:    cfg.UserAgent,
		pollEvery:    cfg.PollInterval,
		random:       rand.Float64,
		plans:        cfg.Plans,
		shards:       cfg.DeliveryShards,
	}
	if s.shards <= 0 {
		s.shards = DefaultDeliveryShards
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if len(s.schedule) == 0 {
		s.schedule = slices.Clone(DefaultSchedule)
	}
	for _, d := range s.schedule {
		if d <= 0 {
			return nil, errors.New("outbound: every Config.Schedule wait must be positive")
		}
	}
	switch {
	case s.jitter == 0:
		s.jitter = DefaultJitter
	case s.jitter < 0:
		s.jitter = 0
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.disableAfter <= 0 {
		s.disableAfter = DefaultDisableAfter
	}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	if s.pruneEvery <= 0 {
		s.pruneEvery = DefaultPruneInterval
	}
	if s.signer == nil {
		s.signer = webhook.HMACSigner{}
	}
	if s.queue == "" {
		s.queue = DefaultQueue
	}
	if s.userAgent == "" {
		s.userAgent = DefaultUserAgent
	}
	if s.pollEvery <= 0 {
		s.pollEvery = RiverFetchPollInterval
	}
	rt := cfg.Transport
	if rt == nil {
		rt = newTransport(s.policy)
	}
	s.http = &http.Client{
		Transport: rt,
		// A redirect is an answer, not a detour: following it would let a
		// public URL bounce deliveries to a private one, and a receiver that
		// moved should be re-registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// Policy answers the address policy endpoints are checked against.
func (s *Service) Policy() AddressPolicy { return s.policy }

// SetClient gives the Service the River client that runs its jobs, for the
// jobs it inserts outside a worker (redeliver, replay). Call it once the
// client exists, before serving requests.
func (s *Service) SetClient(c *river.Client[*sql.Tx]) { s.client.Store(c) }

func (s *Service) riverClient() (*river.Client[*sql.Tx], error) {
	c := s.client.Load()
	if c == nil {
		return nil, errors.New("outbound: no River client; call SetClient")
	}
	return c, nil
}

func (s *Service) now() time.Time { return s.clock().UTC() }

// EndpointInput is what a caller sets on an endpoint. Its JSON form is the
// body of the create and update requests.
type EndpointInput struct {
	URL         string     `json:"url"`
	Events      []string   `json:"events"`
	Objects     []string   `json:"objects"`
	Condition   *Condition `json:"condition"`
	Description string     `json:"description"`
	Enabled     *bool      `json:"enabled"`
}

func inputOf(e *Endpoint) EndpointInput {
	enabled := e.Enabled
	return EndpointInput{
		URL: e.URL, Events: slices.Clone(e.Events), Objects: slices.Clone(e.Objects),
		Condition: e.Condition, Description: e.Description, Enabled: &enabled,
	}
}

// validate checks an input and answers a *records.ValidationError listing
// every bad field.
func (s *Service) validate(ctx context.Context, in *EndpointInput) error {
	fe := boundErrors(in)
	add := func(field, code, msg string) {
		fe = append(fe, records.FieldError{Field: field, Code: code, Message: msg})
	}
	switch {
	case in.URL == "":
		add("url", "required", "url is required")
	case len(in.URL) > MaxURLLength:
	default:
		if err := s.policy.CheckURL(ctx, s.resolver, in.URL); err != nil {
			if errors.Is(err, ErrBlockedAddress) {
				add("url", "blocked_address", err.Error()+"; "+OptInHint)
			} else {
				add("url", "url", err.Error())
			}
		}
	}
	if len(in.Events) == 0 {
		add("events", "required", `events is required: record.created, record.updated, record.deleted, "record.*" or "*"`)
	}
	if len(in.Events) <= MaxEvents {
		for _, p := range in.Events {
			if !validEventPattern(p) {
				add("events", "one_of", fmt.Sprintf("unknown event type %s: use record.created, record.updated, record.deleted, \"record.*\" or \"*\"", quoted(p)))
			}
		}
	}
	if len(in.Objects) <= MaxObjects {
		for _, o := range in.Objects {
			switch {
			case o == "":
				add("objects", "required", "object names must not be empty")
			case utf8.RuneCountInString(o) > MaxNameLength:
				// Refused by boundErrors already.
			case s.knownObject != nil && !s.knownObject(o):
				add("objects", "unknown_object", fmt.Sprintf("there is no object named %s", quoted(o)))
			}
		}
	}
	if c := in.Condition; c != nil {
		switch {
		case c.Field == "":
			add("condition.field", "required", "a condition needs a field")
		case s.knownField != nil && len(in.Objects) <= MaxObjects && utf8.RuneCountInString(c.Field) <= MaxNameLength:
			// Each object the endpoint names must have the field, or the
			// condition could never match its events.
			for _, o := range in.Objects {
				if (s.knownObject == nil || s.knownObject(o)) && !s.knownField(o, c.Field) {
					add("condition.field", "unknown_field", fmt.Sprintf("%s has no field %s", quoted(o), quoted(c.Field)))
				}
			}
		}
	}
	if fe != nil {
		return &records.ValidationError{Fields: fe}
	}
	return nil
}

// Create registers an endpoint and answers it with its secret, which is
// never shown again.
func (s *Service) Create(ctx context.Context, workspace string, in EndpointInput) (*Endpoint, string, error) {
	if err := s.validate(ctx, &in); err != nil {
		return nil, "", err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	e := &Endpoint{
		ID: records.NewID("whk"), Workspace: workspace, URL: in.URL,
		Events: in.Events, Objects: nonNil(in.Objects), Condition: in.Condition,
		Description: in.Description, Enabled: in.Enabled == nil || *in.Enabled,
		Secret: secret, CreatedAt: now, UpdatedAt: now,
	}
	err = s.plans.Within(ctx, workspace, records.LimitWebhookEndpoints, func(ctx context.Context, max int) error {
		return s.store.CreateEndpointWithin(ctx, e, max)
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Get answers one endpoint.
func (s *Service) Get(ctx context.Context, workspace, id string) (*Endpoint, error) {
	return s.store.GetEndpoint(ctx, workspace, id)
}

// List answers up to limit endpoints with an id after the given one (""
// for the first), in id order.
func (s *Service) List(ctx context.Context, workspace, after string, limit int) ([]*Endpoint, error) {
	return s.store.ListEndpoints(ctx, workspace, after, limit)
}

// Update changes an endpoint: apply edits the endpoint's current settings
// (the API decodes a PATCH body onto them, so absent members stay as they
// are), and the result is validated like a new endpoint. Enabling a disabled
// endpoint clears its disabled and failing state.
func (s *Service) Update(ctx context.Context, workspace, id string, apply func(in *EndpointInput) error) (*Endpoint, error) {
	e, err := s.store.GetEndpoint(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	in := inputOf(e)
	if err := apply(&in); err != nil {
		return nil, err
	}
	if err := s.validate(ctx, &in); err != nil {
		return nil, err
	}
	e.URL, e.Events, e.Objects, e.Condition, e.Description = in.URL, in.Events, nonNil(in.Objects), in.Condition, in.Description
	if in.Enabled != nil && *in.Enabled != e.Enabled {
		e.Enabled = *in.Enabled
		if e.Enabled {
			e.DisabledAt, e.DisabledReason, e.FailingSince = nil, "", nil
		} else {
			now := s.now()
			e.DisabledAt, e.DisabledReason = &now, "disabled by an administrator"
		}
	}
	e.UpdatedAt = s.now()
	if err := s.store.UpdateEndpoint(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// Delete removes an endpoint with its delivery log. Queued attempts to it
// find it gone and stop.
func (s *Service) Delete(ctx context.Context, workspace, id string) error {
	return s.store.DeleteEndpoint(ctx, workspace, id)
}

// RotateSecret gives the endpoint a new secret and answers it (shown only
// this once). For grace, the old secret keeps signing deliveries alongside
// the new one, so receivers can switch without dropping any; a grace of 0
// retires it at once.
func (s *Service) RotateSecret(ctx context.Context, workspace, id string, grace time.Duration) (*Endpoint, string, error) {
	if grace < 0 {
		return nil, "", &records.ValidationError{Fields: []records.FieldError{{Field: "grace_period", Code: "min", Message: "the grace period must not be negative"}}}
	}
	e, err := s.store.GetEndpoint(ctx, workspace, id)
	if err != nil {
		return nil, "", err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	e.PreviousSecret, e.PreviousSecretExpiresAt = "", nil
	if grace > 0 {
		exp := now.Add(grace)
		e.PreviousSecret, e.PreviousSecretExpiresAt = e.Secret, &exp
	}
	e.Secret, e.UpdatedAt = secret, now
	if err := s.store.UpdateEndpoint(ctx, e); err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// TestEventType is the type of the event SendTest sends.
const TestEventType = "webhook.test"

// SendTest sends the endpoint a sample event (type "webhook.test", an
// opportunity moving to Closed Won) right away, signed like any delivery,
// and answers the attempt. It is not retried and not kept in the log; it
// works on disabled endpoints too, so an admin can check one before enabling
// it.
func (s *Service) SendTest(ctx context.Context, workspace, id string) (*Attempt, error) {
	e, err := s.store.GetEndpoint(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	ev := &records.Event{
		ID: records.NewID("evt"), Type: TestEventType, CreatedAt: now, Workspace: workspace,
		Object: "opportunity", RecordID: "rec_test",
		Record: &records.Record{ID: "rec_test", Object: "opportunity", Workspace: workspace, Version: 2,
			CreatedAt: now, UpdatedAt: now, Fields: records.Fields{"name": "Test deal", "stage": "Closed Won"}},
		Changes: map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}},
		Source:  records.SourceAPI, Actor: records.Actor{Kind: "system", ID: "webhook_test"},
	}
	a, err := s.attempt(ctx, e, ev, records.NewID("dlv"), TriggerManual)
	if err != nil {
		return nil, err
	}
	a.Number = 1
	return &a, nil
}

// Deliveries answers up to q.Limit deliveries, newest first, older than
// q.Before when it is set.
func (s *Service) Deliveries(ctx context.Context, q DeliveryQuery) ([]*Delivery, error) {
	if q.Status != "" && q.Status != StatusPending && q.Status != StatusSucceeded && q.Status != StatusFailed {
		return nil, &records.ValidationError{Fields: []records.FieldError{{Field: "status", Code: "one_of",
			Message: "status must be pending, succeeded or failed"}}}
	}
	if q.EndpointID != "" {
		if _, err := s.store.GetEndpoint(ctx, q.Workspace, q.EndpointID); err != nil {
			return nil, err
		}
	}
	return s.store.ListDeliveries(ctx, q)
}

// CountDeliveries answers how many of the endpoint's deliveries made at or
// after since are in each status, by the hour they were made in (since plus
// whole hours): a chart of the endpoint's health without reading its log.
func (s *Service) CountDeliveries(ctx context.Context, workspace, endpointID string, since time.Time) (map[time.Time]map[string]int, error) {
	if _, err := s.store.GetEndpoint(ctx, workspace, endpointID); err != nil {
		return nil, err
	}
	return s.store.CountDeliveries(ctx, workspace, endpointID, since)
}

// Delivery answers one delivery with its attempts.
func (s *Service) Delivery(ctx context.Context, workspace, id string) (*Delivery, error) {
	return s.store.GetDelivery(ctx, workspace, id)
}

// Redeliver sends a delivery again, whatever its status, as a new run of
// attempts (the first marked manual, retries on the usual schedule), and
// answers it as queued. The endpoint must be enabled.
func (s *Service) Redeliver(ctx context.Context, workspace, id string) (*Delivery, error) {
	d, err := s.store.GetDelivery(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	e, err := s.store.GetEndpoint(ctx, workspace, d.EndpointID)
	if err != nil {
		return nil, err
	}
	if !e.Enabled {
		return nil, errEndpointDisabled()
	}
	c, err := s.riverClient()
	if err != nil {
		return nil, err
	}
	ds, err := s.store.RequeueDeliveries(ctx, RequeueQuery{Workspace: workspace, At: s.now(), IDs: []string{id}}, s.enqueue(c, TriggerManual))
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("outbound: delivery %s: %w", id, records.ErrNotFound)
	}
	// The delivery as queued: read back, it could already show the new
	// attempt, which the committed requeue wakes at once.
	d.Status, d.NextAttemptAt = ds[0].Status, ds[0].NextAttemptAt
	return d, nil
}

func errEndpointDisabled() error {
	return &records.ValidationError{Fields: []records.FieldError{{Field: "endpoint_id", Code: "disabled",
		Message: "the endpoint is disabled; enable it before sending to it"}}}
}

// replayBatch bounds the deliveries one replay transaction requeues.
const replayBatch = 500

// Replay sends again every failed delivery created since the time, of one
// endpoint when endpointID is set, and answers how many. Deliveries to
// disabled endpoints stay failed.
func (s *Service) Replay(ctx context.Context, workspace string, since time.Time, endpointID string) (int, error) {
	if since.IsZero() {
		return 0, &records.ValidationError{Fields: []records.FieldError{{Field: "since", Code: "required", Message: "since is required"}}}
	}
	if endpointID != "" {
		e, err := s.store.GetEndpoint(ctx, workspace, endpointID)
		if err != nil {
			return 0, err
		}
		if !e.Enabled {
			return 0, errEndpointDisabled()
		}
	}
	c, err := s.riverClient()
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		ds, err := s.store.RequeueDeliveries(ctx, RequeueQuery{Workspace: workspace, At: s.now(), EndpointID: endpointID,
			FailedSince: since, Limit: replayBatch}, s.enqueue(c, TriggerReplay))
		total += len(ds)
		if err != nil || len(ds) < replayBatch {
			return total, err
		}
	}
}

// Prune removes finished deliveries older than the retention period and
// answers how many.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	n, err := s.store.PruneDeliveries(ctx, s.now().Add(-s.retention))
	if err == nil && n > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "webhook deliveries pruned", slog.Int64("count", n))
	}
	return n, err
}
