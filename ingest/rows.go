package ingest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/smartlite/crmkit/records"
)

// Format names the encoding of a bulk job's rows.
type Format string

// The row formats of bulk jobs.
const (
	FormatJSON   Format = "json"   // one JSON array of rows
	FormatNDJSON Format = "ndjson" // one JSON row per line
	FormatCSV    Format = "csv"    // a header of field names, then one row per record
)

// DefaultMaxRowBytes is the default limit on one row's encoded size, the
// same as the default body limit of a single-record request.
const DefaultMaxRowBytes = 1 << 20

// IDField is the name under which a row names the record it updates or
// deletes: a top-level "id" of a JSON row, a plain object's "id" member or
// an "id" CSV column. It is taken out of the row's fields into Row.ID.
const IDField = "id"

// Errors rows and readers fail with; test with errors.Is.
var (
	// ErrMalformed: the input is not valid in its format.
	ErrMalformed = errors.New("malformed input")
	// ErrRowTooLarge: one row is longer than the reader's MaxRowBytes.
	ErrRowTooLarge = errors.New("row too large")
)

// Row is one data row of a bulk job or an import.
type Row struct {
	// Num is the 1-based number of the data row: a CSV or spreadsheet header
	// is not counted, and neither are blank lines or blank spreadsheet rows.
	Num int
	// Line is the input line the row starts on (1-based). For spreadsheet
	// rows it is SheetRow.
	Line int
	// SheetRow is the row number a spreadsheet shows for the row; 0 for JSON
	// and NDJSON. For CSV it counts records, the header included.
	SheetRow int
	// ID is the record id the row names (see IDField), "" when none.
	ID string
	// Fields are the row's field values, IDField excluded. A JSON null is
	// kept as nil (which clears the field on update); an empty CSV cell or
	// spreadsheet cell leaves the field out.
	Fields records.Fields
	// Columns are the raw input columns of a CSV or spreadsheet row, in the
	// order of the header, so that a failed row can be written back as the
	// user sent it (see ResultWriter); for xlsx they are raw cell values, a
	// date being its serial number. Nil for JSON and NDJSON.
	Columns []string
	// Err, when not nil, says this row is unusable on its own (not an
	// object, a bad line, the wrong number of CSV columns, cells that do
	// not convert); the reader goes on with the next row.
	Err error
}

// RowReader reads the rows of one input, one at a time, never holding more
// than one row of it in memory.
//
// Next returns the next row, or io.EOF after the last one. A row that is
// faulty on its own comes back with Row.Err set and a nil error, and the
// reader can go on. Any other error ends the input: it is a *RowError
// naming the row and line at which reading stopped (matching ErrMalformed
// or ErrRowTooLarge when the input is at fault, or wrapping the underlying
// reader's error), and every later call returns it again.
type RowReader interface {
	Next() (Row, error)
}

// RowError is an error at one row of an input.
type RowError struct {
	Row  int // 1-based data row number; 0 for a CSV header
	Line int // 1-based input line, 0 when unknown
	Err  error
}

