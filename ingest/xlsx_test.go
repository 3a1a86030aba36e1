package ingest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/records"
)

// newWorkbook builds an xlsx file in memory with excelize; fill writes to
// it.
func newWorkbook(tb testing.TB, fill func(f *excelize.File)) []byte {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	fill(f)
	buf, err := f.WriteToBuffer()
	require.NoError(tb, err)
	return buf.Bytes()
}

// set writes a row of values starting at cell.
func set(tb testing.TB, f *excelize.File, sheet, cell string, values ...any) {
	tb.Helper()
	require.NoError(tb, f.SetSheetRow(sheet, cell, &values))
}

// part is one zip entry of a hand-built archive.
type part struct {
	name string
	data string
	// declared, when not zero, is the unpacked size the directory claims.
	declared uint64
}

// zipOf builds a zip archive of parts, deflated.
func zipOf(tb testing.TB, parts ...part) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		var comp bytes.Buffer
		fw, err := flate.NewWriter(&comp, flate.BestSpeed)
		require.NoError(tb, err)
		_, err = io.WriteString(fw, p.data)
		require.NoError(tb, err)
		require.NoError(tb, fw.Close())
		size := uint64(len(p.data))
		if p.declared != 0 {
			size = p.declared
		}
		w, err := zw.CreateRaw(&zip.FileHeader{
			Name: p.name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte(p.data)),
			CompressedSize64: uint64(comp.Len()), UncompressedSize64: size,
		})
		require.NoError(tb, err)
		_, err = w.Write(comp.Bytes())
		require.NoError(tb, err)
	}
	require.NoError(tb, zw.Close())
	return buf.Bytes()
}

// withPart answers the xlsx file with the part name replaced (or added).
func withPart(tb testing.TB, xlsx []byte, name, data string) []byte {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(xlsx), int64(len(xlsx)))
	require.NoError(tb, err)
	var parts []part
	for _, zf := range zr.File {
		if zf.Name == name {
			continue
		}
		rc, err := zf.Open()
		require.NoError(tb, err)
		b, err := io.ReadAll(rc)
		require.NoError(tb, err)
		parts = append(parts, part{name: zf.Name, data: string(b)})
	}
	return zipOf(tb, append(parts, part{name: name, data: data})...)
}

