package ingest

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

// readRows reads r to its end and answers the rows and the error that
// ended it (nil for io.EOF).
func readRows(tb testing.TB, r RowReader) ([]Row, error) {
	tb.Helper()
	var rows []Row
	for {
		row, err := r.Next()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			again, err2 := r.Next()
			require.Equal(tb, Row{}, again)
			require.Equal(tb, err, err2, "a fatal error is returned again")
			return rows, err
		}
		rows = append(rows, row)
		if len(rows) > 1e6 {
			tb.Fatal("too many rows")
		}
	}
}

func TestJSONRows(t *testing.T) {
	in := "\ufeff[\n" +
		`{"fields":{"name":"Acme","amount":1200.5,"big":820982911946154508}},` + "\n" +
		`{"id":"rec_1","fields":{"stage":"Closed Won","n":null}},` + "\n" +
		`  {"name":"Plain","id":"rec_2","tags":["a",1]},` + "\n" +
		`42, {"fields":{"a":1},"extra":true}, {"fields":{"id":"x"},"id":"y"}, {"id":7}` + "\n]\n"
	rows, err := readRows(t, NewJSONRows(strings.NewReader(in), RowOptions{}))
	require.NoError(t, err)
	require.Len(t, rows, 7)
	for i, r := range rows {
		require.Equal(t, i+1, r.Num)
	}
	require.Equal(t, records.Fields{"name": "Acme", "amount": 1200.5, "big": json.Number("820982911946154508")}, rows[0].Fields)
	require.Equal(t, 2, rows[0].Line)
	require.Equal(t, "rec_1", rows[1].ID)
	require.Equal(t, records.Fields{"stage": "Closed Won", "n": nil}, rows[1].Fields)
	require.Equal(t, 3, rows[1].Line)
	require.Equal(t, "rec_2", rows[2].ID)
	require.Equal(t, records.Fields{"name": "Plain", "tags": []any{"a", 1.0}}, rows[2].Fields)
	require.Equal(t, 4, rows[2].Line)
	for _, r := range rows[:3] {
		require.NoError(t, r.Err)
		require.Nil(t, r.Columns)
	}
	for _, r := range rows[3:] {
		require.ErrorIs(t, r.Err, ErrMalformed)
		var re *RowError
		require.ErrorAs(t, r.Err, &re)
		require.Equal(t, r.Num, re.Row)
		require.Equal(t, 5, re.Line)
	}
	require.Contains(t, rows[3].Err.Error(), "row 4 (line 5): malformed input: a row is a JSON object")
	require.Contains(t, rows[4].Err.Error(), `unknown member "extra"`)
	require.Contains(t, rows[5].Err.Error(), `"id" given twice`)
	require.Contains(t, rows[6].Err.Error(), `"id" must be a string`)
}

func TestJSONRowsFatal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		rows     int
		is       error
		msg      string
	}{
		{"syntax", "[\n{\"a\":1},\n{\"a\":}\n]", 1, ErrMalformed, "row 2 (line 3): malformed input: invalid character '}'"},
		{"not an array", `{"a":1}`, 0, ErrMalformed, "row 1 (line 1): malformed input: a json job is an array of rows"},
		{"truncated", `[{"a":1},{"b"`, 1, ErrMalformed, "row 2 (line 1): malformed input: unexpected end of input"},
		{"after the array", "[{\"a\":1}]\n[]", 1, ErrMalformed, "row 2 (line 2): malformed input: [ after the array"},
		{"row too large", `[{"a":"` + strings.Repeat("x", 10000) + `"}]`, 0, ErrRowTooLarge, "row 1 (line 1): row too large: longer than 100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := readRows(t, NewJSONRows(strings.NewReader(tc.in), RowOptions{MaxRowBytes: 100}))
			require.Len(t, rows, tc.rows)
			require.ErrorIs(t, err, tc.is)
			var re *RowError
			require.ErrorAs(t, err, &re)
			require.True(t, strings.HasPrefix(err.Error(), tc.msg), err.Error())
		})
	}
}

func TestJSONRowsEdges(t *testing.T) {
	for _, in := range []string{"", "  \n", "[]", " [ ] "} {
		rows, err := readRows(t, NewJSONRows(strings.NewReader(in), RowOptions{}))
		require.NoError(t, err, "%q", in)
		require.Empty(t, rows)
	}
	// A row a little over the limit but within the decoder's budget is
	// read whole and fails alone.
	in := `[{"a":"` + strings.Repeat("x", 120) + `"},{"b":2}]`
	rows, err := readRows(t, NewJSONRows(strings.NewReader(in), RowOptions{MaxRowBytes: 100}))
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.ErrorIs(t, rows[0].Err, ErrRowTooLarge)
	require.Equal(t, records.Fields{"b": 2.0}, rows[1].Fields)
	// One byte at a time makes no difference.
	rows, err = readRows(t, NewJSONRows(iotest.OneByteReader(strings.NewReader("[\n{\"a\":1},\n\n{\"b\":2}]")), RowOptions{}))
	require.NoError(t, err)
	require.Equal(t, []int{2, 4}, []int{rows[0].Line, rows[1].Line})
}