func (e *RowError) Error() string {
	if e.Row == 0 {
		return fmt.Sprintf("header (line %d): %v", e.Line, e.Err)
	}
	if e.Line > 0 {
		return fmt.Sprintf("row %d (line %d): %v", e.Row, e.Line, e.Err)
	}
	return fmt.Sprintf("row %d: %v", e.Row, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// RowOptions tune the row readers. The zero value is ready to use.
type RowOptions struct {
	// MaxRowBytes limits one row's encoded size (a JSON array element, an
	// NDJSON line, a CSV record); 0 means DefaultMaxRowBytes. An NDJSON line
	// over the limit fails its row and is skipped; in a JSON array or a CSV
	// file, where a row cannot be skipped without reading it, it ends the
	// input.
	MaxRowBytes int
}

func (o RowOptions) maxRow() int {
	if o.MaxRowBytes <= 0 {
		return DefaultMaxRowBytes
	}
	return o.MaxRowBytes
}

// NewRowReader answers the reader of format over r.
func NewRowReader(format Format, r io.Reader, opts RowOptions) (RowReader, error) {
	switch format {
	case FormatJSON:
		return NewJSONRows(r, opts), nil
	case FormatNDJSON:
		return NewNDJSONRows(r, opts), nil
	case FormatCSV:
		return NewCSVRows(r, opts), nil
	}
	return nil, fmt.Errorf("ingest: unknown row format %q (want json, ndjson or csv)", format)
}

// errBudget is what a budgetReader answers past its budget.
var errBudget = errors.New("ingest: read budget exceeded")

// budgetReader counts what it reads, remembers where the newlines it passed
// on lie (so that a byte offset can be turned into a line number), and
// refuses to read past max, which bounds how much a decoder buffers for one
// row.
type budgetReader struct {
	r     io.Reader
	n     int64 // bytes read so far
	max   int64 // read no further than this offset
	track bool  // keep nl for lineAt
	// mark, when not negative, asks for the offset of the first byte at or
	// after it that is not a comma or a space, answered in hit.
	mark, hit int64
	nl        []int64 // offsets of newlines at or after the last lineAt offset
	lines     int     // newlines before the last lineAt offset
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n >= b.max {
		return 0, errBudget
	}
	if rest := b.max - b.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.r.Read(p)
	for i := max(0, b.mark-b.n); b.mark >= 0 && i < int64(n); i++ {
		if strings.IndexByte(", \t\r\n", p[i]) < 0 {
			b.hit, b.mark = b.n+i, -1
		}
	}
	for i := 0; b.track && i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		b.nl = append(b.nl, b.n+int64(i+j))
		i += j + 1
	}
	b.n += int64(n)
	return n, err
}

// lineAt answers the 1-based line of offset off. Offsets must not decrease
// from one call to the next.
func (b *budgetReader) lineAt(off int64) int {
	k := 0
	for k < len(b.nl) && b.nl[k] < off {
		k++
	}
	b.lines += k
	b.nl = append(b.nl[:0], b.nl[k:]...)
	return b.lines + 1
}

// skipBOM drops a UTF-8 byte order mark at the start of br.
func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(3); err == nil && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		_, _ = br.Discard(3)
	}
}

// jsonRows reads a JSON array of rows with the decoder's tokens, one element
// at a time.
type jsonRows struct {
	dec     *json.Decoder
	br      *budgetReader
	max     int
	n       int
	started bool
	err     error
}

// NewJSONRows reads rows from a JSON array whose elements are
// {"fields":{…}} (optionally with "id") or plain objects of fields. Empty
// input holds no rows. Numbers become float64 where that keeps their value
// (see Number).
func NewJSONRows(r io.Reader, opts RowOptions) RowReader {
	br := bufio.NewReader(r)
	skipBOM(br)
	b := &budgetReader{r: br, track: true, mark: -1}
	d := json.NewDecoder(b)
	d.UseNumber()
	return &jsonRows{dec: d, br: b, max: opts.maxRow()}
}

func (j *jsonRows) fail(line int, err error) (Row, error) {
	j.err = &RowError{Row: j.n + 1, Line: line, Err: err}
	return Row{}, j.err
}

// budget lets the decoder read one more row of at most j.max bytes. A read
// past it means the value being decoded started before the decoder's
// offset and ends after the budget, so it is longer than the limit.
func (j *jsonRows) budget() {
	j.br.max = j.dec.InputOffset() + 2*int64(j.max) + 8<<10
}

func (j *jsonRows) syntax(err error) (Row, error) {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, errBudget):
		return j.fail(j.br.lineAt(j.dec.InputOffset()), fmt.Errorf("%w: longer than %d bytes", ErrRowTooLarge, j.max))
	case errors.As(err, &se):
		return j.fail(j.br.lineAt(se.Offset), fmt.Errorf("%w: %v", ErrMalformed, se))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return j.fail(j.br.lineAt(j.dec.InputOffset()), fmt.Errorf("%w: unexpected end of input", ErrMalformed))
	}
	return j.fail(j.br.lineAt(j.dec.InputOffset()), err)
}

