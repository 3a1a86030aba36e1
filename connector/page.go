package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// Writing one page: each upstream record (a document) is decoded, passed
// through the checkpoint, mapped, and written through the pipeline as
// upserts on its targets' external ids; the page's writes and its commit
// (the checkpoint) are one all-or-none batch.

// document is one upstream record of a page on its way to the pipeline.
type document struct {
	index  int
	id     string // the document's identity in the checkpoint
	outs   []mapping.Output
	hashes []string
	// skipped: the checkpoint covers it; unchanged: what it maps to was
	// written by this connector and nobody changed it since.
	skipped, unchanged bool
	failure            *Failure
	// results of its outputs once written, in order.
	results []records.BatchResult
}

// pageJob is how one page is written.
type pageJob struct {
	c      *Connector
	m      *mapping.Mapping
	sync   *Sync
	page   Page
	pageNo int64
	dryRun bool
	// commit stores the page's checkpoint (and, in full mode, the records
	// it saw) in the transaction of its writes; nil for a preview.
	commit func(ctx context.Context, seen []RecordKey) error
}

// pageResult is what a written page did.
type pageResult struct {
	counts   Counts
	docs     []*document
	owned    []Owned
	failures []Failure
	seen     []RecordKey
	// stop is set when the page was not written because the run must stop
	// (the plan cap): nothing of it was committed.
	stop *RunError
}

// writePage writes one page. An error is a failure of the database, or
// the commit's (ErrLeaseLost); a page the run must stop at answers
// pageResult.stop.
func (s *Service) writePage(ctx context.Context, job pageJob) (*pageResult, error) {
	res := &pageResult{}
	field := job.c.incrementalField()
	for i, raw := range job.page.Records {
		d := &document{index: i}
		res.docs = append(res.docs, d)
		doc, err := mapping.Decode(raw)
		if err == nil {
			d.outs, err = job.m.ApplyValue(doc)
		}
		d.id = documentID(d.outs)
		value := ""
		if field != "" {
			value, _, _ = FieldValue(raw, field)
		}
		if !job.sync.Keep(value, d.id) {
			d.skipped = true
			res.counts.Skipped++
			continue
		}
		if err != nil {
			d.failure = mappingFailure(err)
			continue
		}
		for t, o := range d.outs {
			if o.ExternalID == "" {
				d.failure = &Failure{Code: "validation_failed", Target: &t, Object: o.Object,
					Message: fmt.Sprintf("target %d (%s): the external id expression gave no value", t, o.Object),
					Fields:  []FieldFailure{{Field: "external_id", Code: "required", Message: "the external id expression gave no value"}}}
				break
			}
			if job.c.Deletes == DeletesFlag {
				// A record seen again is no longer deleted upstream.
				if d.outs[t].Fields == nil {
					d.outs[t].Fields = records.Fields{}
				}
				d.outs[t].Fields[FlagField] = nil
			}
			d.hashes = append(d.hashes, outputHash(d.outs[t]))
			res.seen = append(res.seen, RecordKey{Object: o.Object, ExternalID: o.ExternalID})
		}
	}
	job.sync.Advance(job.page)

	var keys []RecordKey
	for _, d := range res.docs {
		if !d.skipped && d.failure == nil {
			for _, o := range d.outs {
				keys = append(keys, RecordKey{Object: o.Object, ExternalID: o.ExternalID})
			}
		}
	}
	known := map[RecordKey]Owned{}
	if len(keys) > 0 {
		var err error
		if known, err = s.st.ConnectorRecords(ctx, job.c.Workspace, job.c.ID, keys); err != nil {
			return nil, err
		}
	}
	var pending []*document
	for _, d := range res.docs {
		if d.skipped || d.failure != nil {
			continue
		}
		d.unchanged = true
		for t, o := range d.outs {
			k, ok := known[RecordKey{Object: o.Object, ExternalID: o.ExternalID}]
			if !ok || k.RecordID == "" || k.Hash != d.hashes[t] || k.Version != k.RecordVersion {
				d.unchanged = false
				break
			}
		}
		if d.unchanged {
			res.counts.Unchanged += int64(len(d.outs))
			continue
		}
		pending = append(pending, d)
	}

	for {
		items, itemDoc, err := s.items(ctx, job.c, pending)
		if err != nil {
			return nil, err
		}
		opts := records.BatchOptions{AllOrNone: true, DryRun: job.dryRun}
		if job.commit != nil && !job.dryRun {
			opts.Commit = func(ctx context.Context) error { return job.commit(ctx, res.seen) }
		}
		results, berr := s.pipe.Batch(ctx, items, opts)
		if berr == nil {
			next := 0
			for _, d := range pending {
				if d.failure != nil {
					continue
				}
				d.results = results[next : next+len(d.outs)]
				next += len(d.outs)
			}
			break
		}
		// Find the documents the pipeline refused; write the page again
		// without them. A refusal that is not about one document stops the
		// run with nothing of the page written.
		refused := false
		for j, r := range results {
			if r.Err == nil || errors.Is(r.Err, records.ErrBatchAborted) {
				continue
			}
			d := itemDoc[j]
			if errors.Is(r.Err, records.ErrPlanLimit) {
				res.stop = &RunError{Code: "plan_limit_exceeded",
					Message: "the workspace's plan does not allow more records; the page was not written and the next run starts again before it"}
				return res, nil
			}
			f := writeFailure(r.Err)
			if f == nil {
				continue
			}
			if d.failure == nil {
				d.failure = f
				t := j - firstItem(itemDoc, d)
				d.failure.Target, d.failure.Object = &t, d.outs[t].Object
				refused = true
			}
		}
		if !refused {
			if errors.Is(berr, ErrLeaseLost) || errors.Is(berr, context.Canceled) || errors.Is(berr, context.DeadlineExceeded) {
				return nil, berr
			}
			return nil, fmt.Errorf("connector: writing page %d: %w", job.pageNo, berr)
		}
		kept := pending[:0]
		for _, d := range pending {
			if d.failure == nil {
				kept = append(kept, d)
			}
		}
		pending = kept
	}

	for _, d := range res.docs {
		if d.failure != nil {
			res.counts.Failed++
			f := *d.failure
			f.Page, f.Index = job.pageNo, d.index
			if f.ExternalID == "" {
				f.ExternalID = d.id
			}
			res.failures = append(res.failures, f)
			continue
		}
		for t, r := range d.results {
			switch {
			case r.Created:
				res.counts.Created++
			case len(r.Changes) == 0:
				res.counts.Unchanged++
			default:
				res.counts.Updated++
			}
			if r.Record != nil {
				o := d.outs[t]
				res.owned = append(res.owned, Owned{RecordKey: RecordKey{Object: o.Object, ExternalID: o.ExternalID},
					Hash: d.hashes[t], Version: r.Record.Version, RecordID: r.Record.ID, RecordVersion: r.Record.Version})
			}
		}
	}
	return res, nil
}

