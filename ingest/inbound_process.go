package ingest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
)

// Processing: an event's job maps its document and writes its targets,
// recording the outcome on the event in the same transaction.

const (
	// inboundJobTimeout bounds one processing run; a run still marked
	// running well after it can only belong to a process that died.
	inboundJobTimeout = 10 * time.Second
	// InboundOrphanSweep is how often jobs left running by a dead process
	// are queued again.
	InboundOrphanSweep = 5 * time.Second
	inboundOrphanAfter = inboundJobTimeout + 5*time.Second
	inboundPruneEvery  = time.Hour
)

// Register adds the processing, orphan sweep and prune workers.
func (in *Inbound) Register(workers *river.Workers) error {
	if err := river.AddWorkerSafely[InboundArgs](workers, &inboundWorker{in: in}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely[InboundOrphanArgs](workers, &inboundOrphanWorker{in: in}); err != nil {
		return err
	}
	return river.AddWorkerSafely[InboundPruneArgs](workers, &inboundPruneWorker{in: in})
}

// PeriodicJobs answers the orphan sweep and the retention prune, which
// River runs on its leader only.
func (in *Inbound) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(InboundOrphanSweep),
			func() (river.JobArgs, *river.InsertOpts) {
				return InboundOrphanArgs{}, &river.InsertOpts{Queue: in.queue, MaxAttempts: 1}
			},
			&river.PeriodicJobOpts{ID: "crmkit_inbound_orphans", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(inboundPruneEvery),
			func() (river.JobArgs, *river.InsertOpts) {
				return InboundPruneArgs{}, &river.InsertOpts{Queue: in.queue}
			},
			&river.PeriodicJobOpts{ID: "crmkit_inbound_prune", RunOnStart: true}),
	}
}

// RiverConfig adds the processing queue to cfg, unless cfg has it. New
// jobs wake the queue (the store announces its commits to its job
// clients); the short poll is the fallback for a lost wake-up.
func (in *Inbound) RiverConfig(cfg *river.Config) {
	if cfg.Queues == nil {
		cfg.Queues = map[string]river.QueueConfig{}
	}
	if _, ok := cfg.Queues[in.queue]; ok {
		return
	}
	cooldown := cfg.FetchCooldown
	if cooldown <= 0 {
		cooldown = 2 * time.Millisecond
	}
	cfg.Queues[in.queue] = river.QueueConfig{MaxWorkers: in.workers, FetchCooldown: cooldown,
		FetchPollInterval: max(200*time.Millisecond, cooldown)}
}

type inboundWorker struct {
	river.WorkerDefaults[InboundArgs]
	in *Inbound
}

func (w *inboundWorker) Timeout(*river.Job[InboundArgs]) time.Duration { return inboundJobTimeout }

func (w *inboundWorker) Work(ctx context.Context, job *river.Job[InboundArgs]) error {
	return w.in.process(ctx, job.Args.EventID, job.Attempt >= job.MaxAttempts)
}

// Process processes a received event now, in the caller's goroutine, as
// its job would; an event not waiting to be processed is left alone. For
// hosts and tests that run no job client.
func (in *Inbound) Process(ctx context.Context, eventID string) error {
	return in.process(ctx, eventID, false)
}

// process maps and writes one event. The event is locked for the whole
// transaction and processed only while it is received, so a job run twice
// (an orphan queued again, a retry racing its original) writes once. An
// error of the database is returned, rolling everything back for River to
// try again; on the last attempt it fails the event instead.
func (in *Inbound) process(ctx context.Context, id string, last bool) error {
	var status string
	err := in.st.ProcessInboundTx(ctx, func(ctx context.Context) error {
		ev, err := in.st.LockInboundEvent(ctx, id)
		if errors.Is(err, records.ErrNotFound) {
			return nil // deleted with its source
		}
		if err != nil {
			return err
		}
		if ev.Status != StatusReceived {
			return nil
		}
		ev.Attempts++
		written, failure, err := in.processEvent(ctx, ev)
		if err != nil {
			if !last {
				return err
			}
			in.log.LogAttrs(ctx, slog.LevelError, "inbound event failed after its last attempt",
				slog.String("event_id", ev.ID), slog.String("error", err.Error()))
			failure = &InboundError{Code: "internal", Message: "the event could not be processed; retry it"}
		}
		now := in.now()
		ev.ProcessedAt = &now
		if failure != nil {
			ev.Status, ev.Error, ev.Written = StatusFailed, failure, nil
		} else {
			ev.Status, ev.Error, ev.Written = StatusProcessed, nil, written
		}
		status = ev.Status
		return in.st.FinishInboundEvent(ctx, ev)
	})
	if err == nil && status != "" {
		in.observe(status)
	}
	return err
}