func (j *jsonRows) Next() (Row, error) {
	if j.err != nil {
		return Row{}, j.err
	}
	j.budget()
	if !j.started {
		tok, err := j.dec.Token()
		if err == io.EOF {
			j.err = io.EOF
			return Row{}, io.EOF
		}
		if err != nil {
			return j.syntax(err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return j.fail(1, fmt.Errorf("%w: a json job is an array of rows", ErrMalformed))
		}
		j.started = true
	}
	if !j.dec.More() {
		if _, err := j.dec.Token(); err != nil { // the closing ]
			return j.syntax(err)
		}
		if tok, err := j.dec.Token(); err != io.EOF {
			if err != nil {
				return j.syntax(err)
			}
			return j.fail(j.br.lineAt(j.dec.InputOffset()), fmt.Errorf("%w: %v after the array", ErrMalformed, tok))
		}
		j.err = io.EOF
		return Row{}, io.EOF
	}
	// The row's line is the line its value starts on, past the comma and
	// spaces the decoder has not consumed yet: in its buffer, or else in
	// what it reads next.
	start, found := j.dec.InputOffset(), false
	if buf, ok := j.dec.Buffered().(io.ByteReader); ok {
		for c, err := buf.ReadByte(); err == nil; c, err = buf.ReadByte() {
			if found = strings.IndexByte(", \t\r\n", c) < 0; found {
				break
			}
			start++
		}
	}
	if !found {
		j.br.mark, j.br.hit = start, -1
	}
	j.budget()
	var v any
	err := j.dec.Decode(&v)
	if !found && j.br.hit >= 0 {
		start = j.br.hit
	}
	j.br.mark = -1
	if err != nil {
		return j.syntax(err)
	}
	line := j.br.lineAt(start)
	j.n++
	row := Row{Num: j.n, Line: line}
	if j.dec.InputOffset()-start > int64(j.max) {
		row.Err = &RowError{Row: j.n, Line: line, Err: fmt.Errorf("%w: longer than %d bytes", ErrRowTooLarge, j.max)}
		return row, nil
	}
	row.ID, row.Fields, row.Err = objectRow(v)
	if row.Err != nil {
		row.Err = &RowError{Row: j.n, Line: line, Err: row.Err}
	}
	return row, nil
}

// ndjsonRows reads one JSON row per line.
type ndjsonRows struct {
	br   *bufio.Reader
	max  int
	n    int
	line int
	buf  []byte
	err  error
}

// NewNDJSONRows reads rows from newline-delimited JSON: one row per line,
// each {"fields":{…}} or a plain object of fields as in a JSON array.
// Lines holding only spaces are skipped. A line that is not a JSON object,
// or is longer than MaxRowBytes, fails its row and reading goes on.
func NewNDJSONRows(r io.Reader, opts RowOptions) RowReader {
	br := bufio.NewReaderSize(r, 64<<10)
	skipBOM(br)
	return &ndjsonRows{br: br, max: opts.maxRow()}
}

// readLine answers the next line without its newline; long says it was
// longer than the limit, and only its start is kept.
func (n *ndjsonRows) readLine() (line []byte, long bool, err error) {
	n.buf = n.buf[:0]
	for {
		chunk, err := n.br.ReadSlice('\n')
		if long || len(n.buf)+len(chunk) > n.max+2 { // room for "\r\n"
			long = true
		} else {
			n.buf = append(n.buf, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && (len(n.buf) > 0 || long):
			return n.buf, long, nil
		case err != nil:
			return nil, false, err
		}
		return n.buf, long, nil
	}
}

func (n *ndjsonRows) Next() (Row, error) {
	if n.err != nil {
		return Row{}, n.err
	}
	for {
		line, long, err := n.readLine()
		if err != nil {
			if err != io.EOF {
				err = &RowError{Row: n.n + 1, Line: n.line + 1, Err: err}
			}
			n.err = err
			return Row{}, err
		}
		n.line++
		if long {
			n.n++
			return Row{Num: n.n, Line: n.line, Err: &RowError{Row: n.n, Line: n.line,
				Err: fmt.Errorf("%w: longer than %d bytes", ErrRowTooLarge, n.max)}}, nil
		}
		line = bytes.Trim(line, " \t\r\n")
		if len(line) == 0 {
			continue
		}
		n.n++
		row := Row{Num: n.n, Line: n.line}
		v, err := decodeOne(line)
		if err == nil {
			row.ID, row.Fields, err = objectRow(v)
		}
		if err != nil {
			row.Err = &RowError{Row: n.n, Line: n.line, Err: err}
		}
		return row, nil
	}
}

// decodeOne decodes b, which must hold exactly one JSON value.
func decodeOne(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: more than one JSON value on the line", ErrMalformed)
	}
	return v, nil
}

// objectRow turns one decoded JSON row into its id and fields.
func objectRow(v any) (string, records.Fields, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf(`%w: a row is a JSON object, {"fields":{…}} or a plain object of fields`, ErrMalformed)
	}
	fields := obj
	var id any
	if inner, wrapped := obj["fields"].(map[string]any); wrapped {
		for k := range obj {
			if k != "fields" && k != IDField {
				return "", nil, fmt.Errorf(`%w: unknown member %q beside "fields" (only "id" may be there)`, ErrMalformed, k)
			}
		}
		fields, id = inner, obj[IDField]
		if _, dup := inner[IDField]; dup && id != nil {
			return "", nil, fmt.Errorf(`%w: "id" given twice, beside "fields" and in them`, ErrMalformed)
		}
	}
	if v, ok := fields[IDField]; ok {
		id = v
		delete(fields, IDField)
	}
	var sid string
	switch x := id.(type) {
	case nil:
	case string:
		sid = x
	default:
		return "", nil, fmt.Errorf(`%w: "id" must be a string`, ErrMalformed)
	}
	for k, v := range fields {
		fields[k] = Number(v)
	}
	return sid, records.Fields(fields), nil
}