// sheetXML is a worksheet part holding rows, in SpreadsheetML.
func sheetXML(rows string) string {
	return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>` +
		rows + `</sheetData></worksheet>`
}

func openBytes(tb testing.TB, b []byte, opts TableOptions) (*XLSXTable, error) {
	tb.Helper()
	t, err := OpenXLSX(bytes.NewReader(b), int64(len(b)), opts)
	if err == nil {
		tb.Cleanup(func() { require.NoError(tb, t.Close()) })
	}
	return t, err
}

// readTable reads t to its end.
func readTable(tb testing.TB, t Table) ([]TableRow, error) {
	tb.Helper()
	var rows []TableRow
	for {
		r, err := t.Next()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, r)
	}
}

func TestXLSXTable(t *testing.T) {
	close := time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC)
	b := newWorkbook(t, func(f *excelize.File) {
		set(t, f, "Sheet1", "A1", "Name", " Amount ", nil, "Close Date", "Won")
		set(t, f, "Sheet1", "A2", "Acme", 1200.5, "ignored: no header", close, true)
		set(t, f, "Sheet1", "A4", "Beta", "1,234", nil, "2025-07-01", false)
		set(t, f, "Sheet1", "F5", "beyond the header")
		_, err := f.NewSheet("Deals")
		require.NoError(t, err)
		set(t, f, "Deals", "B3", "Deal")
		set(t, f, "Deals", "B4", "Gamma")
	})
	tab, err := openBytes(t, b, TableOptions{})
	require.NoError(t, err)
	require.Equal(t, "Sheet1", tab.Sheet())
	require.Equal(t, []string{"Sheet1", "Deals"}, tab.Sheets())
	require.False(t, tab.Date1904())
	require.Equal(t, Converter{Serials: true}, tab.Converter())
	require.Equal(t, []Column{
		{Index: 0, Letter: "A", Header: "Name"},
		{Index: 1, Letter: "B", Header: "Amount"},
		{Index: 3, Letter: "D", Header: "Close Date"},
		{Index: 4, Letter: "E", Header: "Won"},
	}, tab.Columns())
	rows, err := readTable(t, tab)
	require.NoError(t, err)
	require.Equal(t, []TableRow{
		{Num: 1, SheetRow: 2, Cells: []Cell{{"A2", "Acme"}, {"B2", "1200.5"}, {"D2", "45838"}, {"E2", "1"}}},
		{Num: 2, SheetRow: 4, Cells: []Cell{{"A4", "Beta"}, {"B4", "1,234"}, {"D4", "2025-07-01"}, {"E4", "0"}}},
	}, rows, "row 3 is missing and row 5 has nothing under a header: neither is a data row")
	_, err = tab.Next()
	require.Equal(t, io.EOF, err)

	deals, err := openBytes(t, b, TableOptions{Sheet: "deals", HeaderRow: 3})
	require.NoError(t, err)
	require.Equal(t, "Deals", deals.Sheet())
	require.Equal(t, []Column{{Index: 1, Letter: "B", Header: "Deal"}}, deals.Columns())
	rows, err = readTable(t, deals)
	require.NoError(t, err)
	require.Equal(t, []TableRow{{Num: 1, SheetRow: 4, Cells: []Cell{{"B4", "Gamma"}}}}, rows)

	_, err = openBytes(t, b, TableOptions{Sheet: "Nope"})
	require.ErrorIs(t, err, ErrNoSheet)
	require.ErrorIs(t, err, ErrRefused)
	require.EqualError(t, err, `ingest: the workbook has no such sheet: no sheet "Nope" (sheets: Sheet1, Deals)`)

	_, err = openBytes(t, b, TableOptions{HeaderRow: 9})
	require.ErrorIs(t, err, ErrNoHeader)
	_, err = openBytes(t, b, TableOptions{HeaderRow: 3})
	require.ErrorIs(t, err, ErrNoHeader, "row 3 is empty")
}

// Formulas are read as the value Excel cached, never evaluated; a formula
// without a cached value is an empty cell.
func TestXLSXFormulasAreCachedValues(t *testing.T) {
	b := newWorkbook(t, func(f *excelize.File) { set(t, f, "Sheet1", "A1", "x") })
	b = withPart(t, b, "xl/worksheets/sheet1.xml", sheetXML(
		`<row r="1"><c r="A1" t="inlineStr"><is><t>Total</t></is></c><c r="B1" t="inlineStr"><is><t>Label</t></is></c></row>`+
			`<row r="2"><c r="A2"><f>1+1</f><v>41</v></c><c r="B2" t="str"><f>UPPER("a")</f><v>cached</v></c></row>`+
			`<row r="3"><c r="A3"><f>SUM(A1:A2)</f></c><c r="B3" t="inlineStr"><is><t>x</t></is></c></row>`))
	tab, err := openBytes(t, b, TableOptions{})
	require.NoError(t, err)
	rows, err := readTable(t, tab)
	require.NoError(t, err)
	require.Equal(t, []TableRow{
		{Num: 1, SheetRow: 2, Cells: []Cell{{"A2", "41"}, {"B2", "cached"}}},
		{Num: 2, SheetRow: 3, Cells: []Cell{{"A3", ""}, {"B3", "x"}}},
	}, rows)
}

func TestXLSXDate1904(t *testing.T) {
	yes := true
	b := newWorkbook(t, func(f *excelize.File) {
		require.NoError(t, f.SetWorkbookProps(&excelize.WorkbookPropsOptions{Date1904: &yes}))
		set(t, f, "Sheet1", "A1", "d")
		set(t, f, "Sheet1", "A2", 44376)
	})
	tab, err := openBytes(t, b, TableOptions{})
	require.NoError(t, err)
	require.True(t, tab.Date1904())
	row, err := tab.Next()
	require.NoError(t, err)
	v, err := tab.Converter().Convert(&recordsDateField, row.Cells[0].Value)
	require.NoError(t, err)
	require.Equal(t, "2025-06-30", v)
}

func TestOpenXLSXFile(t *testing.T) {
	b := newWorkbook(t, func(f *excelize.File) {
		set(t, f, "Sheet1", "A1", "Name")
		for i := 2; i <= 50; i++ {
			set(t, f, "Sheet1", fmt.Sprintf("A%d", i), fmt.Sprintf("n%d", i))
		}
	})
	path := filepath.Join(t.TempDir(), "book.xlsx")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	tab, err := OpenXLSXFile(path, TableOptions{TempDir: t.TempDir()})
	require.NoError(t, err)
	rows, err := readTable(t, tab)
	require.NoError(t, err)
	require.Len(t, rows, 49)
	require.Equal(t, TableRow{Num: 49, SheetRow: 50, Cells: []Cell{{"A50", "n50"}}}, rows[48])
	require.NoError(t, tab.Close())

	_, err = OpenXLSXFile(filepath.Join(t.TempDir(), "missing.xlsx"), TableOptions{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

// Hostile and broken files are refused before excelize opens them, each
// with an error an API can answer with a 4xx.
func TestXLSXRefused(t *testing.T) {
	good := newWorkbook(t, func(f *excelize.File) {
		set(t, f, "Sheet1", "A1", "Name", "Notes")
		for i := 2; i <= 20; i++ {
			set(t, f, "Sheet1", fmt.Sprintf("A%d", i), fmt.Sprintf("name %d", i), strings.Repeat("s", 100)+fmt.Sprint(i))
		}
	})
	zeros := strings.Repeat("\x00", 4<<20)
	small := Limits{UncompressedSize: 1 << 20}
	for _, tc := range []struct {
		name  string
		file  []byte
		lim   Limits
		is    error
		limit string // the LimitError's Limit, when one
	}{
		{"not a zip", []byte("name,amount\nAcme,1\n"), Limits{}, ErrNotZip, ""},
		{"tiny", []byte("PK"), Limits{}, ErrNotZip, ""},
		{"zip signature, broken zip", []byte("PK\x03\x04 and then nothing a zip holds"), Limits{}, ErrNotZip, ""},
		{"encrypted", append([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, make([]byte, 504)...), Limits{}, ErrEncrypted, ""},
		{"zip but no workbook", zipOf(t, part{name: "word/document.xml", data: "<w/>"}), Limits{}, ErrNotWorkbook, ""},
		{"file size", good, Limits{FileSize: 1000}, nil, "file size"},
		{"entries", good, Limits{Entries: 3}, nil, "entries"},
		{"zip bomb declared", withPart(t, good, "xl/media/image1.png", zeros), small, nil, "uncompressed size"},
		{"zip bomb lying directory", withPartDeclared(t, good, "xl/media/image1.png", zeros, 10), small, nil, "uncompressed size"},
		{"lying directory within limits", withPartDeclared(t, good, "xl/media/image1.png", zeros, 10), Limits{}, ErrCorrupt, ""},
		{"part size", withPart(t, good, "xl/media/image1.png", zeros), Limits{PartSize: 1 << 20}, nil, "part size"},
		{"shared strings", good, Limits{SharedStringsSize: 1000}, nil, "shared strings size"},
		{"rows", good, Limits{Rows: 10}, nil, "rows"},
		{"row number far down", withPart(t, good, "xl/worksheets/sheet1.xml", sheetXML(`<row r="1048576"><c r="A1048576"><v>1</v></c></row>`)), Limits{Rows: 1000}, nil, "rows"},
		{"row number after a quoted >", withPart(t, good, "xl/worksheets/sheet1.xml", sheetXML(`<row spans='1>2' r = "5000"><c r="A5000"><v>1</v></c></row>`)), Limits{Rows: 1000}, nil, "rows"},
		{"columns", withPart(t, good, "xl/worksheets/sheet1.xml", sheetXML(`<row r="1"><c r="ZZ1"><v>1</v></c></row>`)), Limits{Columns: 100}, nil, "columns"},
		{"columns without refs", withPart(t, good, "xl/worksheets/sheet1.xml", sheetXML(`<row>`+strings.Repeat(`<c><v>1</v></c>`, 30)+`</row>`)), Limits{Columns: 20}, nil, "columns"},
		{"cells per row", withPart(t, good, "xl/worksheets/sheet1.xml", sheetXML(`<x:row r="1">`+strings.Repeat(`<x:c r="A1"><x:v>1</x:v></x:c>`, 50)+`</x:row>`)), Limits{CellsPerRow: 10}, nil, "cells per row"},
		{"corrupt sheet data", corruptPart(t, good, "xl/worksheets/sheet1.xml"), Limits{}, ErrCorrupt, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openBytes(t, tc.file, TableOptions{Limits: tc.lim})
			require.Error(t, err)
			require.ErrorIs(t, err, ErrRefused)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
				return
			}
			var le *LimitError
			require.ErrorAs(t, err, &le)
			require.Equal(t, tc.limit, le.Limit, err.Error())
			require.Contains(t, err.Error(), "over the "+tc.limit+" limit of ")
		})
	}
}

// Text that only looks like rows (in comments, CDATA, attribute values)
// does not count against the limits, and the file opens.
func TestXLSXScanSkipsNonElements(t *testing.T) {
	b := newWorkbook(t, func(f *excelize.File) { set(t, f, "Sheet1", "A1", "x") })
	b = withPart(t, b, "xl/worksheets/sheet1.xml", sheetXML(
		`<!-- <row r="999999"> --><?pi <row r="999999"?>`+
			`<row r="1"><c r="A1" t="inlineStr"><is><t><![CDATA[<row r="999999"><c r="ZZZ1">]]></t></is></c></row>`+
			`<row r="2"><c r="A2" t="inlineStr"><is><t>&lt;row r="999999"&gt;</t></is></c></row>`))
	tab, err := openBytes(t, b, TableOptions{Limits: Limits{Rows: 10, Columns: 5}})
	require.NoError(t, err)
	require.Equal(t, `<row r="999999"><c r="ZZZ1">`, tab.Columns()[0].Header)
	rows, err := readTable(t, tab)
	require.NoError(t, err)
	require.Equal(t, []TableRow{{Num: 1, SheetRow: 2, Cells: []Cell{{"A2", `<row r="999999">`}}}}, rows)
}

// withPartDeclared adds a part whose directory entry claims declared bytes.
func withPartDeclared(tb testing.TB, xlsx []byte, name, data string, declared uint64) []byte {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(xlsx), int64(len(xlsx)))
	require.NoError(tb, err)
	var parts []part
	for _, zf := range zr.File {
		rc, err := zf.Open()
		require.NoError(tb, err)
		b, err := io.ReadAll(rc)
		require.NoError(tb, err)
		parts = append(parts, part{name: zf.Name, data: string(b)})
	}
	return zipOf(tb, append(parts, part{name: name, data: data, declared: declared})...)
}

// corruptPart flips bytes in the middle of a part's compressed data.
func corruptPart(tb testing.TB, xlsx []byte, name string) []byte {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(xlsx), int64(len(xlsx)))
	require.NoError(tb, err)
	for _, zf := range zr.File {
		if zf.Name != name {
			continue
		}
		off, err := zf.DataOffset()
		require.NoError(tb, err)
		out := bytes.Clone(xlsx)
		for i := off + int64(zf.CompressedSize64)/2; i < off+int64(zf.CompressedSize64)/2+8; i++ {
			out[i] ^= 0xFF
		}
		return out
	}
	tb.Fatalf("no part %s", name)
	return nil
}

// A limit passed while reading rows (here excelize's own row count, which
// the pre-scan also checks) ends the table with the same typed error.
func TestXLSXLimitWhileReading(t *testing.T) {
	b := newWorkbook(t, func(f *excelize.File) {
		set(t, f, "Sheet1", "A1", "n")
		for i := 2; i <= 12; i++ {
			set(t, f, "Sheet1", fmt.Sprintf("A%d", i), i)
		}
	})
	tab, err := openBytes(t, b, TableOptions{Limits: Limits{Rows: 20}})
	require.NoError(t, err)
	tab.lim.Rows = 5
	rows, err := readTable(t, tab)
	require.Len(t, rows, 4)
	var le *LimitError
	require.ErrorAs(t, err, &le)
	require.Equal(t, "rows", le.Limit)
	_, again := tab.Next()
	require.True(t, errors.Is(again, ErrRefused))
}

var recordsDateField = records.Field{Name: "d", Type: records.TypeDate}

// A temporary file removed from its directory while open (as uploads are
// often kept) is still read.
func TestOpenXLSXUnlinkedFile(t *testing.T) {
	b := newWorkbook(t, func(f *excelize.File) {
		set(t, f, "Sheet1", "A1", "Name")
		set(t, f, "Sheet1", "A2", "Acme")
	})
	file, err := os.CreateTemp(t.TempDir(), "upload-*.xlsx")
	require.NoError(t, err)
	defer file.Close()
	_, err = file.Write(b)
	require.NoError(t, err)
	require.NoError(t, os.Remove(file.Name()))
	tab, err := OpenXLSX(file, int64(len(b)), TableOptions{})
	require.NoError(t, err)
	defer tab.Close()
	rows, err := readTable(t, tab)
	require.NoError(t, err)
	require.Equal(t, []TableRow{{Num: 1, SheetRow: 2, Cells: []Cell{{"A2", "Acme"}}}}, rows)
}
