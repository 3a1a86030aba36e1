package ingest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/xuri/excelize/v2"
)

// oleSignature starts every OLE compound file: an encrypted .xlsx (the
// package sealed inside one) and a legacy .xls alike.
var oleSignature = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// xlsxUnzipXMLLimit is the size above which excelize unpacks a worksheet or
// the shared strings to a temporary file instead of memory.
const xlsxUnzipXMLLimit = 16 << 20

// XLSXTable is a Table over one sheet of an xlsx workbook, read with
// excelize's streaming row iterator.
type XLSXTable struct {
	f        *excelize.File
	rows     *excelize.Rows
	sheet    string
	sheets   []string
	date1904 bool
	lim      Limits
	cols     []Column
	sheetRow int
	n        int
	err      error
}

var _ Table = (*XLSXTable)(nil)

// OpenXLSX checks the workbook in r (size bytes) against opts.Limits and
// opens the sheet opts.Sheet at its header row.
//
// The checks run before excelize reads anything: the file size; the file
// signature (a zip, not an OLE container, which is what an encrypted
// workbook is); the zip directory (a workbook part, the number of parts,
// each part's and the total declared unpacked size, the shared strings'
// size); then every part is unpacked once, counting the bytes it really
// holds, since a directory can lie, and every worksheet is scanned for its
// highest row and column and its cells per row. Only then does excelize
// open the file, with its own unpacked size limits set from the same
// Limits, and read the sheet one row at a time.
//
// An *os.File is opened again by its name, so excelize reads it from disk;
// any other io.ReaderAt (or a file no longer under its name) is copied into
// memory for excelize (at most Limits.FileSize bytes).
//
// Cell values are raw: a formula's cached value (formulas are never
// evaluated), a date's serial number, a boolean's 1 or 0, a shared string's
// text.
func OpenXLSX(r io.ReaderAt, size int64, opts TableOptions) (*XLSXTable, error) {
	lim := opts.Limits.withDefaults()
	if err := checkXLSX(r, size, lim); err != nil {
		return nil, err
	}
	xo := excelize.Options{
		RawCellValue:      true,
		UnzipSizeLimit:    lim.UncompressedSize,
		UnzipXMLSizeLimit: min(xlsxUnzipXMLLimit, lim.UncompressedSize),
		TmpDir:            opts.TempDir,
	}
	var (
		f   *excelize.File
		err error
	)
	file, isFile := r.(*os.File)
	if isFile {
		f, err = excelize.OpenFile(file.Name(), xo)
	}
	if !isFile || errors.Is(err, fs.ErrNotExist) {
		// Not a file, or one removed from its directory while open.
		f, err = excelize.OpenReader(io.NewSectionReader(r, 0, size), xo)
	}
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("ingest: %w: %v", ErrCorrupt, err)
	}
	t, err := openSheet(f, opts, lim)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return t, nil
}

// OpenXLSXFile opens the workbook at path as OpenXLSX does.
func OpenXLSXFile(path string, opts TableOptions) (*XLSXTable, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	return OpenXLSX(file, fi.Size(), opts)
}

func openSheet(f *excelize.File, opts TableOptions, lim Limits) (*XLSXTable, error) {
	t := &XLSXTable{f: f, sheets: f.GetSheetList(), lim: lim}
	if len(t.sheets) == 0 {
		return nil, fmt.Errorf("ingest: %w: the workbook has no sheets", ErrNoSheet)
	}
	t.sheet = t.sheets[0]
	if opts.Sheet != "" {
		i := slices.IndexFunc(t.sheets, func(s string) bool { return strings.EqualFold(s, opts.Sheet) })
		if i < 0 {
			return nil, fmt.Errorf("ingest: %w: no sheet %q (sheets: %s)", ErrNoSheet, opts.Sheet, strings.Join(t.sheets, ", "))
		}
		t.sheet = t.sheets[i]
	}
	props, err := f.GetWorkbookProps()
	if err != nil {
		return nil, fmt.Errorf("ingest: %w: %v", ErrCorrupt, err)
	}
	t.date1904 = props.Date1904 != nil && *props.Date1904
	if t.rows, err = f.Rows(t.sheet); err != nil {
		return nil, fmt.Errorf("ingest: %w: %v", ErrCorrupt, err)
	}
	for t.sheetRow < opts.headerRow() {
		values, err := t.row()
		if err == io.EOF {
			return nil, fmt.Errorf("ingest: %w: sheet %q ends before row %d", ErrNoHeader, t.sheet, opts.headerRow())
		}
		if err != nil {
			return nil, err
		}
		if t.sheetRow == opts.headerRow() {
			if t.cols, err = headerColumns(values, t.sheetRow); err != nil {
				return nil, fmt.Errorf("ingest: sheet %q: %w", t.sheet, err)
			}
		}
	}
	return t, nil
}

