package records

import (
	"fmt"
)

// Batch state: what earlier rows of a batch will write, so later rows of the
// same batch see it before anything is committed.

// batchState is what one round of a batch knows beyond the store: the
// records earlier rows will write (nil for deleted) and the external ids
// they hold, and the plans of the workspaces seen.
type batchState struct {
	recs  map[string]*Record
	ext   map[string]string
	plans map[string]int64
}

func newBatchState(multi bool) *batchState {
	if !multi {
		return &batchState{}
	}
	return &batchState{recs: map[string]*Record{}, ext: map[string]string{}}
}

func recKey(ws, obj, id string) string { return ws + "\x00" + obj + "\x00" + id }

func (bs *batchState) get(ws, obj, id string) (*Record, bool, error) {
	rec, ok := bs.recs[recKey(ws, obj, id)]
	if !ok {
		return nil, false, nil
	}
	if rec == nil {
		return nil, true, fmt.Errorf("records: %s was deleted earlier in the batch: %w", id, ErrNotFound)
	}
	return rec, true, nil
}

func (bs *batchState) byExt(ws, obj, ext string) (string, bool) {
	id, ok := bs.ext[recKey(ws, obj, ext)]
	return id, ok
}

// wrote remembers what a prepared row will write, for the rows after it.
func (bs *batchState) wrote(r *row) {
	if bs.recs == nil {
		return
	}
	rec := r.rec
	k := recKey(rec.Workspace, rec.Object, rec.ID)
	var old string
	if r.before != nil {
		old = r.before.ExternalID(&r.s.obj)
	}
	if r.act == actDelete {
		bs.recs[k] = nil
		if old != "" {
			bs.ext[recKey(rec.Workspace, rec.Object, old)] = ""
		}
		return
	}
	bs.recs[k] = rec
	if old != "" && old != r.ext {
		bs.ext[recKey(rec.Workspace, rec.Object, old)] = ""
	}
	if r.ext != "" {
		bs.ext[recKey(rec.Workspace, rec.Object, r.ext)] = rec.ID
	}
}
