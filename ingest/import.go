package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/smartlite/crmkit/records"
)

// Spreadsheet import (DESIGN 8.5): an .xlsx or .csv file, its columns
// mapped to the fields of an object, run as a bulk job. The file is checked
// whole when it arrives (the pre-open checks of OpenXLSX, then every row
// read once), so a hostile or broken file is refused before anything is
// written; then the job, its data (the file's bytes, as the chunks of a
// bulk upload) and its run are stored in one transaction. The worker reads
// the stored file back through a Table and NewTableRows, and every row
// goes through the same bulk path as any other job, with source import.

// FormatXLSX is the format of a bulk job that imports an .xlsx workbook. A
// job importing a .csv file has FormatCSV and an Import spec.
const FormatXLSX Format = "xlsx"

// DefaultPreviewRows is how many rows a preview converts.
const DefaultPreviewRows = 20

// ImportSpec is what a bulk job needs, besides its data, to read an
// imported file: where its table is and which field each column fills.
type ImportSpec struct {
	// FileName is the uploaded file's name, as the client gave it.
	FileName string `json:"file_name,omitempty"`
	// Sheet is the sheet read (xlsx), as the workbook names it.
	Sheet string `json:"sheet,omitempty"`
	// HeaderRow is the row holding the column headers.
	HeaderRow int `json:"header_row"`
	// Columns are the headers of the table's columns, in order.
	Columns []string `json:"columns"`
	// Mapping holds every column's field; "" for a column not imported.
	Mapping map[string]string `json:"mapping"`
	// Unmapped lists the headers of the columns not imported.
	Unmapped []string `json:"unmapped"`
}

// ImportInput is what starts an import or a preview.
type ImportInput struct {
	Object       string
	Operation    records.Op
	Mode         Mode
	ValidateOnly bool
	// Format is FormatXLSX or FormatCSV; "" decides by FileName's extension,
	// then by the file's first bytes.
	Format    Format
	FileName  string
	Sheet     string
	HeaderRow int
	// Mapping is {"Column header": "field"}; the columns it does not name
	// are auto-mapped (see AutoMap).
	Mapping map[string]string
}

// ImportConfig configures an Importer. Bulk is required.
type ImportConfig struct {
	Bulk *Bulk
	// Limits bound the files accepted; zero fields take the defaults.
	Limits Limits
	// TempDir holds uploaded files while they are checked and read; "" is
	// the system's temporary directory.
	TempDir string
	// PreviewRows is how many rows a preview converts; default
	// DefaultPreviewRows.
	PreviewRows int
}

// Importer starts imports as bulk jobs and previews them.
type Importer struct {
	b   *Bulk
	cfg ImportConfig
}

// NewImporter checks cfg and answers an Importer.
func NewImporter(cfg ImportConfig) (*Importer, error) {
	if cfg.Bulk == nil {
		return nil, errors.New("ingest: ImportConfig.Bulk is nil")
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.PreviewRows <= 0 {
		cfg.PreviewRows = DefaultPreviewRows
	}
	return &Importer{b: cfg.Bulk, cfg: cfg}, nil
}

// Limits answers the limits files are held to.
func (im *Importer) Limits() Limits { return im.cfg.Limits }

// Upload is an uploaded file spooled to a temporary file, so that it can be
// read with random access (as excelize needs) and more than once, without
// being held in memory.
type Upload struct {
	f    *os.File
	size int64
}

// Spool copies r to a temporary file, failing with a *LimitError past
// Limits.FileSize. Close removes the file.
func (im *Importer) Spool(r io.Reader) (*Upload, error) {
	f, err := os.CreateTemp(im.cfg.TempDir, "crmkit-import-*")
	if err != nil {
		return nil, fmt.Errorf("ingest: spool upload: %w", err)
	}
	u := &Upload{f: f}
	max := im.cfg.Limits.FileSize
	n, err := io.Copy(f, io.LimitReader(r, max+1))
	if err == nil && n > max {
		err = fmt.Errorf("ingest: %w", &LimitError{Limit: "file size", Max: max})
	}
	if err != nil {
		_ = u.Close()
		return nil, err
	}
	u.size = n
	return u, nil
}

// Size answers the file's size in bytes.
func (u *Upload) Size() int64 { return u.size }

// Close removes the temporary file.
func (u *Upload) Close() error {
	if u == nil || u.f == nil {
		return nil
	}
	err := u.f.Close()
	if rerr := os.Remove(u.f.Name()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	u.f = nil
	return err
}

// detectFormat answers the format of an upload: by the name's extension,
// else by its first bytes (a zip or an OLE container is taken for a
// workbook, so that an encrypted one is refused as such).
func detectFormat(name string, r io.ReaderAt) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".xlsx", ".xlsm":
		return FormatXLSX
	case ".csv", ".txt":
		return FormatCSV
	}
	head := make([]byte, len(oleSignature))
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	if bytes.HasPrefix(head, []byte("PK")) || bytes.Equal(head, oleSignature) {
		return FormatXLSX
	}
	return FormatCSV
}