// row reads the next sheet row's values. excelize yields every row number
// up to the last row present, missing rows as empty ones, so the count of
// rows read is the sheet row number.
func (t *XLSXTable) row() ([]string, error) {
	if !t.rows.Next() {
		if err := t.rows.Error(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, io.EOF
	}
	t.sheetRow++
	if t.sheetRow > t.lim.Rows {
		return nil, &LimitError{Limit: "rows", Max: int64(t.lim.Rows), At: "sheet " + t.sheet}
	}
	values, err := t.rows.Columns(excelize.Options{RawCellValue: true})
	if err != nil {
		return nil, fmt.Errorf("%w: row %d: %v", ErrCorrupt, t.sheetRow, err)
	}
	if len(values) > t.lim.Columns {
		return nil, &LimitError{Limit: "columns", Max: int64(t.lim.Columns), At: fmt.Sprintf("sheet %s row %d", t.sheet, t.sheetRow)}
	}
	return values, nil
}

// Columns answers the columns the header row names.
func (t *XLSXTable) Columns() []Column { return t.cols }

// Next answers the next row that is not blank.
func (t *XLSXTable) Next() (TableRow, error) {
	if t.err != nil {
		return TableRow{}, t.err
	}
	for {
		values, err := t.row()
		if err != nil {
			t.err = err
			return TableRow{}, err
		}
		if cells, ok := tableRow(t.cols, values, t.sheetRow); ok {
			t.n++
			return TableRow{Num: t.n, SheetRow: t.sheetRow, Cells: cells}, nil
		}
	}
}

// Sheet answers the name of the sheet being read.
func (t *XLSXTable) Sheet() string { return t.sheet }

// Sheets answers the names of the workbook's sheets, in order.
func (t *XLSXTable) Sheets() []string { return slices.Clone(t.sheets) }

// Date1904 reports whether the workbook counts dates from 1904 (old Mac
// Excel) rather than 1900.
func (t *XLSXTable) Date1904() bool { return t.date1904 }

// Converter answers the Converter for this workbook's cells: serial
// numbers are dates, counted in the workbook's date system.
func (t *XLSXTable) Converter() Converter {
	return Converter{Serials: true, Date1904: t.date1904}
}

// Close releases the iterator and excelize's temporary files.
func (t *XLSXTable) Close() error {
	return errors.Join(t.rows.Close(), t.f.Close())
}

// checkXLSX refuses a hostile or broken workbook before excelize sees it.
func checkXLSX(r io.ReaderAt, size int64, lim Limits) error {
	if size > lim.FileSize {
		return fmt.Errorf("ingest: %w", &LimitError{Limit: "file size", Max: lim.FileSize})
	}
	head := make([]byte, len(oleSignature))
	if n, _ := r.ReadAt(head, 0); n < 4 {
		return fmt.Errorf("ingest: %w", ErrNotZip)
	}
	if bytes.Equal(head, oleSignature) {
		return fmt.Errorf("ingest: %w", ErrEncrypted)
	}
	if !bytes.HasPrefix(head, []byte("PK")) {
		return fmt.Errorf("ingest: %w", ErrNotZip)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("ingest: %w: %v", ErrNotZip, err)
	}
	if len(zr.File) > lim.Entries {
		return fmt.Errorf("ingest: %w", &LimitError{Limit: "entries", Max: int64(lim.Entries)})
	}
	var total uint64
	workbook := false
	for _, zf := range zr.File {
		name := partName(zf.Name)
		declared := zf.UncompressedSize64
		total += declared
		if declared > uint64(lim.UncompressedSize) || total > uint64(lim.UncompressedSize) {
			return fmt.Errorf("ingest: %w", &LimitError{Limit: "uncompressed size", Max: lim.UncompressedSize, At: zf.Name})
		}
		if max := partMax(name, lim); declared > uint64(max) {
			return fmt.Errorf("ingest: %w", partLimit(name, lim, zf.Name))
		}
		workbook = workbook || name == "xl/workbook.xml"
	}
	if !workbook {
		return fmt.Errorf("ingest: %w", ErrNotWorkbook)
	}
	var unpacked int64
	for _, zf := range zr.File {
		if err := checkPart(zf, lim, &unpacked); err != nil {
			return err
		}
	}
	return nil
}

// partName is a part's name as excelize matches it.
func partName(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "\\", "/"))
}