// A JSON array much larger than the row limit is read with a bounded
// buffer: a huge element stops the reader without being held.
func TestJSONRowsBoundedMemory(t *testing.T) {
	huge := io.MultiReader(strings.NewReader(`[{"a":"`), &endless{}, strings.NewReader(`"}]`))
	_, err := readRows(t, NewJSONRows(huge, RowOptions{MaxRowBytes: 1 << 10}))
	require.ErrorIs(t, err, ErrRowTooLarge)
}

// endless reads 'x' forever; a reader that buffers all of it never returns.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n += len(p)
	if e.n > 64<<20 {
		return 0, errors.New("read 64 MiB: the reader does not bound its buffer")
	}
	return len(p), nil
}

func TestNDJSONRows(t *testing.T) {
	in := "\ufeff{\"fields\":{\"name\":\"A\"}}\n\n   \r\n{\"name\":\"B\",\"id\":\"rec_9\"}\r\n" +
		"not json\n[1]\n{\"a\":1} {\"b\":2}\n{\"long\":\"" + strings.Repeat("y", 200) + "\"}\n{\"n\":0.1}"
	rows, err := readRows(t, NewNDJSONRows(strings.NewReader(in), RowOptions{MaxRowBytes: 100}))
	require.NoError(t, err)
	require.Len(t, rows, 7)
	require.Equal(t, records.Fields{"name": "A"}, rows[0].Fields)
	require.Equal(t, Row{Num: 2, Line: 4, ID: "rec_9", Fields: records.Fields{"name": "B"}}, rows[1])
	want := []struct {
		line int
		is   error
		msg  string
	}{
		{5, ErrMalformed, "row 3 (line 5): malformed input: invalid character"},
		{6, ErrMalformed, "row 4 (line 6): malformed input: a row is a JSON object"},
		{7, ErrMalformed, "row 5 (line 7): malformed input: more than one JSON value"},
		{8, ErrRowTooLarge, "row 6 (line 8): row too large: longer than 100 bytes"},
	}
	for i, w := range want {
		r := rows[2+i]
		require.Equal(t, w.line, r.Line)
		require.Nil(t, r.Fields)
		require.ErrorIs(t, r.Err, w.is)
		require.True(t, strings.HasPrefix(r.Err.Error(), w.msg), r.Err.Error())
	}
	require.Equal(t, Row{Num: 7, Line: 9, Fields: records.Fields{"n": 0.1}}, rows[6])
}

// A line far over the limit is skipped without being held.
func TestNDJSONRowsSkipsLongLine(t *testing.T) {
	in := io.MultiReader(strings.NewReader(`{"a":"`), io.LimitReader(&endless{}, 8<<20), strings.NewReader("\"}\n{\"b\":1}\n"))
	rows, err := readRows(t, NewNDJSONRows(in, RowOptions{}))
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.ErrorIs(t, rows[0].Err, ErrRowTooLarge)
	require.Equal(t, records.Fields{"b": 1.0}, rows[1].Fields)
	require.Equal(t, 2, rows[1].Line)
}

func TestCSVRows(t *testing.T) {
	in := "\ufeffname, amount ,id,notes\n" +
		"Acme,1200.50,,\"two\nlines\"\n" +
		"\n" +
		"Beta,,rec_1,\n" +
		"short,row\n"
	rows, err := readRows(t, NewCSVRows(strings.NewReader(in), RowOptions{}))
	require.NoError(t, err)
	require.Len(t, rows, 3)
	require.Equal(t, Row{Num: 1, Line: 2, SheetRow: 2, Fields: records.Fields{"name": "Acme", "amount": "1200.50", "notes": "two\nlines"},
		Columns: []string{"Acme", "1200.50", "", "two\nlines"}}, rows[0])
	require.Equal(t, Row{Num: 2, Line: 5, SheetRow: 3, ID: "rec_1", Fields: records.Fields{"name": "Beta"},
		Columns: []string{"Beta", "", "rec_1", ""}}, rows[1])
	require.Equal(t, []string{"short", "row"}, rows[2].Columns)
	require.ErrorIs(t, rows[2].Err, ErrMalformed)
	require.EqualError(t, rows[2].Err, "row 3 (line 6): malformed input: 2 columns, the header has 4")
}

