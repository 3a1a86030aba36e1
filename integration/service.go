package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/metrics"
	"github.com/smartlite/crmkit/ratelimit"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// Config configures a Service. Store is required; every other field has a
// working default.
type Config struct {
	// Store persists records, keys and jobs. Required.
	Store Store
	// Pipeline is the record pipeline every write goes through. Default: a
	// records.Pipeline over Store with Objects, Rules and Plans below.
	Pipeline RecordPipeline
	// Jobs makes the job client that works background jobs on the store's
	// database. Default: Store, when it makes job clients (*store.Store
	// does); without one, Start works no jobs.
	Jobs JobQueue
	// Objects and Rules configure the default pipeline and are ignored when
	// Pipeline is set. Defaults: records.DefaultObjects() and the Closed Won
	// rule (an opportunity whose stage changes to Closed Won gets
	// closed_at).
	Objects []records.Object
	Rules   []records.Rule
	// Plans are the subscription plans, each with its record cap and its
	// requests per minute. Default records.DefaultPlans(): starter 10,000
	// records and 60 requests a minute, pro 1,000,000 and 600, enterprise
	// no cap and 6,000. A workspace on a plan not listed, or on one with no
	// RequestsPerMinute, gets starter's rate limit (or the first limited
	// plan's); one on a plan not listed may not create records. At least
	// one plan needs a rate limit.
	Plans []records.Plan
	// Logger receives the access log and errors. Default slog.Default().
	Logger *slog.Logger
	// Clock is the time source of keys, rate limits and the pipeline.
	// Default time.Now.
	Clock func() time.Time
	// MaxBodyBytes caps a single-record request body; larger bodies get 413.
	// Default 1 MiB.
	MaxBodyBytes int64
	// RateLimitStore makes each plan's counter store. Default: in-process
	// memory (limits per replica). redisstore.Factory shares limits between
	// replicas.
	RateLimitStore RateLimitStoreFactory
	// PlanCacheTTL is how long a workspace's plan is cached for the rate
	// limit and the record cap; a plan change made on another replica
	// applies within it. It runs on real time, not Clock. Default 2 s.
	PlanCacheTTL time.Duration
	// KeyCacheTTL is how long a verified key is cached; a revocation made on
	// another replica applies within it. Default 5 s.
	KeyCacheTTL time.Duration
	// Signer signs outbound webhook deliveries. Default webhook.HMACSigner.
	Signer Signer
	// AllowPrivateWebhooks lets webhook endpoints target loopback, private
	// and link-local addresses, for local testing only.
	AllowPrivateWebhooks bool
	// Webhooks tunes outbound delivery: retry schedule, timeout, disable
	// period, retention. Its Store, Logger, Clock and Signer come from this
	// Config, and AllowPrivateWebhooks sets its AllowPrivate.
	Webhooks outbound.Config
	// Connectors tunes pull connectors: the HTTP poller's backoff and
	// timeouts, the run lease, the queue. Its Store, Pipeline, Objects,
	// Client, Clock, Logger and Observe come from this Config, and
	// AllowPrivateWebhooks allows private connector targets too.
	Connectors connector.Config
	// Imports tunes spreadsheet imports: the limits a file is held to (a
	// refused file is a 4xx naming the limit), where uploads are spooled,
	// how many rows a preview converts. Its Bulk comes from this Config.
	Imports ingest.ImportConfig
	// Queues are the River queues this process works. Default: the default
	// queue with 10 workers.
	Queues map[string]river.QueueConfig
	// Metrics, when set, receives the service's Prometheus series: requests
	// by route and status, rate-limited requests by plan, webhook delivery
	// outcomes and latency, River's finished jobs and the queue depth. The
	// host registers it on its registry and serves /metrics.
	Metrics *metrics.Metrics
	// Version is reported in the OpenAPI document. Default "1.0.0".
	Version string
}

