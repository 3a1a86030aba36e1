package ingest

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/smartlite/crmkit/records"
)

// ErrMapping: an explicit column mapping names a column the file does not
// have or a field the object does not have, or maps two columns to one
// field.
var ErrMapping = errors.New("invalid column mapping")

// MappedColumn is one column and the field it fills.
type MappedColumn struct {
	Column
	// Field is the field's name, IDField for the record id, "" when the
	// column is not imported.
	Field string
	// field is the schema's field; nil for IDField and unmapped columns.
	field *records.Field
}

// Mapping says which field each column of a table fills.
type Mapping struct {
	Object   string
	Columns  []MappedColumn // in the table's column order
	Unmapped []string       // headers of the columns not imported
}

// Used answers the mapping as {"Column header": "field"}, the form an API
// takes and shows back; unmapped columns are left out.
func (m *Mapping) Used() map[string]string {
	used := make(map[string]string, len(m.Columns))
	for _, c := range m.Columns {
		if c.Field != "" {
			used[c.Header] = c.Field
		}
	}
	return used
}

// AutoMap maps the columns of a table to the fields of obj.
//
// explicit, {"Column header": "field"}, decides for the columns it names
// (header matched exactly, then ignoring case and spaces; a field of ""
// leaves the column out). Every other column is mapped to the field whose
// name matches its header ignoring case, spaces, underscores and hyphens:
// "Close Date", "close_date" and "CloseDate" all fill close_date. Objects
// have no field labels, so names are all there is to match. A header
// matching "id" fills the record id (Row.ID). Read-only fields are not
// auto-mapped, since a write to them fails; an explicit mapping may name
// them. When two columns would fill one field, the first (leftmost) one
// does and the other is unmapped; explicitly mapping two columns to one
// field is an error.
func AutoMap(obj *records.Object, cols []Column, explicit map[string]string) (*Mapping, error) {
	m := &Mapping{Object: obj.Name, Columns: make([]MappedColumn, len(cols))}
	fields := make(map[string]*records.Field, len(obj.Fields))
	byKey := make(map[string]*records.Field, len(obj.Fields))
	for i := range obj.Fields {
		f := &obj.Fields[i]
		fields[f.Name] = f
		if !f.ReadOnly {
			byKey[matchKey(f.Name)] = f
		}
	}
	for i, c := range cols {
		m.Columns[i].Column = c
	}
	taken := make(map[string]bool)
	fixed := make([]bool, len(cols))
	for header, field := range explicit {
		i := findColumn(cols, header)
		if i < 0 {
			return nil, fmt.Errorf("ingest: %w: no column %q in the file", ErrMapping, header)
		}
		if fixed[i] {
			return nil, fmt.Errorf("ingest: %w: column %q mapped twice", ErrMapping, cols[i].Header)
		}
		fixed[i] = true
		if field == "" {
			continue
		}
		f, known := fields[field]
		if !known && field != IDField {
			return nil, fmt.Errorf("ingest: %w: %q is not a field of %s", ErrMapping, field, obj.Name)
		}
		if taken[field] {
			return nil, fmt.Errorf("ingest: %w: two columns mapped to %q", ErrMapping, field)
		}
		taken[field] = true
		m.Columns[i].Field, m.Columns[i].field = field, f
	}
	for i, c := range cols {
		if fixed[i] {
			continue
		}
		key := matchKey(c.Header)
		if key == IDField && !taken[IDField] {
			taken[IDField] = true
			m.Columns[i].Field = IDField
			continue
		}
		if f := byKey[key]; f != nil && !taken[f.Name] {
			taken[f.Name] = true
			m.Columns[i].Field, m.Columns[i].field = f.Name, f
		}
	}
	for _, c := range m.Columns {
		if c.Field == "" {
			m.Unmapped = append(m.Unmapped, c.Header)
		}
	}
	return m, nil
}

// findColumn finds a header exactly, then ignoring case and spaces.
func findColumn(cols []Column, header string) int {
	for i, c := range cols {
		if c.Header == header {
			return i
		}
	}
	key := foldSpaces(header)
	for i, c := range cols {
		if foldSpaces(c.Header) == key {
			return i
		}
	}
	return -1
}

// matchKey is what headers and field names are compared by: lower case,
// without spaces, underscores and hyphens.
func matchKey(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case ' ', '\t', '_', '-', '\u00a0':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Row converts one table row: the record id, the converted fields of the
// mapped columns (empty cells left out), the raw cells as Columns, and, in
// Err, CellErrors for every cell that did not convert.
func (m *Mapping) Row(c Converter, tr TableRow) Row {
	row := Row{Num: tr.Num, Line: tr.SheetRow, SheetRow: tr.SheetRow,
		Fields: make(records.Fields, len(m.Columns)), Columns: make([]string, len(tr.Cells))}
	var errs CellErrors
	for i, cell := range tr.Cells {
		row.Columns[i] = cell.Value
		if i >= len(m.Columns) {
			continue
		}
		mc := &m.Columns[i]
		switch {
		case mc.Field == "":
		case mc.field == nil:
			row.ID = strings.TrimSpace(cell.Value)
		default:
			v, err := c.Convert(mc.field, cell.Value)
			if err != nil {
				errs = append(errs, &CellError{Column: mc.Header, Ref: cell.Ref, Field: mc.Field, Err: err})
			} else if v != nil {
				row.Fields[mc.Field] = v
			}
		}
	}
	if len(errs) > 0 {
		row.Err = errs
	}
	return row
}

// tableRows reads a table as rows of fields.
type tableRows struct {
	t Table
	m *Mapping
	c Converter
	n int
}

// NewTableRows reads the rows of t as a RowReader, converting each through
// m with c: an import then runs like a bulk job. A row with cells that do
// not convert comes back with Row.Err holding CellErrors; the table's own
// errors (limits, a corrupt file) end the reading.
func NewTableRows(t Table, m *Mapping, c Converter) RowReader {
	return &tableRows{t: t, m: m, c: c}
}

func (r *tableRows) Next() (Row, error) {
	tr, err := r.t.Next()
	if err != nil {
		if err != io.EOF {
			err = &RowError{Row: r.n + 1, Err: err}
		}
		return Row{}, err
	}
	r.n = tr.Num
	return r.m.Row(r.c, tr), nil
}