// Number converts the json.Number values of a value decoded with
// UseNumber, in objects and arrays too, to float64 when the float64 holds
// the number as written (its shortest decimal form has the same value), and
// leaves them json.Number otherwise: 820982911946154508 (a Shopify id) or
// 0.1000000000000000055511 keep every digit, for the pipeline or a mapping
// to decide. Other values are returned unchanged.
func Number(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, ok := exactFloat(string(x)); ok {
			return f
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = Number(e)
		}
	case []any:
		for i, e := range x {
			x[i] = Number(e)
		}
	}
	return v
}

// exactFloat parses a JSON number, reporting whether the float64 is exactly
// the number written in decimal terms.
func exactFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	digits := strings.TrimLeft(strings.NewReplacer("-", "", ".", "").Replace(mant), "0")
	if digits == "" {
		return f, true // a zero
	}
	if len(digits) <= 15 && math.Abs(f) >= 0x1p-1022 {
		// Up to 15 significant digits survive a round trip through a
		// float64 in its normal range.
		return f, true
	}
	if len(s) > 1000 || len(exp) > 4 || f == 0 {
		// Comparing exactly would take big numbers (1e-99999999 makes
		// big.Rat build 10^99999999); these keep their text. A zero whose
		// digits are all zero took the path above.
		return 0, false
	}
	var want, got big.Rat
	if _, ok := want.SetString(s); !ok {
		return 0, false
	}
	if _, ok := got.SetString(strconv.FormatFloat(f, 'g', -1, 64)); !ok {
		return 0, false
	}
	return f, want.Cmp(&got) == 0
}