// processEvent maps ev's document and writes it. A document the mapping or
// the pipeline refuses answers a failure; err is for the database.
func (in *Inbound) processEvent(ctx context.Context, ev *InboundEvent) ([]WrittenRecord, *InboundError, error) {
	src, err := in.st.GetInboundSource(ctx, ev.Workspace, ev.SourceID)
	if errors.Is(err, records.ErrNotFound) {
		return nil, &InboundError{Code: "source_deleted", Message: "the source no longer exists"}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	m, err := in.mappingOf(src)
	if err != nil {
		return nil, &InboundError{Code: "invalid_mapping", Message: err.Error(), Fields: mappingErrors(err)}, nil
	}
	plan, failure := planDocument(m, ev.Body, ev.Headers)
	if failure != nil {
		return nil, failure, nil
	}
	var written []WrittenRecord
	// The writes run in a savepoint: a document the pipeline refuses
	// leaves nothing behind (its marks of applied times included), and the
	// failure is still recorded on the event.
	err = in.st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
		var err error
		written, _, failure, err = in.write(ctx, ev.Workspace, src, plan, false)
		if err == nil && failure != nil {
			return failure
		}
		return err
	})
	if failure != nil {
		return nil, failure, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return written, nil, nil
}

// documentPlan is a document mapped: its outputs, and the time it carries.
type documentPlan struct {
	outs    []mapping.Output
	upsert  []bool // per output: its target has an external id expression
	docTime time.Time
}

// planDocument decodes and maps a document. It does no I/O.
func planDocument(m *mapping.Mapping, body []byte, header http.Header) (*documentPlan, *InboundError) {
	doc, err := mapping.Decode(body)
	if err != nil {
		return nil, &InboundError{Code: "invalid_document", Message: err.Error()}
	}
	outs, err := m.ApplyValue(doc)
	if err != nil {
		var ae *mapping.ApplyError
		if !errors.As(err, &ae) {
			return nil, &InboundError{Code: "invalid_document", Message: err.Error()}
		}
		f := &InboundError{Code: "mapping_failed", Message: err.Error()}
		for i, p := range ae.Problems {
			if i == 0 {
				f.Target, f.Object = ptr(p.Target), p.Object
			}
			f.Fields = append(f.Fields, records.FieldError{Field: p.Field, Code: p.Code, Message: p.String()})
		}
		return nil, f
	}
	p := &documentPlan{outs: outs, upsert: make([]bool, len(outs)), docTime: documentTime(doc, header)}
	spec := m.Spec()
	for i, o := range outs {
		p.upsert[i] = o.Target < len(spec.Targets) && spec.Targets[o.Target].ExternalID != ""
		if p.upsert[i] && o.ExternalID == "" {
			return nil, &InboundError{Code: "validation_failed", Target: ptr(i), Object: o.Object,
				Message: fmt.Sprintf("target %d (%s): the external id is empty or missing in the document", i, o.Object),
				Fields:  []records.FieldError{{Field: "external_id", Code: "required", Message: "the external id expression gave no value"}}}
		}
	}
	return p, nil
}

func ptr[T any](v T) *T { return &v }

// documentTime is the time a document describes its subject at: its
// top-level updated_at, else Shopify's X-Shopify-Triggered-At; zero when
// it has neither.
func documentTime(doc any, header http.Header) time.Time {
	if m, ok := doc.(map[string]any); ok {
		if s, ok := m["updated_at"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t
			}
		}
	}
	if s := header.Get(webhook.HeaderShopifyTriggeredAt); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// write writes a planned document as one all-or-none batch (a dry run