func isWorksheet(name string) bool {
	return strings.HasPrefix(name, "xl/worksheets/") && strings.HasSuffix(name, ".xml")
}

// partMax is the unpacked size one part may have.
func partMax(name string, lim Limits) int64 {
	switch {
	case name == "xl/sharedstrings.xml":
		return lim.SharedStringsSize
	case isWorksheet(name):
		return lim.UncompressedSize
	}
	return lim.PartSize
}

func partLimit(name string, lim Limits, at string) *LimitError {
	if name == "xl/sharedstrings.xml" {
		return &LimitError{Limit: "shared strings size", Max: lim.SharedStringsSize, At: at}
	}
	return &LimitError{Limit: "part size", Max: lim.PartSize, At: at}
}

// checkPart unpacks one part, counting its bytes against the limits and
// scanning a worksheet's rows and cells. It decompresses the raw data
// itself rather than through zip.File.Open, which stops at the size the
// directory declares: here the declared size is the zip's claim, and the
// bytes unpacked are the fact. A part whose bytes differ from its declared
// size or checksum is corrupt.
func checkPart(zf *zip.File, lim Limits, unpacked *int64) error {
	if zf.FileInfo().IsDir() {
		return nil
	}
	name := partName(zf.Name)
	raw, err := zf.OpenRaw()
	if err != nil {
		return fmt.Errorf("ingest: %w: %s: %v", ErrCorrupt, zf.Name, err)
	}
	var data io.Reader
	switch zf.Method {
	case zip.Store:
		data = raw
	case zip.Deflate:
		fr := flate.NewReader(raw)
		defer fr.Close()
		data = fr
	default:
		return fmt.Errorf("ingest: %w: %s: compression method %d", ErrCorrupt, zf.Name, zf.Method)
	}
	pr := &partReader{r: data, crc: crc32.NewIEEE(), total: unpacked, lim: lim, max: partMax(name, lim), name: name, at: zf.Name}
	if isWorksheet(name) {
		err = scanSheet(pr, lim, zf.Name)
		if err == nil {
			// The scan stops at the end of the XML; count what follows.
			_, err = io.Copy(io.Discard, pr)
		}
	} else {
		_, err = io.Copy(io.Discard, pr)
	}
	var le *LimitError
	switch {
	case errors.As(err, &le):
		return fmt.Errorf("ingest: %w", le)
	case err != nil:
		return fmt.Errorf("ingest: %w: %s: %v", ErrCorrupt, zf.Name, err)
	case uint64(pr.n) != zf.UncompressedSize64:
		return fmt.Errorf("ingest: %w: %s unpacks to %d bytes, its directory entry says %d", ErrCorrupt, zf.Name, pr.n, zf.UncompressedSize64)
	case pr.crc.Sum32() != zf.CRC32:
		return fmt.Errorf("ingest: %w: %s fails its checksum", ErrCorrupt, zf.Name)
	}
	return nil
}

// partReader counts the bytes one part unpacks to, and all parts together.
type partReader struct {
	r     io.Reader
	crc   hash.Hash32
	n     int64
	total *int64
	max   int64
	lim   Limits
	name  string
	at    string
}

func (p *partReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.crc.Write(b[:n])
	p.n += int64(n)
	*p.total += int64(n)
	switch {
	case *p.total > p.lim.UncompressedSize:
		return n, &LimitError{Limit: "uncompressed size", Max: p.lim.UncompressedSize, At: p.at}
	case p.n > p.max:
		return n, partLimit(p.name, p.lim, p.at)
	}
	return n, err
}
