package ingest

import (
	"errors"
	"fmt"
)

// Limits bound what an import file may hold. Zero fields take the
// defaults below.
type Limits struct {
	// FileSize caps the file as uploaded. Default 100 MiB.
	FileSize int64
	// UncompressedSize caps the sum of an xlsx file's unpacked parts: the
	// sizes its zip directory declares, and the bytes actually unpacked.
	// Default 1 GiB.
	UncompressedSize int64
	// SharedStringsSize caps xl/sharedStrings.xml unpacked. Default 256 MiB.
	SharedStringsSize int64
	// PartSize caps each other part excelize keeps in memory (everything but
	// worksheets and shared strings: styles, the workbook, media). Default
	// 64 MiB.
	PartSize int64
	// Entries caps the number of parts in the zip. Default 10,000.
	Entries int
	// Rows caps the highest row number of a sheet (or a CSV's records).
	// Default 1,048,576, Excel's own limit.
	Rows int
	// Columns caps the highest column of any cell. Default 1,000 (Excel
	// allows 16,384).
	Columns int
	// CellsPerRow caps the cell elements of one row, which a hostile sheet
	// can repeat at one reference. Default 1,000.
	CellsPerRow int
	// RowBytes caps one CSV record. Default DefaultMaxRowBytes.
	RowBytes int
}

// The default Limits.
const (
	DefaultFileSize          = 100 << 20
	DefaultUncompressedSize  = 1 << 30
	DefaultSharedStringsSize = 256 << 20
	DefaultPartSize          = 64 << 20
	DefaultEntries           = 10000
	DefaultRows              = 1 << 20
	DefaultColumns           = 1000
	DefaultCellsPerRow       = 1000
)

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.FileSize, DefaultFileSize)
	def(&l.UncompressedSize, DefaultUncompressedSize)
	def(&l.SharedStringsSize, DefaultSharedStringsSize)
	def(&l.PartSize, DefaultPartSize)
	defi(&l.Entries, DefaultEntries)
	defi(&l.Rows, DefaultRows)
	defi(&l.Columns, DefaultColumns)
	defi(&l.CellsPerRow, DefaultCellsPerRow)
	defi(&l.RowBytes, DefaultMaxRowBytes)
	return l
}

// ErrRefused is matched by every error that refuses a file for what it is
// rather than for a fault of the server: not a workbook, encrypted,
// corrupt, no such sheet, no header, or over a limit (*LimitError). An API
// answers it with a 4xx: 413 for a *LimitError, 400 or 422 otherwise.
// ErrMalformed (input that does not parse) and ErrMapping are the client's
// errors too.
var ErrRefused = errors.New("file refused")

// refusal is a sentinel that also matches ErrRefused.
type refusal string

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == ErrRefused }

// Reasons a spreadsheet is refused before excelize reads it. Each matches
// ErrRefused too.
var (
	ErrNotZip      error = refusal("not an xlsx file: not a zip archive")
	ErrNotWorkbook error = refusal("not an xlsx workbook: the archive has no xl/workbook.xml")
	ErrEncrypted   error = refusal("the workbook is encrypted (or a legacy .xls file): save it without a password as .xlsx")
	ErrCorrupt     error = refusal("the workbook is corrupt")
	ErrNoSheet     error = refusal("the workbook has no such sheet")
)

// LimitError says a file passes one of its Limits. It matches ErrRefused.
type LimitError struct {
	Limit string // "file size", "uncompressed size", "shared strings size", "part size", "entries", "rows", "columns", "cells per row"
	Max   int64
	At    string // where it was found: a part name or a row, when known
}

func (e *LimitError) Error() string {
	s := fmt.Sprintf("over the %s limit of %d", e.Limit, e.Max)
	if e.At != "" {
		s += " (" + e.At + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *LimitError) Is(target error) bool { return target == ErrRefused }