// Service is crmkit's integration layer: the REST API over the record
// pipeline, API keys and rate limits, and the background jobs.
type Service struct {
	cfg      Config
	store    Store
	pipeline RecordPipeline
	keys     *apikey.Service
	log      *slog.Logger
	clock    func() time.Time
	maxBody  int64
	limiter  *ratelimit.Limiter
	// wsLimiter limits the keys of a workspace together; nil when no plan
	// has a workspace limit.
	wsLimiter *ratelimit.Limiter
	plans     *records.Plans
	signer    Signer
	webhooks  *outbound.Service
	queue     JobQueue
	metrics   *metrics.Metrics

	// The ingestion services the features built, for a host's console.
	inbound    *ingest.Inbound
	connectors *connector.Service
	bulk       *ingest.Bulk
	importer   *ingest.Importer

	features    []feature
	handler     http.Handler
	openAPIJSON []byte

	mu   sync.Mutex
	jobs *river.Client[*sql.Tx]
}

// New wires a Service from cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("integration: Config.Store is required")
	}
	s := &Service{cfg: cfg, store: cfg.Store, pipeline: cfg.Pipeline, log: cfg.Logger, clock: cfg.Clock,
		maxBody: cfg.MaxBodyBytes, signer: cfg.Signer, queue: cfg.Jobs, metrics: cfg.Metrics}
	if q, ok := cfg.Store.(JobQueue); ok && s.queue == nil {
		s.queue = q
	}
	if q, ok := s.queue.(QueueDepther); ok {
		s.metrics.SetQueueDepth(q.QueueDepth)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.signer == nil {
		s.signer = defaultSigner()
	}
	if cfg.Version == "" {
		s.cfg.Version = "1.0.0"
	}
	var err error
	if s.plans, err = records.NewPlans(cfg.Store, cfg.Plans, cfg.PlanCacheTTL); err != nil {
		return nil, fmt.Errorf("integration: %w", err)
	}
	if s.pipeline == nil {
		if s.pipeline, err = s.defaultPipeline(); err != nil {
			return nil, err
		}
	}
	keys, err := apikey.New(apikey.Config{Store: cfg.Store, Clock: s.clock, CacheTTL: cfg.KeyCacheTTL, Logger: s.log, Plans: s.plans})
	if err != nil {
		return nil, fmt.Errorf("integration: %w", err)
	}
	s.keys = keys
	s.limiter, err = s.newLimiter()
	if err != nil {
		return nil, fmt.Errorf("integration: rate limits: %w", err)
	}
	if s.wsLimiter, err = s.newWorkspaceLimiter(); err != nil {
		return nil, fmt.Errorf("integration: workspace rate limits: %w", err)
	}

	if s.webhooks, err = s.newWebhooks(); err != nil {
		return nil, fmt.Errorf("integration: webhooks: %w", err)
	}

	s.features = s.buildFeatures()
	s.handler = s.buildMux(routeTable(s.features))
	s.openAPIJSON, err = marshalDocument(openAPIDocument(s.features, s.cfg.Version))
	if err != nil {
		return nil, fmt.Errorf("integration: OpenAPI document: %w", err)
	}
	return s, nil
}

// Handler answers the REST API (/api/v1/...) and /healthz. Mount it at the
// root of a host's mux, or under a prefix with http.StripPrefix.
func (s *Service) Handler() http.Handler { return s.handler }

// Pipeline answers the record pipeline the service writes through.
func (s *Service) Pipeline() RecordPipeline { return s.pipeline }

// Inbound answers the inbound webhooks service behind /api/v1/inbound-sources
// and /api/v1/inbound-events, for a console or a host's own pages.
func (s *Service) Inbound() *ingest.Inbound { return s.inbound }

// Connectors answers the pull connectors service behind /api/v1/connectors.
func (s *Service) Connectors() *connector.Service { return s.connectors }

// Bulk answers the bulk jobs service behind /api/v1/bulk, which also runs
// and reports imports; nil when it could not be built (its routes answer
// the error).
func (s *Service) Bulk() *ingest.Bulk { return s.bulk }

