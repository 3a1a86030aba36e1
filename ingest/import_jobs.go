package ingest

import (
	"context"
	"io"

	"github.com/smartlite/crmkit/records"
)

// The reads an admin screen needs besides Spool, Preview and Start: the
// objects a file can be imported into, and the jobs imports started, read
// through the Bulk they run on.

// objectLister is a pipeline that lists its objects, as records.Pipeline
// does.
type objectLister interface {
	Objects() []*records.Object
}

// Objects answers the objects a file can be imported into, ordered by
// name; nil when the pipeline does not list them.
func (im *Importer) Objects() []*records.Object {
	if ol, ok := im.b.p.(objectLister); ok {
		return ol.Objects()
	}
	return nil
}

// Job answers one bulk job of the workspace; another workspace's is
// records.ErrNotFound.
func (im *Importer) Job(ctx context.Context, workspace, id string) (*Job, error) {
	return im.b.Get(ctx, workspace, id)
}

// importsScan is how many bulk jobs Imports reads at a time while it looks
// for imports among them.
const importsScan = 200

// Imports answers the workspace's import jobs (those with an ImportSpec)
// with an id after the given one ("" for the first), in id order, at most
// limit. Other bulk jobs are skipped.
func (im *Importer) Imports(ctx context.Context, workspace, after string, limit int) ([]*Job, error) {
	var out []*Job
	for len(out) < limit {
		page, err := im.b.List(ctx, workspace, after, importsScan)
		if err != nil {
			return nil, err
		}
		for _, j := range page {
			if j.Import != nil && len(out) < limit {
				out = append(out, j)
			}
		}
		if len(page) < importsScan {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}

// Results answers one page of a job's row results (see Bulk.Results).
func (im *Importer) Results(ctx context.Context, workspace, id, status string, afterRow int64, limit int) ([]RowResult, error) {
	return im.b.Results(ctx, workspace, id, status, afterRow, limit)
}

// WriteResultsCSV writes a job's results of status as CSV, the file's own
// columns first (see Bulk.WriteResultsCSV).
func (im *Importer) WriteResultsCSV(ctx context.Context, w io.Writer, j *Job, status string) error {
	return im.b.WriteResultsCSV(ctx, w, j, status)
}

// Undo queues a job that reverses a completed import (see Bulk.Undo).
func (im *Importer) Undo(ctx context.Context, workspace, id string, actor records.Actor) (*Job, error) {
	return im.b.Undo(ctx, workspace, id, actor)
}