// when dryRun), in the transaction in ctx. It answers what each target did
// and the record it wrote (nil for a stale one).
func (in *Inbound) write(ctx context.Context, workspace string, src *InboundSource, p *documentPlan, dryRun bool) ([]WrittenRecord, []*records.Record, *InboundError, error) {
	actor := records.Actor{Kind: "inbound_source", ID: src.ID}
	n := len(p.outs)
	written := make([]WrittenRecord, n)
	recs := make([]*records.Record, n)
	before := make([]*records.Record, n)
	itemOf := make([]int, n)
	var items []records.BatchItem
	for i, o := range p.outs {
		itemOf[i] = -1
		written[i] = WrittenRecord{Object: o.Object, ExternalID: o.ExternalID}
		stale := false
		if p.upsert[i] {
			if !p.docTime.IsZero() {
				fresh, err := in.st.MarkInboundApplied(ctx, workspace, o.Object, o.ExternalID, p.docTime)
				if err != nil {
					return nil, nil, nil, err
				}
				stale = !fresh
			}
			rec, err := in.lookup(ctx, workspace, o.Object, o.ExternalID)
			switch {
			case err == nil:
				before[i] = rec
				written[i].ID = rec.ID
			case !errors.Is(err, records.ErrNotFound):
				return nil, nil, nil, err
			}
		}
		if stale {
			written[i].Action = ActionStale
			continue
		}
		item := records.BatchItem{Op: records.OpInsert, Write: records.Write{Workspace: workspace, Object: o.Object,
			Source: records.SourceInbound, Actor: actor, Fields: maps.Clone(o.Fields)}}
		if item.Write.Fields == nil {
			item.Write.Fields = records.Fields{}
		}
		if p.upsert[i] {
			item.Op, item.Write.ExternalID = records.OpUpsert, o.ExternalID
		}
		for name, ref := range o.Refs {
			if ref.Target >= 0 && itemOf[ref.Target] >= 0 {
				if item.Refs == nil {
					item.Refs = map[string]int{}
				}
				item.Refs[name] = itemOf[ref.Target]
				continue
			}
			id := ""
			if ref.Target >= 0 {
				id = written[ref.Target].ID // a stale target's existing record
			}
			if id == "" {
				rec, err := in.lookup(ctx, workspace, ref.Object, ref.ExternalID)
				if errors.Is(err, records.ErrNotFound) {
					return nil, nil, &InboundError{Code: "validation_failed", Target: ptr(i), Object: o.Object,
						Message: fmt.Sprintf("target %d (%s) %s: no %s has the external id %q", i, o.Object, name, ref.Object, ref.ExternalID),
						Fields: []records.FieldError{{Field: name, Code: "reference",
							Message: fmt.Sprintf("no %s has the external id %q", ref.Object, ref.ExternalID)}}}, nil
				}
				if err != nil {
					return nil, nil, nil, err
				}
				id = rec.ID
			}
			item.Write.Fields[name] = id
		}
		itemOf[i] = len(items)
		items = append(items, item)
	}
	if len(items) == 0 {
		return written, recs, nil, nil
	}
	results, err := in.pipe.Batch(ctx, items, records.BatchOptions{AllOrNone: true, DryRun: dryRun})
	if err != nil {
		for i := range p.outs {
			j := itemOf[i]
			if j < 0 || j >= len(results) || results[j].Err == nil || errors.Is(results[j].Err, records.ErrBatchAborted) {
				continue
			}
			if f := writeFailure(results[j].Err, i, p.outs[i].Object); f != nil {
				return nil, nil, f, nil
			}
		}
		return nil, nil, nil, err
	}
	for i := range p.outs {
		j := itemOf[i]
		if j < 0 {
			continue
		}
		rec := results[j].Record
		recs[i] = rec
		written[i].ID = rec.ID
		switch {
		case results[j].Created:
			written[i].Action = ActionCreated
		case before[i] != nil && before[i].Version == rec.Version:
			written[i].Action = ActionUnchanged
		default:
			written[i].Action = ActionUpdated
		}
	}
	return written, recs, nil, nil
}

// writeFailure is the failure of a target the pipeline refused, or nil
// when err is not about the document (the database failed).
func writeFailure(err error, target int, object string) *InboundError {
	f := &InboundError{Target: ptr(target), Object: object, Message: err.Error()}
	var ve *records.ValidationError
	switch {
	case errors.As(err, &ve):
		f.Code, f.Fields = "validation_failed", ve.Fields
	case errors.Is(err, records.ErrValidation):
		f.Code = "validation_failed"
	case errors.Is(err, records.ErrPlanLimit):
		f.Code, f.Message = "plan_limit_exceeded", "the workspace's plan does not allow more records"
	case errors.Is(err, records.ErrDuplicate):
		f.Code = "duplicate"
	case errors.Is(err, records.ErrConflict):
		f.Code = "conflict"
	case errors.Is(err, records.ErrNotFound):
		f.Code = "not_found"
	default:
		return nil
	}
	return f
}

// InboundOrphanArgs is the periodic sweep of processing jobs orphaned by a
// process that died.
type InboundOrphanArgs struct{}

// Kind is the job kind of InboundOrphanArgs.
func (InboundOrphanArgs) Kind() string { return "crmkit_inbound_orphans" }

type inboundOrphanWorker struct {
	river.WorkerDefaults[InboundOrphanArgs]
	in *Inbound
}

// Work queues a fresh job for every processing job left running longer
// than a live one runs, then cancels the orphan. River's rescuer would do
// it too, but only after RescueStuckJobsAfter, which hosts keep long. A
// crash between the two steps leaves two jobs for one event, which the
// event's lock and status make harmless.
func (w *inboundOrphanWorker) Work(ctx context.Context, _ *river.Job[InboundOrphanArgs]) error {
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(InboundArgs{}.Kind()).
		States(rivertype.JobStateRunning).First(1000))
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-inboundOrphanAfter)
	for _, job := range res.Jobs {
		if job.AttemptedAt == nil || job.AttemptedAt.After(cutoff) {
			continue
		}
		var args InboundArgs
		if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
			return err
		}
		if _, err := client.InsertMany(ctx, []river.InsertManyParams{w.in.job(&InboundEvent{ID: args.EventID, Workspace: args.Workspace})}); err != nil {
			return err
		}
		if _, err := client.JobCancel(ctx, job.ID); err != nil {
			return err
		}
		w.in.log.LogAttrs(ctx, slog.LevelInfo, "inbound job orphaned by a stopped process queued again",
			slog.Int64("job_id", job.ID), slog.String("event_id", args.EventID))
	}
	return nil
}