func TestCSVRowsFatal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		rows     int
		is       error
		msg      string
	}{
		{"bare quote", "a,b\n1,2\n3,x\"y\n", 1, ErrMalformed, `row 2 (line 3): malformed input: bare " in non-quoted-field`},
		{"unclosed quote", "a,b\n\"1,2\n", 0, ErrMalformed, `row 1 (line 2): malformed input: extraneous or missing " in quoted-field`},
		{"empty header name", "a,,c\n1,2,3\n", 0, ErrMalformed, "header (line 1): malformed input: header column 2 has no name"},
		{"repeated header", "a,b,a\n", 0, ErrMalformed, `header (line 1): malformed input: header names "a" twice`},
		{"record too large", "a\n" + strings.Repeat("z", 500) + "\n", 0, ErrRowTooLarge, "row 1 (line 2): row too large: longer than 100 bytes"},
		{"record far too large", "a\n" + strings.Repeat("z", 50000) + "\n", 0, ErrRowTooLarge, "row 1: row too large: longer than 100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := readRows(t, NewCSVRows(strings.NewReader(tc.in), RowOptions{MaxRowBytes: 100}))
			require.Len(t, rows, tc.rows)
			require.ErrorIs(t, err, tc.is)
			require.EqualError(t, err, tc.msg)
		})
	}
	rows, err := readRows(t, NewCSVRows(strings.NewReader(""), RowOptions{}))
	require.NoError(t, err)
	require.Empty(t, rows)
}

func TestNewRowReader(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatNDJSON, FormatCSV} {
		r, err := NewRowReader(f, strings.NewReader(""), RowOptions{})
		require.NoError(t, err)
		_, err = r.Next()
		require.Equal(t, io.EOF, err)
	}
	_, err := NewRowReader("xml", strings.NewReader(""), RowOptions{})
	require.EqualError(t, err, `ingest: unknown row format "xml" (want json, ndjson or csv)`)
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"0", 0.0},
		{"-12.5", -12.5},
		{"0.1", 0.1},
		{"1.10", 1.1},
		{"1e3", 1000.0},
		{"123456789012345", 123456789012345.0},
		{"9007199254740992", 9007199254740992.0},
		{"9007199254740993", json.Number("9007199254740993")},
		{"820982911946154508", json.Number("820982911946154508")},
		{"0.1000000000000000055511", json.Number("0.1000000000000000055511")},
		{"1e400", json.Number("1e400")},
		{"100000000000000000000", 1e20},
		{"12345678901234567890e-10", json.Number("12345678901234567890e-10")},
	} {
		got := Number(json.Number(tc.in))
		require.Equal(t, tc.want, got, tc.in)
	}
	require.Equal(t, map[string]any{"a": []any{1.5, "x"}}, Number(map[string]any{"a": []any{json.Number("1.5"), "x"}}))
}

func TestResultWriter(t *testing.T) {
	var b strings.Builder
	w, err := NewResultWriter(&b, []string{"name", "amount"}, FailedResults)
	require.NoError(t, err)
	require.NoError(t, w.Write([]string{"Acme", "abc"}, Result{Error: `column "amount" (B2): "abc" is not a number`}))
	require.NoError(t, w.Write([]string{"x", "y", "z"}, Result{Error: "=HYPERLINK(1)"}))
	require.NoError(t, w.Write([]string{"=1+1"}, Result{Error: "no"}))
	require.NoError(t, w.Flush())
	require.Equal(t, "name,amount,error\nAcme,abc,\"column \"\"amount\"\" (B2): \"\"abc\"\" is not a number\"\nx,y,'=HYPERLINK(1)\n=1+1,,no\n", b.String())

	b.Reset()
	w, err = NewResultWriter(&b, []string{"name"}, SucceededResults)
	require.NoError(t, err)
	require.NoError(t, w.Write([]string{"Acme"}, Result{RecordID: "rec_1", Action: "created"}))
	require.NoError(t, w.Flush())
	require.Equal(t, "name,record_id,action\nAcme,rec_1,created\n", b.String())

	b.Reset()
	w, err = NewResultWriter(&b, []string{"name"}, AllResults)
	require.NoError(t, err)
	require.NoError(t, w.Write([]string{"Acme"}, Result{RecordID: "rec_1", Action: "updated"}))
	require.NoError(t, w.Write([]string{"Beta"}, Result{Error: "name: is required"}))
	require.NoError(t, w.Flush())
	require.Equal(t, "name,record_id,action,error\nAcme,rec_1,updated,\nBeta,,,name: is required\n", b.String())
}

// Numbers whose exact comparison would need huge big numbers keep their
// text at once.
func TestNumberHugeExponent(t *testing.T) {
	for _, s := range []string{"1e-99999999", "1.0000000000000000001e-99999", "12345678901234567e99999999"} {
		require.Equal(t, json.Number(s), Number(json.Number(s)), s)
	}
	require.Equal(t, 0.0, Number(json.Number("0e-99999999")))
}