// openTable opens the table of a file of format.
func openTable(format Format, f *os.File, size int64, opts TableOptions) (Table, Converter, string, error) {
	switch format {
	case FormatXLSX:
		t, err := OpenXLSX(f, size, opts)
		if err != nil {
			return nil, Converter{}, "", err
		}
		return t, t.Converter(), t.Sheet(), nil
	case FormatCSV:
		t, err := NewCSVTable(io.NewSectionReader(f, 0, size), opts)
		return t, Converter{}, "", err
	}
	return nil, Converter{}, "", fmt.Errorf("ingest: unknown import format %q (want xlsx or csv)", format)
}

// opened is an upload's table with its mapping.
type opened struct {
	t      Table
	conv   Converter
	sheet  string
	format Format
	m      *Mapping
	obj    *records.Object
}

// open checks in, opens the upload's table and maps its columns. Errors:
// a *records.ValidationError for the job's settings, an error matching
// ErrRefused for the file, ErrMalformed, ErrMapping.
func (im *Importer) open(in *ImportInput, u *Upload, checkJob bool) (*opened, error) {
	if in.Mode == "" {
		in.Mode = ModePartial
	}
	var errs []records.FieldError
	if checkJob {
		errs = im.b.checkJob(JobInput{Object: in.Object, Operation: in.Operation, Mode: in.Mode})
	} else if in.Object == "" {
		errs = append(errs, records.FieldError{Field: "object", Code: "required", Message: "is required"})
	}
	if in.Format == "" && u != nil {
		in.Format = detectFormat(in.FileName, u.f)
	}
	if in.Format != FormatXLSX && in.Format != FormatCSV {
		errs = append(errs, records.FieldError{Field: "format", Code: "one_of", Message: "must be one of: xlsx, csv"})
	}
	if in.HeaderRow < 0 {
		errs = append(errs, records.FieldError{Field: "header_row", Code: "min", Message: "must be at least 1"})
	}
	var obj *records.Object
	if in.Object != "" {
		on, ok := im.b.p.(objectNamer)
		if ok {
			obj, ok = on.Object(in.Object)
		}
		if !ok && !hasFieldError(errs, "object") {
			errs = append(errs, records.FieldError{Field: "object", Code: "unknown_object", Message: "is not an object of this workspace"})
		}
	}
	if u == nil {
		errs = append(errs, records.FieldError{Field: "file", Code: "required", Message: "is required"})
	}
	if len(errs) > 0 {
		return nil, &records.ValidationError{Object: in.Object, Fields: errs}
	}
	t, conv, sheet, err := openTable(in.Format, u.f, u.size, TableOptions{Sheet: in.Sheet, HeaderRow: in.HeaderRow, Limits: im.cfg.Limits, TempDir: im.cfg.TempDir})
	if err != nil {
		return nil, err
	}
	m, err := AutoMap(obj, t.Columns(), in.Mapping)
	if err != nil {
		_ = t.Close()
		return nil, err
	}
	return &opened{t: t, conv: conv, sheet: sheet, format: in.Format, m: m, obj: obj}, nil
}

