// Package ingest reads what bulk jobs and spreadsheet imports bring in:
// rows of JSON, NDJSON and CSV, and sheets of xlsx workbooks, one row at a
// time, and turns spreadsheet cells into field values.
//
// # Bulk rows
//
// A RowReader (NewRowReader, NewJSONRows, NewNDJSONRows, NewCSVRows) answers
// one Row at a time and never holds more than one row of its input:
//
//   - json: one array of rows, read with the decoder's tokens element by
//     element.
//   - ndjson: one row per line; blank lines are skipped.
//   - csv: a header of field names, then one record per row. An empty cell
//     leaves its field out. A UTF-8 byte order mark is skipped.
//
// A JSON row is {"fields":{…}}, optionally with "id" beside "fields", or a
// plain object of fields. The "id" (IDField) of either form, or an "id" CSV
// column, names the record an update or delete works on and comes out as
// Row.ID. Numbers are decoded exactly (json.Decoder.UseNumber) and then made
// float64 when that keeps their value, which is every number of up to 15
// significant digits; others, such as the 18-digit ids some shops use, stay
// json.Number with every digit (see Number). Row.Num counts data rows from
// 1; Row.Line is the input line a row starts on.
//
// A row that is faulty on its own (not an object, an NDJSON line that does
// not parse or is too long, a CSV record with the wrong number of columns)
// comes back with Row.Err set, and reading goes on: in a partial job that
// row fails alone. Input that cannot be read further (a JSON syntax error,
// a CSV quoting error) ends the reader with a *RowError naming the row and
// line. ResultWriter writes a job's results back as CSV: the input columns
// plus record_id and action, or error.
//
// # Spreadsheets
//
// A Table reads a header row and then data rows, each cell with its
// reference ("C7") and each row with the number the spreadsheet shows for
// it. OpenXLSX reads one sheet of a workbook with excelize's streaming row
// iterator; NewCSVTable reads a CSV file the same way. Blank rows are
// skipped. Cell values are raw: formulas are their cached values (never
// evaluated) and dates their serial numbers, which the Converter reads.
//
// Hostile workbooks are refused before excelize opens them, with errors
// matching ErrRefused: ErrNotZip, ErrNotWorkbook, ErrEncrypted, ErrCorrupt,
// and *LimitError naming the limit passed (file size, uncompressed size
// declared or actually unpacked, shared strings size, part size, entries,
// rows, columns, cells per row). Limits holds the limits and their
// defaults. A limit found while reading rows ends the table with the same
// *LimitError, so an import that reads its whole file before writing
// writes nothing from a file over a limit.
//
// # Cells to fields
//
// AutoMap maps columns to an object's fields by name, ignoring case,
// spaces, underscores and hyphens, with an explicit {"Column header":
// "field"} mapping deciding where given; it reports unmapped columns.
// Converter turns a cell's text into the value of a field's type (see
// Converter for each type's forms, including slash dates and Excel
// serials). A cell that does not convert is a *CellError naming the column
// and the cell:
//
//	column "Amount" (C7): "abc" is not a number
//
// NewTableRows joins the two: it reads a Table as a RowReader of converted
// rows, so an import runs through the same code as a bulk job.
package ingest
