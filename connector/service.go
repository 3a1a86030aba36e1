package connector

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// Defaults of Config.
const (
	DefaultQueue   = "crmkit_connectors"
	DefaultWorkers = 4
	DefaultLease   = 30 * time.Second
	// SweepEvery is how often the leader looks for runs whose worker died.
	SweepEvery = 5 * time.Second
	// ReconcileEvery is how often a service brings its schedules in line
	// with connectors changed on other replicas.
	ReconcileEvery = 15 * time.Second
)

// Pipeline is the part of the record pipeline connectors write through.
// records.Pipeline satisfies it.
type Pipeline interface {
	// Batch is RecordPipeline.Batch: every item takes the steps of a single
	// write; opts.Commit runs in the transaction of the batch's writes.
	Batch(ctx context.Context, items []records.BatchItem, opts records.BatchOptions) ([]records.BatchResult, error)
	// List answers a page of records (for finding a ref's record by
	// external id when Config.Lookup is not set).
	List(ctx context.Context, q records.ListQuery) ([]*records.Record, string, error)
}

// Config configures a Service.
type Config struct {
	// Store, Pipeline and Objects (the schema mappings compile against) are
	// required.
	Store    Store
	Pipeline Pipeline
	Objects  mapping.Objects
	// Registry holds the pollers by kind. Default: KindHTTP with HTTP's
	// options. A host registering its own kinds passes its Registry, with
	// KindHTTP in it when it wants it.
	Registry *Registry
	// HTTP are the options of the HTTP JSON poller (AllowPrivate, Backoff,
	// OptInHint…) when Registry is nil; its Source is ignored.
	HTTP HTTPConfig
	// Lookup answers the record of object with an external id, or
	// records.ErrNotFound, for ref() to records outside the document.
	// Default: Pipeline.List filtered on the object's external id field.
	Lookup func(ctx context.Context, workspace, object, externalID string) (*records.Record, error)
	// Lease is how long a run holds its connector without renewing it; a
	// run whose process died is resumed by another worker after it.
	// Default 30 s.
	Lease time.Duration
	// Queue is the River queue of runs, worked by Workers workers.
	Queue   string
	Workers int
	// Client answers the running job client, nil before it starts; runs are
	// queued and schedules changed through it.
	Client func() *river.Client[*sql.Tx]
	Clock  func() time.Time
	Logger *slog.Logger
	// Observe, when set, is told of every finished run: its status and its
	// counts (metrics).
	Observe func(status string, rows map[string]int64)
}

// Service runs pull connectors: their definitions, runs and schedules.
type Service struct {
	cfg      Config
	st       Store
	pipe     Pipeline
	objects  mapping.Objects
	registry *Registry
	lease    time.Duration
	log      *slog.Logger
	lookup   func(ctx context.Context, workspace, object, externalID string) (*records.Record, error)

	mu        sync.Mutex
	schedules map[string]string // periodic job id → schedule registered
}

