package ingest

import (
	"encoding/csv"
	"io"
	"strings"
)

// ResultColumns says which result columns a ResultWriter appends to the
// input columns.
type ResultColumns int

// The shapes of a results CSV.
const (
	// AllResults appends record_id, action and error.
	AllResults ResultColumns = iota
	// SucceededResults appends record_id and action.
	SucceededResults
	// FailedResults appends error: the failed rows, ready to be fixed and
	// sent again.
	FailedResults
)

// Result is the outcome of one row, as a results CSV shows it.
type Result struct {
	RecordID string
	Action   string // "created", "updated", "deleted", "unchanged"
	Error    string
}

// ResultWriter writes a job's results as CSV: each row's input columns, as
// read (Row.Columns), then the result columns.
//
// Input columns are written back unchanged, so that a fixed file of failed
// rows can be sent again as it is. The error column is crmkit's text, which
// may quote a cell; a leading =, +, - or @ there is escaped with a single
// quote so that a spreadsheet does not take it for a formula.
type ResultWriter struct {
	w    *csv.Writer
	cols ResultColumns
	n    int
	rec  []string
}

// NewResultWriter writes the header (the input header, then the result
// columns of cols) to w and answers the writer of the rows.
func NewResultWriter(w io.Writer, header []string, cols ResultColumns) (*ResultWriter, error) {
	rw := &ResultWriter{w: csv.NewWriter(w), cols: cols, n: len(header)}
	h := append([]string(nil), header...)
	switch cols {
	case SucceededResults:
		h = append(h, "record_id", "action")
	case FailedResults:
		h = append(h, "error")
	default:
		h = append(h, "record_id", "action", "error")
	}
	if err := rw.w.Write(h); err != nil {
		return nil, err
	}
	return rw, nil
}

// Write writes one row: columns (padded or cut to the header's width, since
// a failed row may have had the wrong number of columns) and its result.
func (rw *ResultWriter) Write(columns []string, r Result) error {
	rec := rw.rec[:0]
	rec = append(rec, columns[:min(len(columns), rw.n)]...)
	for len(rec) < rw.n {
		rec = append(rec, "")
	}
	switch rw.cols {
	case SucceededResults:
		rec = append(rec, r.RecordID, r.Action)
	case FailedResults:
		rec = append(rec, escapeFormula(r.Error))
	default:
		rec = append(rec, r.RecordID, r.Action, escapeFormula(r.Error))
	}
	rw.rec = rec
	return rw.w.Write(rec)
}

// Flush writes what is buffered and answers the first write error.
func (rw *ResultWriter) Flush() error {
	rw.w.Flush()
	return rw.w.Error()
}

func escapeFormula(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}