func hasFieldError(errs []records.FieldError, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

// spec answers the import spec of an opened upload: the mapping with every
// column, so that the run maps exactly as checked.
func (o *opened) spec(in ImportInput) *ImportSpec {
	s := &ImportSpec{FileName: in.FileName, Sheet: o.sheet, HeaderRow: max(in.HeaderRow, 1),
		Columns: make([]string, len(o.m.Columns)), Mapping: make(map[string]string, len(o.m.Columns)), Unmapped: o.m.Unmapped}
	for i, c := range o.m.Columns {
		s.Columns[i] = c.Header
		s.Mapping[c.Header] = c.Field
	}
	if s.Unmapped == nil {
		s.Unmapped = []string{}
	}
	return s
}

// Start checks the uploaded file, reads every row of it once (so that a
// file that cannot be read whole is refused now, and the job knows its row
// count), and stores a queued bulk job with the file as its data, all in
// one transaction: a refused file leaves nothing behind.
//
// Errors: a *records.ValidationError for the job's settings; errors
// matching ErrRefused (a *LimitError among them) or ErrMalformed for the
// file; ErrMapping for the mapping.
func (im *Importer) Start(ctx context.Context, workspace string, actor records.Actor, in ImportInput, u *Upload) (*Job, error) {
	o, err := im.open(&in, u, true)
	if err != nil {
		return nil, err
	}
	var rows int64
	for {
		_, err := o.t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			_ = o.t.Close()
			return nil, fmt.Errorf("ingest: %w", err)
		}
		rows++
	}
	if err := o.t.Close(); err != nil {
		return nil, err
	}
	now := im.b.now()
	j := &Job{
		ID: records.NewID("job"), Workspace: workspace, Object: in.Object, Operation: in.Operation,
		Mode: in.Mode, ValidateOnly: in.ValidateOnly, Format: o.format, State: StateQueued,
		Actor: actor, CreatedAt: now, HeartbeatAt: &now, Import: o.spec(in),
		Rows: rows, Bytes: u.size, Chunks: int((u.size + chunkSize - 1) / chunkSize),
	}
	err = im.b.st.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
		if err := im.b.st.CreateBulkJob(ctx, j); err != nil {
			return err
		}
		cw := &chunkWriter{ctx: ctx, st: im.b.st, job: j.ID, buf: make([]byte, 0, chunkSize)}
		if _, err := io.Copy(cw, io.NewSectionReader(u.f, 0, u.size)); err != nil {
			return err
		}
		if err := cw.flush(); err != nil {
			return err
		}
		if cw.seq != j.Chunks {
			return fmt.Errorf("ingest: import stored %d chunks, expected %d", cw.seq, j.Chunks)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// PreviewColumn is one column of a preview.
type PreviewColumn struct {
	Letter string `json:"letter"`
	Header string `json:"header"`
	// Field is the field the column fills, "" when it is not imported.
	Field string `json:"field"`
}

// PreviewCellError is a cell that does not convert.
type PreviewCellError struct {
	Column  string `json:"column"`
	Cell    string `json:"cell"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// PreviewRow is one converted data row.
type PreviewRow struct {
	Row      int                `json:"row"`
	SheetRow int                `json:"sheet_row"`
	ID       string             `json:"id,omitempty"`
	Fields   records.Fields     `json:"fields"`
	Errors   []PreviewCellError `json:"errors"`
}

// Preview is what an import would read, with nothing written.
type Preview struct {
	Format    Format            `json:"format"`
	Sheet     string            `json:"sheet,omitempty"`
	Sheets    []string          `json:"sheets,omitempty"`
	HeaderRow int               `json:"header_row"`
	Columns   []PreviewColumn   `json:"columns"`
	Mapping   map[string]string `json:"mapping"`
	Unmapped  []string          `json:"unmapped"`
	Rows      []PreviewRow      `json:"rows"`
}

// Preview reads the upload's columns, maps them and converts its first
// rows (Config.PreviewRows), each with the cells that did not convert.
// Operation and mode are not needed. Errors are Start's.
func (im *Importer) Preview(in ImportInput, u *Upload) (*Preview, error) {
	o, err := im.open(&in, u, false)
	if err != nil {
		return nil, err
	}
	defer o.t.Close()
	p := &Preview{Format: o.format, Sheet: o.sheet, HeaderRow: max(in.HeaderRow, 1), Mapping: o.m.Used(),
		Unmapped: o.m.Unmapped, Columns: make([]PreviewColumn, len(o.m.Columns)), Rows: []PreviewRow{}}
	if x, ok := o.t.(*XLSXTable); ok {
		p.Sheets = x.Sheets()
	}
	if p.Unmapped == nil {
		p.Unmapped = []string{}
	}
	for i, c := range o.m.Columns {
		p.Columns[i] = PreviewColumn{Letter: c.Letter, Header: c.Header, Field: c.Field}
	}
	for len(p.Rows) < im.cfg.PreviewRows {
		tr, err := o.t.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		r := o.m.Row(o.conv, tr)
		pr := PreviewRow{Row: r.Num, SheetRow: r.SheetRow, ID: r.ID, Fields: r.Fields, Errors: []PreviewCellError{}}
		var ces CellErrors
		if errors.As(r.Err, &ces) {
			for _, ce := range ces {
				pr.Errors = append(pr.Errors, PreviewCellError{Column: ce.Column, Cell: ce.Ref, Field: ce.Field, Message: ce.Error()})
			}
		}
		p.Rows = append(p.Rows, pr)
	}
	if o.format == FormatCSV {
		// A workbook's limits were checked before it opened; a CSV file's
		// are met as it is read, so it is read to the end, as an import
		// would, to refuse now what the import would refuse.
		for {
			_, err := o.t.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("ingest: %w", err)
			}
		}
	}
	return p, nil
}

// runLimits are the limits a stored import is read back under: its file
// was held to the configured limits when it arrived, and the stored bytes
// are that file's.
var runLimits = Limits{
	FileSize: math.MaxInt64, UncompressedSize: math.MaxInt64, SharedStringsSize: math.MaxInt64,
	PartSize: math.MaxInt64, Entries: math.MaxInt32, Rows: math.MaxInt32, Columns: math.MaxInt32,
	CellsPerRow: math.MaxInt32, RowBytes: math.MaxInt32,
}

// importRows answers the rows of an import job: its stored file is copied
// to a temporary file, opened as a table and mapped as when it arrived.
// The rows are read ahead in a goroutine while the job writes the ones
// before (see prefetchRows). Close the answer.
func (b *Bulk) importRows(ctx context.Context, j *Job) (RowReader, error) {
	f, err := os.CreateTemp("", "crmkit-import-run-*")
	if err != nil {
		return nil, fmt.Errorf("ingest: import: %w", err)
	}
	cleanup := func() { _ = f.Close(); _ = os.Remove(f.Name()) }
	n, err := io.Copy(f, b.data(ctx, j))
	if err != nil {
		cleanup()
		return nil, err
	}
	on, ok := b.p.(objectNamer)
	var obj *records.Object
	if ok {
		obj, ok = on.Object(j.Object)
	}
	if !ok {
		cleanup()
		return nil, fmt.Errorf("%w: import: no schema of object %q", ErrBadData, j.Object)
	}
	t, conv, _, err := openTable(j.Format, f, n, TableOptions{Sheet: j.Import.Sheet, HeaderRow: j.Import.HeaderRow, Limits: runLimits})
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("%w: import: %w", ErrBadData, err)
	}
	m, err := AutoMap(obj, t.Columns(), j.Import.Mapping)
	if err != nil {
		_ = t.Close()
		cleanup()
		return nil, fmt.Errorf("%w: import: %w", ErrBadData, err)
	}
	p := &prefetchRows{rr: NewTableRows(t, m, conv), m: m, out: make(chan fetched, prefetch), done: make(chan struct{}), exited: make(chan struct{})}
	p.closeAll = func() error {
		err := t.Close()
		cleanup()
		return err
	}
	go p.run()
	return p, nil
}

// prefetch is how many rows are read ahead of the one the job takes.
const prefetch = 2 * DefaultBatchSize

type fetched struct {
	row Row
	err error
}

// prefetchRows reads a table's rows in a goroutine of its own, ahead of
// the job, so that reading the file and writing its rows overlap.
type prefetchRows struct {
	rr       RowReader
	m        *Mapping
	out      chan fetched
	done     chan struct{}
	exited   chan struct{}
	closeAll func() error
	err      error
	closed   bool
}

func (p *prefetchRows) run() {
	defer close(p.exited)
	for {
		r, err := p.rr.Next()
		if err == nil {
			p.textDates(&r)
		}
		select {
		case p.out <- fetched{r, err}:
		case <-p.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// textDates writes the converted value of date and datetime cells into
// the row's columns, in place of a workbook's serial number, so that the
// failed rows of a results CSV can be fixed and imported again as CSV.
func (p *prefetchRows) textDates(r *Row) {
	for i, c := range p.m.Columns {
		if c.field == nil || i >= len(r.Columns) || (c.field.Type != records.TypeDate && c.field.Type != records.TypeDateTime) {
			continue
		}
		if v, ok := r.Fields[c.Field].(string); ok {
			r.Columns[i] = v
		}
	}
}

func (p *prefetchRows) Next() (Row, error) {
	if p.err != nil {
		return Row{}, p.err
	}
	f := <-p.out
	if f.err != nil {
		p.err = f.err
	}
	return f.row, f.err
}

// Close stops the reading goroutine and removes the temporary file.
func (p *prefetchRows) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.done)
	<-p.exited
	return p.closeAll()
}

// closeRows closes a row reader that holds resources (an import's).
func closeRows(rr RowReader) {
	if c, ok := rr.(io.Closer); ok {
		_ = c.Close()
	}
}

// rowError is the result error of a row that is faulty before the
// pipeline sees it: cells that do not convert fail validation, each named
// by its field, with the column's header and the cell in the message;
// anything else is a malformed row.
func rowError(err error) *ResultError {
	var ces CellErrors
	if errors.As(err, &ces) {
		re := &ResultError{Code: "validation_failed", Message: ces.Error()}
		for _, ce := range ces {
			re.Fields = append(re.Fields, records.FieldError{Field: ce.Field, Code: "invalid_cell", Message: ce.Error()})
		}
		return re
	}
	return &ResultError{Code: CodeMalformed, Message: err.Error()}
}