func firstItem(itemDoc []*document, d *document) int {
	return slices.Index(itemDoc, d)
}

// items builds the batch of the pending documents: one upsert per output,
// in order, refs to an earlier output of the same document by index and
// refs to other records by their id. A document whose ref names no record
// fails.
func (s *Service) items(ctx context.Context, c *Connector, docs []*document) ([]records.BatchItem, []*document, error) {
	actor := records.Actor{Kind: "connector", ID: c.ID}
	var items []records.BatchItem
	var itemDoc []*document
	for _, d := range docs {
		if d.failure != nil {
			continue
		}
		base := len(items)
		var built []records.BatchItem
		for t, o := range d.outs {
			it := records.BatchItem{Op: records.OpUpsert, Write: records.Write{Workspace: c.Workspace, Object: o.Object,
				ExternalID: o.ExternalID, Source: records.SourceConnector, Actor: actor, Fields: maps.Clone(o.Fields)}}
			if it.Write.Fields == nil {
				it.Write.Fields = records.Fields{}
			}
			for name, ref := range o.Refs {
				if ref.Target >= 0 && ref.Target < t {
					if it.Refs == nil {
						it.Refs = map[string]int{}
					}
					it.Refs[name] = base + ref.Target
					continue
				}
				rec, err := s.lookup(ctx, c.Workspace, ref.Object, ref.ExternalID)
				if errors.Is(err, records.ErrNotFound) {
					msg := fmt.Sprintf("no %s has the external id %q", ref.Object, ref.ExternalID)
					d.failure = &Failure{Code: "validation_failed", Target: &t, Object: o.Object,
						Message: fmt.Sprintf("target %d (%s) %s: %s", t, o.Object, name, msg),
						Fields:  []FieldFailure{{Field: name, Code: "reference", Message: msg}}}
					break
				}
				if err != nil {
					return nil, nil, err
				}
				it.Write.Fields[name] = rec.ID
			}
			if d.failure != nil {
				break
			}
			built = append(built, it)
		}
		if d.failure != nil {
			continue
		}
		items = append(items, built...)
		for range built {
			itemDoc = append(itemDoc, d)
		}
	}
	return items, itemDoc, nil
}

// documentID is a document's identity in the checkpoint: its targets'
// external ids (object:id, joined by a space when there are several).
func documentID(outs []mapping.Output) string {
	if len(outs) == 1 {
		return outs[0].ExternalID
	}
	parts := make([]string, len(outs))
	for i, o := range outs {
		parts[i] = o.Object + ":" + o.ExternalID
	}
	return strings.Join(parts, " ")
}

// outputHash is the hash of what one output writes: its object, external
// id, fields and refs. Two equal hashes mean the pipeline was asked for the
// same write.
func outputHash(o mapping.Output) string {
	b, _ := json.Marshal(struct {
		Object string                 `json:"o"`
		Ext    string                 `json:"e"`
		Fields records.Fields         `json:"f"`
		Refs   map[string]mapping.Ref `json:"r,omitempty"`
	}{o.Object, o.ExternalID, o.Fields, o.Refs})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// mappingFailure is the failure of a document that does not map.
func mappingFailure(err error) *Failure {
	var ae *mapping.ApplyError
	if !errors.As(err, &ae) {
		return &Failure{Code: "invalid_document", Message: err.Error()}
	}
	f := &Failure{Code: "mapping_failed", Message: err.Error()}
	for i, p := range ae.Problems {
		if i == 0 {
			t := p.Target
			f.Target, f.Object = &t, p.Object
		}
		f.Fields = append(f.Fields, FieldFailure{Field: p.Field, Code: p.Code, Message: p.String()})
	}
	return f
}

// writeFailure is the failure of a document the pipeline refused, or nil
// when err is not about the document.
func writeFailure(err error) *Failure {
	f := &Failure{Message: err.Error()}
	var ve *records.ValidationError
	switch {
	case errors.As(err, &ve):
		f.Code = "validation_failed"
		for _, fe := range ve.Fields {
			f.Fields = append(f.Fields, FieldFailure{Field: fe.Field, Code: fe.Code, Message: fe.Message})
		}
	case errors.Is(err, records.ErrValidation):
		f.Code = "validation_failed"
	case errors.Is(err, records.ErrDuplicate):
		f.Code = "duplicate"
	case errors.Is(err, records.ErrNotFound):
		f.Code = "not_found"
	default:
		return nil
	}
	return f
}
