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

// Imports answers the workspace's import jobs (bulk jobs an import
// started) with an id before the given one ("" for the newest), newest
// first, at most limit.
func (im *Importer) Imports(ctx context.Context, workspace, before string, limit int) ([]*Job, error) {
	return im.b.st.ListImportJobs(ctx, workspace, before, limit)
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

// Actions answers how many of an import's succeeded rows created,
// updated, left unchanged or deleted a record (see Bulk.Actions).
func (im *Importer) Actions(ctx context.Context, workspace, id string) (map[string]int64, error) {
	return im.b.Actions(ctx, workspace, id)
}

// Abort stops an import that has not ended (see Bulk.Abort): the rows
// already committed stay, the rest are not processed.
func (im *Importer) Abort(ctx context.Context, workspace, id string) (*Job, error) {
	return im.b.Abort(ctx, workspace, id)
}
