package ingest

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Results answers one page of the job's results: rows after afterRow, of
// status ("" for every status), in row order, at most limit.
func (b *Bulk) Results(ctx context.Context, workspace, id, status string, afterRow int64, limit int) ([]RowResult, error) {
	if _, err := b.st.GetBulkJob(ctx, workspace, id); err != nil {
		return nil, err
	}
	return b.st.ListBulkResults(ctx, id, status, afterRow, limit)
}

// Actions answers how many of the job's succeeded rows had each action
// (RowCreated and the others); what the job has not yet processed is
// not counted.
func (b *Bulk) Actions(ctx context.Context, workspace, id string) (map[string]int64, error) {
	if _, err := b.st.GetBulkJob(ctx, workspace, id); err != nil {
		return nil, err
	}
	return b.st.CountBulkActions(ctx, id)
}

// WriteResultsCSV writes the job's results of status ("" for all) to w as
// CSV, each row's input columns first (see ResultWriter): a CSV job's
// columns as uploaded; for a JSON or NDJSON job an id column and one
// column per field of the object, so that the failed rows, fixed, can be
// uploaded again as a CSV job; for an undo job the record id. The results
// are read a page at a time and joined with the stored data in row order,
// so neither is held whole.
func (b *Bulk) WriteResultsCSV(ctx context.Context, w io.Writer, j *Job, status string) error {
	cols := AllResults
	switch status {
	case RowSucceeded:
		cols = SucceededResults
	case RowFailed:
		cols = FailedResults
	}
	var (
		header  []string
		columns func(Row) []string
		rr      RowReader
	)
	switch {
	case j.Operation == OpUndo:
		header = []string{IDField}
	case j.Import != nil:
		header, columns = j.Import.Columns, func(r Row) []string { return r.Columns }
	case j.Format == FormatCSV:
		h, err := csvDataHeader(b.data(ctx, j))
		if err != nil {
			return err
		}
		header, columns = h, func(r Row) []string { return r.Columns }
	default:
		header = []string{IDField}
		if on, ok := b.p.(objectNamer); ok {
			if o, ok := on.Object(j.Object); ok {
				for _, f := range o.Fields {
					if !f.ReadOnly {
						header = append(header, f.Name)
					}
				}
			}
		}
		columns = func(r Row) []string {
			c := make([]string, len(header))
			c[0] = r.ID
			for i, f := range header[1:] {
				c[i+1] = cellText(r.Fields[f])
			}
			return c
		}
	}
	if columns != nil {
		var err error
		if rr, err = b.reader(ctx, j); err != nil {
			return err
		}
		defer closeRows(rr)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	rw, err := NewResultWriter(bw, header, cols)
	if err != nil {
		return err
	}
	var after int64
	var cur Row
	for {
		page, err := b.st.ListBulkResults(ctx, j.ID, status, after, 1000)
		if err != nil {
			return err
		}
		for _, r := range page {
			after = r.Row
			var in []string
			if columns == nil {
				in = []string{r.RecordID}
			} else {
				for int64(cur.Num) < r.Row {
					if cur, err = rr.Next(); err != nil {
						return err
					}
				}
				in = columns(cur)
			}
			if err := rw.Write(in, Result{RecordID: r.RecordID, Action: r.Action, Error: r.Error.text()}); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// text is the error as one CSV cell: each field's message, or the
// message.
func (e *ResultError) text() string {
	if e == nil {
		return ""
	}
	if len(e.Fields) == 0 {
		return e.Code + ": " + e.Message
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

// csvDataHeader reads the header record of CSV data.
func csvDataHeader(r io.Reader) ([]string, error) {
	br := bufio.NewReader(r)
	skipBOM(br)
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	h, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	for i := range h {
		h[i] = strings.TrimSpace(h[i])
	}
	return h, nil
}

// cellText is a field value as a CSV cell that reads back as the same
// value.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return textOf(v)
}