// Importer answers the spreadsheet importer behind /api/v1/imports; nil
// when it could not be built (its routes answer the error).
func (s *Service) Importer() *ingest.Importer { return s.importer }

// Keys answers the API key service, for a host that issues keys itself (the
// reference server's first admin key, say).
func (s *Service) Keys() *apikey.Service { return s.keys }

// SetPlan moves a workspace to another plan. Its record cap and its keys'
// rate limit change with this process's next write and request, and within
// Config.PlanCacheTTL on other replicas.
func (s *Service) SetPlan(ctx context.Context, workspace, plan string) error {
	return s.plans.Set(ctx, workspace, plan)
}

// Plans answers the plan lookup the rate limit and the default pipeline's
// record cap share.
func (s *Service) Plans() *records.Plans { return s.plans }

// Start starts working background jobs (webhook deliveries and the like) on
// the store's database, and returns once the job client runs. Without a
// JobQueue, or without any feature that works jobs, Start does nothing,
// which leaves events enqueued for a process that has workers.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs != nil {
		return errors.New("integration: already started")
	}
	workers := river.NewWorkers()
	var periodic []*river.PeriodicJob
	working := false
	for _, f := range s.features {
		if f.jobs == nil {
			continue
		}
		pj, err := f.jobs(workers)
		if err != nil {
			return fmt.Errorf("integration: register %s jobs: %w", f.name, err)
		}
		periodic = append(periodic, pj...)
		working = true
	}
	if !working || s.queue == nil {
		return nil
	}
	queues := s.cfg.Queues
	if len(queues) == 0 {
		queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}}
	}
	rc := &river.Config{
		Workers:      workers,
		Queues:       queues,
		PeriodicJobs: periodic,
		// River reports its routine bookkeeping (job counts every few
		// seconds) at Info; the host's log keeps River's warnings and errors.
		Logger: slog.New(minLevel{Handler: s.log.Handler(), min: slog.LevelWarn}),
	}
	for _, f := range s.features {
		if f.tune != nil {
			f.tune(rc)
		}
	}
	client, err := s.queue.NewJobClient(rc)
	if err != nil {
		return fmt.Errorf("integration: job client: %w", err)
	}
	if s.metrics != nil {
		s.countJobs(client)
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("integration: start jobs: %w", err)
	}
	s.jobs = client
	// Redeliveries and replays, from the API or a host's own pages, enqueue
	// through the running client.
	s.webhooks.SetClient(client)
	return nil
}

// Stop stops working jobs, letting running ones finish until ctx ends, and
// waits for pending last-used writes of API keys. Call it after the HTTP
// server has shut down and before closing the store.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	jobs := s.jobs
	s.jobs = nil
	s.mu.Unlock()
	var err error
	if jobs != nil {
		err = jobs.Stop(ctx)
	}
	s.keys.Flush()
	err = errors.Join(err, s.limiter.Close(ctx))
	if s.wsLimiter != nil {
		err = errors.Join(err, s.wsLimiter.Close(ctx))
	}
	return err
}

// JobClient answers the running River client, or nil before Start (and
// when no feature registered workers).
func (s *Service) JobClient() *river.Client[*sql.Tx] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs
}

// Publish tells crmkit about record changes a host made through its own
// pipeline (a person editing in the host's UI), inside the host's own
// transaction on the store's database: the events are stored and their
// webhook fan-out enqueued in tx, so they exist if and only if tx commits.
// Each event needs Type, Workspace, Object and Record; an id and a time are
// given to events without.
func (s *Service) Publish(ctx context.Context, tx *sql.Tx, events ...*records.Event) error {
	for _, e := range events {
		if e == nil || e.Record == nil || e.Workspace == "" || e.Object == "" {
			return errors.New("integration: Publish: each event needs Workspace, Object and Record")
		}
		switch e.Type {
		case records.EventCreated, records.EventUpdated, records.EventDeleted:
		default:
			return fmt.Errorf("integration: Publish: unknown event type %q", e.Type)
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = s.clock()
		}
	}
	return s.store.PublishTx(ctx, tx, events...)
}