// InboundPruneArgs is the periodic job that applies the log's retention.
type InboundPruneArgs struct{}

// Kind is the job kind of InboundPruneArgs.
func (InboundPruneArgs) Kind() string { return "crmkit_inbound_prune" }

type inboundPruneWorker struct {
	river.WorkerDefaults[InboundPruneArgs]
	in *Inbound
}

func (w *inboundPruneWorker) Work(ctx context.Context, _ *river.Job[InboundPruneArgs]) error {
	_, err := w.in.st.PruneInboundEvents(ctx, w.in.clock().Add(-w.in.retention))
	return err
}

// InboundPreview is what a sample document would become.
type InboundPreview struct {
	// Valid is true when every target would be written.
	Valid   bool            `json:"valid"`
	Records []PreviewRecord `json:"records"`
	Error   *InboundError   `json:"error,omitempty"`
}

// PreviewRecord is the record one target would write.
type PreviewRecord struct {
	Target     int    `json:"target"`
	Object     string `json:"object"`
	ExternalID string `json:"external_id,omitempty"`
	// Action is what the write would do: created, updated, unchanged or
	// stale.
	Action string `json:"action,omitempty"`
	// Fields are the record's fields after the write (workflow rules
	// applied) when the document is valid, else the mapped fields.
	Fields records.Fields `json:"fields"`
	// Refs are the fields the mapping fills with ref(), by what they refer
	// to.
	Refs map[string]mapping.Ref `json:"refs,omitempty"`
}

// errPreview rolls back a preview's transaction.
var errPreview = errors.New("ingest: preview")

// Preview maps a sample document with a source's mapping and runs the
// pipeline on it as a dry run: validation, workflow rules and plan limits
// all apply, and nothing is written. The document needs no signature.
func (in *Inbound) Preview(ctx context.Context, workspace, id string, body []byte) (*InboundPreview, error) {
	src, err := in.Source(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	m, err := in.mappingOf(src)
	if err != nil {
		return nil, err
	}
	return in.preview(ctx, workspace, src, m, body)
}

// PreviewMapping is Preview with a mapping that is not saved (its JSON
// form, as SourceInput.Mapping takes it) in place of the source's own, so
// that an editor shows what a change would do before it is saved. A
// mapping that does not compile is a *records.ValidationError naming its
// problems as UpdateSource's is. Nothing is written either way.
func (in *Inbound) PreviewMapping(ctx context.Context, workspace, id string, spec json.RawMessage, body []byte) (*InboundPreview, error) {
	src, err := in.Source(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	parsed, err := mapping.ParseSpec(spec)
	if err == nil {
		var m *mapping.Mapping
		if m, err = mapping.Compile(parsed, in.objects); err == nil {
			return in.preview(ctx, workspace, src, m, body)
		}
	}
	return nil, &records.ValidationError{Fields: mappingErrors(err)}
}

// preview maps body with m and dry-runs the records it makes for src.
func (in *Inbound) preview(ctx context.Context, workspace string, src *InboundSource, m *mapping.Mapping, body []byte) (*InboundPreview, error) {
	out := &InboundPreview{Records: []PreviewRecord{}}
	if doc, derr := mapping.Decode(body); derr == nil {
		outs, _ := m.ApplyValue(doc)
		for _, o := range outs {
			out.Records = append(out.Records, PreviewRecord{Target: o.Target, Object: o.Object, ExternalID: o.ExternalID,
				Fields: o.Fields, Refs: o.Refs})
		}
	}
	plan, failure := planDocument(m, body, http.Header{})
	if failure != nil {
		out.Error = failure
		return out, nil
	}
	var written []WrittenRecord
	var recs []*records.Record
	err := in.st.ProcessInboundTx(ctx, func(ctx context.Context) error {
		var err error
		written, recs, failure, err = in.write(ctx, workspace, src, plan, true)
		if err != nil {
			return err
		}
		return errPreview
	})
	if err != nil && !errors.Is(err, errPreview) {
		return nil, err
	}
	if failure != nil {
		out.Error = failure
		return out, nil
	}
	out.Valid = true
	for i := range out.Records {
		if i < len(written) {
			out.Records[i].Action = written[i].Action
		}
		if i < len(recs) && recs[i] != nil {
			out.Records[i].Fields = recs[i].Fields
		}
	}
	return out, nil
}