// csvRows reads rows under a header of field names.
type csvRows struct {
	cr     *csv.Reader
	br     *budgetReader
	max    int
	header []string
	n      int
	rec    int // records read, the header included
	err    error
}

// NewCSVRows reads rows from CSV: a header row of field names, then one row
// per record. An empty cell leaves its field out; an "id" column gives
// Row.ID. A UTF-8 byte order mark is skipped. Row.Columns holds the record
// as read. A record with another number of columns than the header fails
// its row; a quoting error, a header with an empty or repeated name, or a
// record over MaxRowBytes ends the input. Empty input holds no rows.
func NewCSVRows(r io.Reader, opts RowOptions) RowReader {
	c := newCSV(r, opts.maxRow())
	return c
}

func newCSV(r io.Reader, max int) *csvRows {
	br := bufio.NewReader(r)
	skipBOM(br)
	b := &budgetReader{r: br, mark: -1}
	cr := csv.NewReader(b)
	cr.FieldsPerRecord = -1
	return &csvRows{cr: cr, br: b, max: max}
}

// read answers the next CSV record and the line it starts on.
func (c *csvRows) read() ([]string, int, error) {
	c.br.max = c.cr.InputOffset() + 2*int64(c.max) + 8<<10
	start := c.cr.InputOffset()
	rec, err := c.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		switch {
		case err == io.EOF:
			return nil, 0, io.EOF
		case errors.Is(err, errBudget):
			return nil, 0, &RowError{Row: c.n + 1, Err: fmt.Errorf("%w: longer than %d bytes", ErrRowTooLarge, c.max)}
		case errors.As(err, &pe):
			return nil, 0, &RowError{Row: c.n + 1, Line: pe.StartLine, Err: fmt.Errorf("%w: %v", ErrMalformed, pe.Err)}
		}
		return nil, 0, &RowError{Row: c.n + 1, Err: err}
	}
	c.rec++
	line, _ := c.cr.FieldPos(0)
	if c.cr.InputOffset()-start > int64(c.max)+2 {
		return rec, line, &RowError{Row: c.n + 1, Line: line, Err: fmt.Errorf("%w: longer than %d bytes", ErrRowTooLarge, c.max)}
	}
	return rec, line, nil
}

func (c *csvRows) Next() (Row, error) {
	if c.err != nil {
		return Row{}, c.err
	}
	if c.header == nil {
		rec, line, err := c.read()
		if err == nil {
			c.header, err = csvHeader(rec, line)
		}
		if err != nil {
			c.err = err
			return Row{}, err
		}
	}
	rec, line, err := c.read()
	if err != nil {
		c.err = err
		return Row{}, err
	}
	c.n++
	row := Row{Num: c.n, Line: line, SheetRow: c.rec, Columns: rec}
	if len(rec) != len(c.header) {
		row.Err = &RowError{Row: c.n, Line: line, Err: fmt.Errorf("%w: %d columns, the header has %d", ErrMalformed, len(rec), len(c.header))}
		return row, nil
	}
	row.Fields = make(records.Fields, len(rec))
	for i, v := range rec {
		switch {
		case v == "":
		case c.header[i] == IDField:
			row.ID = v
		default:
			row.Fields[c.header[i]] = v
		}
	}
	return row, nil
}

// csvHeader checks a header of field names: none empty, none twice.
func csvHeader(rec []string, line int) ([]string, error) {
	h := make([]string, len(rec))
	seen := make(map[string]bool, len(rec))
	for i, name := range rec {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, &RowError{Row: 0, Line: line, Err: fmt.Errorf("%w: header column %d has no name", ErrMalformed, i+1)}
		}
		if seen[name] {
			return nil, &RowError{Row: 0, Line: line, Err: fmt.Errorf("%w: header names %q twice", ErrMalformed, name)}
		}
		seen[name] = true
		h[i] = name
	}
	return h, nil
}
