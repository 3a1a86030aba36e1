package ingest

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Column is one column of a table, named by its header cell.
type Column struct {
	Index  int    // 0-based position in the sheet (A is 0)
	Letter string // "A", "B", … "AA"
	Header string // the header cell's text, trimmed of spaces
}

// Cell is one cell of a data row.
type Cell struct {
	Ref   string // "C7"
	Value string // the raw text: a formula's cached value, a date's serial number; "" when empty
}

// TableRow is one data row of a table.
type TableRow struct {
	// Num is the 1-based number of the data row; blank rows are skipped and
	// not counted.
	Num int
	// SheetRow is the row number the spreadsheet shows (for CSV: the record
	// number, the header's record being 1 when it is the first).
	SheetRow int
	// Cells holds one cell per column of Columns, in the same order.
	Cells []Cell
}

// Table reads a spreadsheet-shaped input column by column: a header row
// naming the columns, then data rows, each cell with its reference. Both
// xlsx sheets (OpenXLSX) and CSV files (NewCSVTable) are read through it,
// one row at a time.
//
// Columns answers the columns the header row names; columns without a
// header are not read. Next returns the next row that is not blank, or
// io.EOF after the last one. Any other error ends the table and is
// returned again by later calls: a *LimitError, or an error matching
// ErrMalformed. Close releases what the table holds (temporary files).
type Table interface {
	Columns() []Column
	Next() (TableRow, error)
	Close() error
}

// ErrNoHeader: the table has no header row (the file ends before it, or it
// names no column). It matches ErrRefused.
var ErrNoHeader error = refusal("no header row")

// TableOptions say what to read of a table file.
type TableOptions struct {
	// Sheet names the xlsx sheet to read; "" reads the first.
	Sheet string
	// HeaderRow is the 1-based row (for CSV: record) that holds the column
	// headers; 0 means 1. Rows above it are not read.
	HeaderRow int
	// Limits bound what a file may hold; zero fields take the defaults.
	Limits Limits
	// TempDir is where large parts of a workbook are unpacked; "" is the
	// system's temporary directory.
	TempDir string
}

func (o TableOptions) headerRow() int {
	if o.HeaderRow <= 0 {
		return 1
	}
	return o.HeaderRow
}

// ColumnLetter answers the letters of the 0-based column index i: 0 is
// "A", 25 "Z", 26 "AA".
func ColumnLetter(i int) string {
	var b [8]byte
	n := len(b)
	for i++; i > 0 && n > 0; i = (i - 1) / 26 {
		n--
		b[n] = byte('A' + (i-1)%26)
	}
	return string(b[n:])
}

// CellRef answers the reference of the cell at the 0-based column index
// col of sheet row row: CellRef(2, 7) is "C7".
func CellRef(col, row int) string {
	return ColumnLetter(col) + strconv.Itoa(row)
}

// headerColumns answers the named columns of a header row and refuses
// names given twice, which a mapping could not tell apart.
func headerColumns(cells []string, sheetRow int) ([]Column, error) {
	var cols []Column
	seen := make(map[string]string)
	for i, v := range cells {
		h := strings.TrimSpace(v)
		if h == "" {
			continue
		}
		ref := CellRef(i, sheetRow)
		if first, dup := seen[h]; dup {
			return nil, fmt.Errorf("%w: header %q in both %s and %s", ErrMalformed, h, first, ref)
		}
		seen[h] = ref
		cols = append(cols, Column{Index: i, Letter: ColumnLetter(i), Header: h})
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w: row %d names no column", ErrNoHeader, sheetRow)
	}
	return cols, nil
}

// tableRow picks the cells of cols out of a row's values; ok is false when
// all of them are empty.
func tableRow(cols []Column, values []string, sheetRow int) (cells []Cell, ok bool) {
	cells = make([]Cell, len(cols))
	for i, c := range cols {
		cells[i].Ref = c.Letter + strconv.Itoa(sheetRow)
		if c.Index < len(values) {
			cells[i].Value = values[c.Index]
			if strings.TrimSpace(cells[i].Value) != "" {
				ok = true
			}
		}
	}
	return cells, ok
}

// csvTable is a Table over CSV records.
type csvTable struct {
	c    *csvRows
	lim  Limits
	cols []Column
	n    int
	size *countReader
	err  error
}

// NewCSVTable reads a CSV file as a table: the header is record
// opts.HeaderRow, and cells are referenced as a spreadsheet showing the file
// would (the first record is row 1). Limits.FileSize, Rows, Columns and
// RowBytes apply; Sheet is ignored.
func NewCSVTable(r io.Reader, opts TableOptions) (Table, error) {
	lim := opts.Limits.withDefaults()
	cr := &countReader{r: r, max: lim.FileSize}
	t := &csvTable{c: newCSV(cr, lim.RowBytes), lim: lim, size: cr}
	for t.c.rec < opts.headerRow() {
		rec, _, err := t.record()
		if err == io.EOF {
			return nil, fmt.Errorf("ingest: %w: the file ends before row %d", ErrNoHeader, opts.headerRow())
		}
		if err != nil {
			return nil, err
		}
		if t.c.rec == opts.headerRow() {
			if t.cols, err = headerColumns(rec, t.c.rec); err != nil {
				return nil, fmt.Errorf("ingest: %w", err)
			}
		}
	}
	return t, nil
}

// record reads one record within the limits.
func (t *csvTable) record() ([]string, int, error) {
	rec, line, err := t.c.read()
	switch {
	case errors.Is(err, errFileTooLarge):
		return nil, 0, &LimitError{Limit: "file size", Max: t.lim.FileSize}
	case err != nil:
		return nil, 0, err
	case t.c.rec > t.lim.Rows:
		return nil, 0, &LimitError{Limit: "rows", Max: int64(t.lim.Rows), At: "row " + strconv.Itoa(t.c.rec)}
	case len(rec) > t.lim.Columns:
		return nil, 0, &LimitError{Limit: "columns", Max: int64(t.lim.Columns), At: "row " + strconv.Itoa(t.c.rec)}
	}
	return rec, line, nil
}

func (t *csvTable) Columns() []Column { return t.cols }

func (t *csvTable) Next() (TableRow, error) {
	if t.err != nil {
		return TableRow{}, t.err
	}
	for {
		rec, _, err := t.record()
		if err != nil {
			t.err = err
			return TableRow{}, err
		}
		cells, ok := tableRow(t.cols, rec, t.c.rec)
		if !ok {
			continue
		}
		t.n++
		return TableRow{Num: t.n, SheetRow: t.c.rec, Cells: cells}, nil
	}
}

func (t *csvTable) Close() error { return nil }

// errFileTooLarge is what a countReader answers past its limit.
var errFileTooLarge = errors.New("ingest: file too large")

// countReader fails once more than max bytes have been read.
type countReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errFileTooLarge
	}
	return n, err
}