// health answers 200 while the database answers, 503 otherwise.
func (s *Service) health(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "health check failed", slog.String("error", err.Error()))
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ready answers 200 while the database answers and the job client runs,
// 503 otherwise: the readiness probe. /healthz, the liveness probe, asks
// only the database.
func (s *Service) ready(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st := readiness{Status: "ok", Database: "ok", Jobs: "running"}
	code := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check: database", slog.String("error", err.Error()))
		st.Database, st.Status, code = "unavailable", "unavailable", http.StatusServiceUnavailable
	}
	if s.JobClient() == nil {
		st.Jobs, st.Status, code = "stopped", "unavailable", http.StatusServiceUnavailable
	}
	return writeJSON(w, code, st)
}

type readiness struct {
	Status   string `json:"status"`
	Database string `json:"database"`
	Jobs     string `json:"jobs"`
}

// chain wraps a route's handler in its middleware: the access log, then for
// routes with a scope, Authenticate, the rate limit and RequireScope.
func (s *Service) chain(rt route) http.Handler {
	h := s.bare(rt)
	if rt.scope != "" {
		h = s.guard(rt.scope, h)
	}
	return s.accessLog(h)
}

// bare is a route's handler alone, its errors answered as problems. A path
// or query holding a NUL character or bytes that are not UTF-8 is refused
// before the handler runs: no database stores them in text, and every
// handler would otherwise have to refuse them on its own.
func (s *Service) bare(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cleanURL(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := rt.handle(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// cleanURL refuses a request whose decoded path or query values hold a NUL
// character or invalid UTF-8.
func cleanURL(r *http.Request) error {
	bad := func(v string) bool { return strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) }
	if bad(r.URL.Path) {
		return errBadRequest("invalid_parameter", "the path holds a NUL character or bytes that are not UTF-8")
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	for name, vals := range r.URL.Query() {
		if bad(name) {
			return errBadRequest("invalid_parameter", "a query parameter's name holds a NUL character or bytes that are not UTF-8")
		}
		for _, v := range vals {
			if bad(v) {
				return errBadRequest("invalid_parameter", "query parameter "+strconv.Quote(name)+" holds a NUL character or bytes that are not UTF-8")
			}
		}
	}
	return nil
}

// guard puts h behind Authenticate, the key's rate limit, the workspace's
// and RequireScope(scope).
// The rate limit comes before the scope check so that a key hammering a
// route it may not use is limited like any other.
func (s *Service) guard(scope apikey.Scope, h http.Handler) http.Handler {
	h = apikey.RequireScope(scope)(h)
	if s.wsLimiter != nil {
		h = s.wsLimiter.Middleware(h)
	}
	h = s.limiter.Middleware(h)
	h = noteKey(h)
	return apikey.Authenticate(s.keys)(h)
}

func workspaceOf(r *http.Request) string {
	if p, ok := apikey.PrincipalFrom(r.Context()); ok {
		return p.Workspace
	}
	return ""
}

func keyIDOf(r *http.Request) string {
	if p, ok := apikey.PrincipalFrom(r.Context()); ok {
		return p.KeyID
	}
	return ""
}

func defaultSigner() Signer { return webhook.HMACSigner{} }

// defaultPipeline is a records.Pipeline over the store, with the configured
// or default objects and rules, and the service's plans.
func (s *Service) defaultPipeline() (*records.Pipeline, error) {
	objects, rules := s.cfg.Objects, s.cfg.Rules
	if objects == nil {
		objects = records.DefaultObjects()
	}
	if rules == nil {
		rules = []records.Rule{records.ClosedWonRule()}
	}
	p, err := records.NewPipeline(records.Config{Store: s.store, Objects: objects, Rules: rules, Plans: s.plans, Clock: s.clock})
	if err != nil {
		return nil, fmt.Errorf("integration: pipeline: %w", err)
	}
	return p, nil
}

// minLevel drops records below min before they reach Handler.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
