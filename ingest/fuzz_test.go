package ingest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/smartlite/crmkit/records"
)

// checkRows reads r to its end and checks what every row reader promises:
// rows numbered 1, 2, 3…, lines that never go back, a row either with
// fields or with an error, and a fatal error that is a *RowError naming the
// next row. It answers the number of rows and whether reading ended at
// io.EOF.
func checkRows(t *testing.T, r RowReader) (int, bool) {
	t.Helper()
	n, line := 0, 0
	for {
		row, err := r.Next()
		if err == io.EOF {
			return n, true
		}
		if err != nil {
			var re *RowError
			if !errors.As(err, &re) || re.Row != n+1 && re.Row != 0 {
				t.Fatalf("fatal error %v after row %d is not a *RowError for row %d", err, n, n+1)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRowTooLarge) {
				t.Fatalf("fatal error %v is neither ErrMalformed nor ErrRowTooLarge", err)
			}
			if _, again := r.Next(); again != err {
				t.Fatalf("Next after a fatal error answered %v, then %v", err, again)
			}
			return n, false
		}
		n++
		if row.Num != n {
			t.Fatalf("row %d numbered %d", n, row.Num)
		}
		if row.Line < line || row.Line < 1 {
			t.Fatalf("row %d on line %d after line %d", n, row.Line, line)
		}
		line = row.Line
		if (row.Err == nil) == (row.Fields == nil) {
			t.Fatalf("row %d: fields %v and error %v", n, row.Fields, row.Err)
		}
		if _, ok := row.Fields[IDField]; ok {
			t.Fatalf("row %d keeps %q among its fields", n, IDField)
		}
	}
}

func FuzzJSONRows(f *testing.F) {
	for _, s := range []string{
		`[{"fields":{"name":"Acme","amount":1200.5}},{"id":"rec_1","fields":{}},{"a":820982911946154508}]`,
		"[\n1,\n{\"a\":[1,{\"b\":null}]}\n]",
		`[]`, ``, `{}`, `[{"a":1}]x`, `[{"a":`, "\ufeff[{}]", `[{"fields":{"id":"x"},"id":"y"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n, ok := checkRows(t, NewJSONRows(bytes.NewReader(in), RowOptions{}))
		body := bytes.TrimPrefix(in, []byte("\ufeff"))
		var elems []json.RawMessage
		trimmed := bytes.Trim(body, " \t\r\n")
		valid := bytes.HasPrefix(trimmed, []byte("[")) && json.Unmarshal(body, &elems) == nil
		if len(trimmed) == 0 {
			valid, elems = true, nil
		}
		if valid != ok {
			t.Fatalf("reader ended ok=%v, but the input is a valid array: %v", ok, valid)
		}
		if valid && n != len(elems) {
			t.Fatalf("read %d rows of an array of %d", n, len(elems))
		}
	})
}

func FuzzNDJSONRows(f *testing.F) {
	for _, s := range []string{
		"{\"fields\":{\"name\":\"A\"}}\n\n{\"name\":\"B\",\"id\":\"rec_9\"}\r\n",
		"not json\n[1]\n{\"a\":1} {\"b\":2}\n",
		"", "\n\n", "\ufeff{}", "{\"a\":\"" + strings.Repeat("y", 300) + "\"}\n{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n, ok := checkRows(t, NewNDJSONRows(bytes.NewReader(in), RowOptions{MaxRowBytes: 256}))
		if !ok {
			t.Fatal("an NDJSON reader over memory ended before io.EOF")
		}
		want := 0
		for line := range bytes.SplitSeq(bytes.TrimPrefix(in, []byte("\ufeff")), []byte("\n")) {
			if len(bytes.Trim(line, " \t\r")) > 0 {
				want++
			}
		}
		if n != want {
			t.Fatalf("read %d rows of %d non-blank lines", n, want)
		}
	})
}

func FuzzCSVRows(f *testing.F) {
	for _, s := range []string{
		"name,amount,id\nAcme,1,\nBeta,,rec_1\n",
		"a,b\n\"x\ny\",2\n\n3\n", "a,b\n1,x\"y\n", "", "a,,b\n", "\ufeffa\n1", "a\n\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n, ok := checkRows(t, NewCSVRows(bytes.NewReader(in), RowOptions{MaxRowBytes: 1 << 10}))
		cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(in, []byte("\ufeff"))))
		cr.FieldsPerRecord = -1
		recs, err := cr.ReadAll()
		switch {
		case err != nil:
			if ok {
				t.Fatalf("read %d rows to the end of input encoding/csv refuses (%v)", n, err)
			}
		case len(recs) == 0:
			if !ok || n != 0 {
				t.Fatalf("empty input: %d rows, ok=%v", n, ok)
			}
		case ok && n != len(recs)-1:
			t.Fatalf("read %d rows of %d records after the header", n, len(recs)-1)
		}
	})
}

func FuzzConvertCell(f *testing.F) {
	for _, s := range []string{
		"1234.5", "1,234.50", "-1e3", "TRUE", "no", "2025-06-30", "30/06/2025", "02/01/2006", "30.06.2025",
		"2025-06-30T10:00:00+02:00", "2025-06-30 10:00", "45838.4375", "60", "ada@example.com", "www.example.com",
		"closed   won", "", " ", "NaN", "0x1p-2", "9999999999999",
	} {
		f.Add(s, uint8(0))
	}
	types := []records.FieldType{records.TypeString, records.TypeText, records.TypeNumber, records.TypeInteger,
		records.TypeBoolean, records.TypeDate, records.TypeDateTime, records.TypeEmail, records.TypeURL,
		records.TypePicklist, records.TypeReference}
	f.Fuzz(func(t *testing.T, s string, sel uint8) {
		field := &records.Field{Name: "f", Type: types[int(sel)%len(types)], Options: []string{"Prospecting", "Closed Won"}}
		c := Converter{Serials: sel&0x10 != 0, Date1904: sel&0x20 != 0, DateOrder: DateOrder(sel >> 6 % 3)}
		v, err := c.Convert(field, s)
		if err != nil {
			if v != nil {
				t.Fatalf("%q: value %v with error %v", s, v, err)
			}
			if !strings.HasPrefix(err.Error(), `"`) {
				t.Fatalf("%q: error %q does not start with the value", s, err)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			if v != nil {
				t.Fatalf("empty cell converted to %v", v)
			}
			return
		}
		switch field.Type {
		case records.TypeNumber, records.TypeInteger:
			x, ok := v.(float64)
			if !ok || math.IsNaN(x) || math.IsInf(x, 0) || field.Type == records.TypeInteger && x != math.Trunc(x) {
				t.Fatalf("%q → %#v", s, v)
			}
		case records.TypeBoolean:
			if _, ok := v.(bool); !ok {
				t.Fatalf("%q → %#v", s, v)
			}
		case records.TypeDate:
			if _, err := time.Parse(records.DateLayout, v.(string)); err != nil {
				t.Fatalf("%q → %q, not a stored date: %v", s, v, err)
			}
		case records.TypeDateTime:
			if _, err := time.Parse(records.DateTimeLayout, v.(string)); err != nil {
				t.Fatalf("%q → %q, not a stored datetime: %v", s, v, err)
			}
		case records.TypePicklist:
			if v != "Prospecting" && v != "Closed Won" {
				t.Fatalf("%q → %q, not an option", s, v)
			}
		case records.TypeURL:
			if u := v.(string); !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("%q → %q", s, u)
			}
		}
	})
}