// New checks cfg and answers a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Pipeline == nil || cfg.Objects == nil {
		return nil, errors.New("connector: Config needs Store, Pipeline and Objects")
	}
	s := &Service{cfg: cfg, st: cfg.Store, pipe: cfg.Pipeline, objects: cfg.Objects, registry: cfg.Registry,
		lease: cfg.Lease, log: cfg.Logger, lookup: cfg.Lookup, schedules: map[string]string{}}
	if s.registry == nil {
		s.registry = &Registry{}
		if err := s.registry.Register(KindHTTP, HTTPFactory(cfg.HTTP)); err != nil {
			return nil, err
		}
	}
	if s.lease <= 0 {
		s.lease = DefaultLease
	}
	if s.cfg.Queue == "" {
		s.cfg.Queue = DefaultQueue
	}
	if s.cfg.Workers <= 0 {
		s.cfg.Workers = DefaultWorkers
	}
	if s.cfg.Clock == nil {
		s.cfg.Clock = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.lookup == nil {
		s.lookup = s.listLookup
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Clock().UTC().Truncate(time.Microsecond) }

func (s *Service) listLookup(ctx context.Context, workspace, object, externalID string) (*records.Record, error) {
	obj, ok := s.objects.Object(object)
	if !ok || obj.ExternalID == "" {
		return nil, fmt.Errorf("connector: %s has no external id: %w", object, records.ErrNotFound)
	}
	recs, _, err := s.pipe.List(ctx, records.ListQuery{Workspace: workspace, Object: object,
		Filter: map[string]string{obj.ExternalID: externalID}, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("connector: %s %s: %w", object, externalID, records.ErrNotFound)
	}
	return recs[0], nil
}

// check validates a connector's definition, its kind's settings included.
// For KindHTTP the URL's host is resolved and refused when it is not a
// public address (unless the HTTP options allow private ones).
func (s *Service) check(ctx context.Context, c *Connector) error {
	_, verr := c.validate(s.objects)
	var fe []records.FieldError
	var ve *records.ValidationError
	if errors.As(verr, &ve) {
		fe = append(fe, ve.Fields...)
	}
	def, err := c.definition()
	if err != nil {
		return err
	}
	if c.Kind == KindHTTP {
		var src Source
		dec := json.NewDecoder(bytesReader(def))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&src); err != nil {
			fe = append(fe, records.FieldError{Field: "body", Code: "invalid", Message: "the HTTP source's members: " + err.Error()})
		} else if err := src.Validate(); err != nil {
			if errors.As(err, &ve) {
				fe = append(fe, ve.Fields...)
			}
		} else {
			cfg := s.cfg.HTTP
			cfg.Source = src
			if err := cfg.Check(ctx); err != nil {
				code := "unreachable"
				if errors.Is(err, ErrBlockedAddress) {
					code = "blocked_address"
				}
				fe = append(fe, records.FieldError{Field: "url", Code: code, Message: err.Error()})
			}
		}
	} else if _, err := s.registry.Poller(c.Kind, def); err != nil {
		code := "invalid"
		if errors.Is(err, ErrUnknownKind) {
			code = "one_of"
		}
		fe = append(fe, records.FieldError{Field: "kind", Code: code, Message: err.Error()})
	}
	if len(fe) > 0 {
		return &records.ValidationError{Fields: fe}
	}
	return nil
}

// Objects answers the objects connectors can write, when the configured
// Objects lists them as records.Pipeline and records.Validator do; nil
// otherwise.
func (s *Service) Objects() []*records.Object {
	if ol, ok := s.cfg.Objects.(interface{ Objects() []*records.Object }); ok {
		return ol.Objects()
	}
	return nil
}

// Create stores a new connector from its definition, the JSON document of
// DESIGN section 8.3.
func (s *Service) Create(ctx context.Context, workspace string, body []byte) (*Connector, error) {
	c := &Connector{Enabled: true}
	if err := c.apply(body); err != nil {
		return nil, err
	}
	c.defaults()
	if err := s.check(ctx, c); err != nil {
		return nil, err
	}
	now := s.now()
	c.ID, c.Workspace, c.CreatedAt, c.UpdatedAt = records.NewID("con"), workspace, now, now
	c.State = NewSync(c.start()).String()
	if err := s.st.CreateConnector(ctx, c); err != nil {
		return nil, err
	}
	s.scheduleChanged(ctx)
	return c, nil
}

// Get answers a connector of the workspace.
func (s *Service) Get(ctx context.Context, workspace, id string) (*Connector, error) {
	return s.st.GetConnector(ctx, workspace, id)
}

// List answers the workspace's connectors after the id after.
func (s *Service) List(ctx context.Context, workspace, after string, limit int) ([]*Connector, error) {
	return s.st.ListConnectors(ctx, workspace, after, limit)
}

// Update changes the members body gives; the others stay.
func (s *Service) Update(ctx context.Context, workspace, id string, body []byte) (*Connector, error) {
	c, err := s.st.GetConnector(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	if err := c.apply(body); err != nil {
		return nil, err
	}
	if err := s.check(ctx, c); err != nil {
		return nil, err
	}
	c.UpdatedAt = s.now()
	if err := s.st.UpdateConnector(ctx, c); err != nil {
		return nil, err
	}
	s.scheduleChanged(ctx)
	return c, nil
}

// Delete removes a connector, its run log and its knowledge of the records
// it wrote; the records stay. A running run stops at its next page.
func (s *Service) Delete(ctx context.Context, workspace, id string) error {
	if err := s.st.DeleteConnector(ctx, workspace, id); err != nil {
		return err
	}
	s.scheduleChanged(ctx)
	return nil
}

// Reset moves the connector's checkpoint back to incremental.start; the
// next run reads everything since and passes each record through the
// pipeline again. ErrRunActive while a run is active.
func (s *Service) Reset(ctx context.Context, workspace, id string) (*Connector, error) {
	c, err := s.st.GetConnector(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	c.State = NewSync(c.start()).String()
	if err := s.st.ResetConnector(ctx, workspace, id, c.State); err != nil {
		return nil, err
	}
	return c, nil
}

// Run queues a run of the connector now; ErrRunActive while one is queued
// or running. It needs the job client (Start).
func (s *Service) Run(ctx context.Context, workspace, id string) (*Run, error) {
	c, err := s.st.GetConnector(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	return s.begin(ctx, c, TriggerManual)
}

// ErrNotStarted is what Run answers before Start gave the service its job
// client.
var ErrNotStarted = errors.New("connector: background jobs are not running")

func (s *Service) begin(ctx context.Context, c *Connector, trigger string) (*Run, error) {
	if s.jobClient() == nil {
		return nil, ErrNotStarted
	}
	now := s.now()
	run := &Run{ID: records.NewID("run"), Workspace: c.Workspace, ConnectorID: c.ID, Trigger: trigger,
		Status: RunQueued, CreatedAt: now}
	job := river.InsertManyParams{Args: RunArgs{ConnectorID: c.ID, RunID: run.ID},
		InsertOpts: &river.InsertOpts{Queue: s.cfg.Queue, MaxAttempts: 1}}
	if err := s.st.BeginConnectorRun(ctx, run, now.Add(s.lease), job); err != nil {
		return nil, err
	}
	return run, nil
}

// GetRun answers a run of the workspace.
func (s *Service) GetRun(ctx context.Context, workspace, id string) (*Run, error) {
	return s.st.GetConnectorRun(ctx, workspace, id)
}

// Runs answers runs newest first: of one connector (which must exist) when
// connectorID is not "".
func (s *Service) Runs(ctx context.Context, workspace, connectorID, before string, limit int) ([]*Run, error) {
	if connectorID != "" {
		if _, err := s.st.GetConnector(ctx, workspace, connectorID); err != nil {
			return nil, err
		}
	}
	return s.st.ListConnectorRuns(ctx, workspace, connectorID, before, limit)
}

// Preview is what the first page would become.
type Preview struct {
	// Records is one entry per upstream record of the page.
	Records []PreviewRecord `json:"records"`
	// More says the source has pages after this one.
	More   bool   `json:"more"`
	Counts Counts `json:"counts"`
	// Error is why a run would stop at this page (the plan's record cap).
	Error *RunError `json:"error,omitempty"`
}

// PreviewRecord is one upstream record and what a run would do with it.
type PreviewRecord struct {
	Index int             `json:"index"`
	Raw   json.RawMessage `json:"raw"`
	// Status is written (the pipeline accepted it), unchanged (nothing
	// to write), skipped (the checkpoint covers it) or failed.
	Status  string          `json:"status"`
	Targets []PreviewTarget `json:"targets"`
	Error   *Failure        `json:"error,omitempty"`
}

// PreviewTarget is one record the upstream record maps to.
type PreviewTarget struct {
	Object     string         `json:"object"`
	ExternalID string         `json:"external_id"`
	Action     string         `json:"action,omitempty"`
	Fields     records.Fields `json:"fields"`
}

// Preview fetches the first page the next run would fetch, with the real
// poller, and writes it with the real code as a dry run of the pipeline
// (validation, rules and plan limits run, nothing is kept), answering what
// each record would become. Nothing is written, the checkpoint included.
func (s *Service) Preview(ctx context.Context, workspace, id string) (*Preview, error) {
	c, err := s.st.GetConnector(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	p, m, err := s.prepare(c)
	if err != nil {
		return nil, err
	}
	sy, err := s.startSync(c, false)
	if err != nil {
		return nil, err
	}
	page, err := p.Poll(ctx, sy.Request())
	if err != nil {
		return nil, fetchError(err)
	}
	res, err := s.writePage(ctx, pageJob{c: c, m: m, sync: sy, page: page, pageNo: 1, dryRun: true})
	if err != nil {
		return nil, err
	}
	out := &Preview{Records: []PreviewRecord{}, More: page.More, Counts: res.counts, Error: res.stop}
	for i, d := range res.docs {
		pr := PreviewRecord{Index: d.index, Raw: page.Records[i], Targets: []PreviewTarget{}}
		switch {
		case d.skipped:
			pr.Status = "skipped"
		case d.failure != nil:
			pr.Status, pr.Error = "failed", d.failure
		case d.unchanged:
			pr.Status = "unchanged"
		case res.stop != nil:
			pr.Status, pr.Error = "failed", &Failure{Code: res.stop.Code, Message: res.stop.Message}
		default:
			pr.Status = "written"
		}
		for t, o := range d.outs {
			pt := PreviewTarget{Object: o.Object, ExternalID: o.ExternalID, Fields: o.Fields}
			if t < len(d.results) && d.results[t].Record != nil {
				r := d.results[t]
				pt.Fields = r.Record.Fields
				switch {
				case r.Created:
					pt.Action = "created"
				case len(r.Changes) == 0:
					pt.Action = "unchanged"
				default:
					pt.Action = "updated"
				}
			} else if d.unchanged {
				pt.Action = "unchanged"
			}
			if pt.Fields == nil {
				pt.Fields = records.Fields{}
			}
			pr.Targets = append(pr.Targets, pt)
		}
		out.Records = append(out.Records, pr)
	}
	return out, nil
}
