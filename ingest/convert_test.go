package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/smartlite/crmkit/records"
)

func TestConvert(t *testing.T) {
	xlsx := Converter{Serials: true}
	mac := Converter{Serials: true, Date1904: true}
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	stage := &records.Field{Name: "stage", Type: records.TypePicklist, Options: []string{"Prospecting", "Closed Won"}}
	f := func(typ records.FieldType) *records.Field { return &records.Field{Name: "f", Type: typ} }
	for _, tc := range []struct {
		name  string
		c     Converter
		field *records.Field
		in    string
		want  any
		err   string
	}{
		{"empty", Converter{}, f(records.TypeNumber), "  ", nil, ""},
		{"string kept as is", Converter{}, f(records.TypeString), " Ada ", " Ada ", ""},
		{"text", Converter{}, f(records.TypeText), "a\nb", "a\nb", ""},
		{"reference trimmed", Converter{}, f(records.TypeReference), " rec_1 ", "rec_1", ""},

		{"number", Converter{}, f(records.TypeNumber), "1234.5", 1234.5, ""},
		{"number spaces sign", Converter{}, f(records.TypeNumber), " +7 ", 7.0, ""},
		{"number exponent", Converter{}, f(records.TypeNumber), "-1.5E3", -1500.0, ""},
		{"number leading dot", Converter{}, f(records.TypeNumber), ".5", 0.5, ""},
		{"number thousands", Converter{}, f(records.TypeNumber), "1,234,567.50", 1234567.5, ""},
		{"number bad group", Converter{}, f(records.TypeNumber), "1,23", nil, `"1,23" is not a number`},
		{"number decimal comma", Converter{}, f(records.TypeNumber), "1234,5", nil, `"1234,5" is not a number`},
		{"number text", Converter{}, f(records.TypeNumber), "abc", nil, `"abc" is not a number`},
		{"number NaN", Converter{}, f(records.TypeNumber), "NaN", nil, `"NaN" is not a number`},
		{"number Inf", Converter{}, f(records.TypeNumber), "Inf", nil, `"Inf" is not a number`},
		{"number hex", Converter{}, f(records.TypeNumber), "0x10", nil, `"0x10" is not a number`},
		{"number overflow", Converter{}, f(records.TypeNumber), "1e999", nil, `"1e999" is not a number`},
		{"number underscore", Converter{}, f(records.TypeNumber), "1_000", nil, `"1_000" is not a number`},

		{"integer", Converter{}, f(records.TypeInteger), "12.0", 12.0, ""},
		{"integer thousands", Converter{}, f(records.TypeInteger), "-1,000", -1000.0, ""},
		{"integer fraction", Converter{}, f(records.TypeInteger), "12.5", nil, `"12.5" is not a whole number`},
		{"integer too big", Converter{}, f(records.TypeInteger), "1e17", nil, `"1e17" is not a whole number`},

		{"bool TRUE", Converter{}, f(records.TypeBoolean), "TRUE", true, ""},
		{"bool yes", Converter{}, f(records.TypeBoolean), "Yes", true, ""},
		{"bool 0", Converter{}, f(records.TypeBoolean), "0", false, ""},
		{"bool No", Converter{}, f(records.TypeBoolean), " no ", false, ""},
		{"bool other", Converter{}, f(records.TypeBoolean), "maybe", nil, `"maybe" is not true or false (nor yes/no, 1/0)`},

		{"date iso", Converter{}, f(records.TypeDate), "2025-06-30", "2025-06-30", ""},
		{"date iso slashes", Converter{}, f(records.TypeDate), "2025/06/30", "2025-06-30", ""},
		{"date dotted", Converter{}, f(records.TypeDate), "30.06.2025", "2025-06-30", ""},
		{"date slash day first clear", Converter{}, f(records.TypeDate), "30/06/2025", "2025-06-30", ""},
		{"date slash month first clear", Converter{}, f(records.TypeDate), "6/30/2025", "2025-06-30", ""},
		{"date slash same", Converter{}, f(records.TypeDate), "01/01/2025", "2025-01-01", ""},
		{"date slash ambiguous", Converter{}, f(records.TypeDate), "02/01/2006", nil,
			`"02/01/2006" is an ambiguous date: write 2006-01-02 or 2006-02-01, or choose day-first or month-first`},
		{"date slash day first", Converter{DateOrder: DayFirst}, f(records.TypeDate), "02/01/2006", "2006-01-02", ""},
		{"date slash month first", Converter{DateOrder: MonthFirst}, f(records.TypeDate), "02/01/2006", "2006-02-01", ""},
		{"date slash order wrong", Converter{DateOrder: MonthFirst}, f(records.TypeDate), "30/06/2025", nil, `"30/06/2025" is not a date like 2006-01-02`},
		{"date with time", Converter{}, f(records.TypeDate), "2025-06-30 23:59:59", "2025-06-30", ""},
		{"date rfc3339 as written", Converter{}, f(records.TypeDate), "2025-06-30T23:30:00-05:00", "2025-06-30", ""},
		{"date no such day", Converter{}, f(records.TypeDate), "2025-02-30", nil, `"2025-02-30" is not a date like 2006-01-02`},
		{"date no such day dotted", Converter{}, f(records.TypeDate), "30.02.2025", nil, `"30.02.2025" is not a date like 2006-01-02`},
		{"date two-digit year", Converter{}, f(records.TypeDate), "30/06/25", nil, `"30/06/25" is not a date like 2006-01-02`},
		{"date serial in csv", Converter{}, f(records.TypeDate), "45838", nil, `"45838" is not a date like 2006-01-02`},
		{"date serial", xlsx, f(records.TypeDate), "45838", "2025-06-30", ""},
		{"date serial with time", xlsx, f(records.TypeDate), "45838.99", "2025-06-30", ""},
		{"date serial 1", xlsx, f(records.TypeDate), "1", "1900-01-01", ""},
		{"date serial 59", xlsx, f(records.TypeDate), "59", "1900-02-28", ""},
		{"date serial 61", xlsx, f(records.TypeDate), "61", "1900-03-01", ""},
		{"date serial 60", xlsx, f(records.TypeDate), "60", nil, `"60" is not a date serial number Excel can show`},
		{"date serial 0", xlsx, f(records.TypeDate), "0", nil, `"0" is not a date serial number Excel can show`},
		{"date serial max", xlsx, f(records.TypeDate), "2958465", "9999-12-31", ""},
		{"date serial over max", xlsx, f(records.TypeDate), "2958466", nil, `"2958466" is not a date serial number Excel can show`},
		{"date serial negative", xlsx, f(records.TypeDate), "-1", nil, `"-1" is not a date serial number Excel can show`},
		{"date serial 1904", mac, f(records.TypeDate), "44376", "2025-06-30", ""},
		{"date serial 1904 zero", mac, f(records.TypeDate), "0", "1904-01-01", ""},
		{"date text in xlsx", xlsx, f(records.TypeDate), "2025-06-30", "2025-06-30", ""},

		{"datetime rfc3339", Converter{}, f(records.TypeDateTime), "2025-06-30T10:00:00+02:00", "2025-06-30T08:00:00Z", ""},
		{"datetime space", Converter{}, f(records.TypeDateTime), "2025-06-30 10:00:05", "2025-06-30T10:00:05Z", ""},
		{"datetime T no zone", Converter{}, f(records.TypeDateTime), "2025-06-30T10:00", "2025-06-30T10:00:00Z", ""},
		{"datetime fraction", Converter{}, f(records.TypeDateTime), "2025-06-30 10:00:05.25", "2025-06-30T10:00:05.25Z", ""},
		{"datetime date only", Converter{}, f(records.TypeDateTime), "2025-06-30", "2025-06-30T00:00:00Z", ""},
		{"datetime in location", Converter{Location: berlin}, f(records.TypeDateTime), "30.06.2025 10:00", "2025-06-30T08:00:00Z", ""},
		{"datetime zone wins over location", Converter{Location: berlin}, f(records.TypeDateTime), "2025-06-30T10:00:00Z", "2025-06-30T10:00:00Z", ""},
		{"datetime bad time", Converter{}, f(records.TypeDateTime), "2025-06-30 25:00", nil, `"2025-06-30 25:00" is not a date and time like 2006-01-02 15:04:05`},
		{"datetime serial", xlsx, f(records.TypeDateTime), "45838.4375", "2025-06-30T10:30:00Z", ""},
		{"datetime serial rounding", xlsx, f(records.TypeDateTime), "45838.438194444444", "2025-06-30T10:31:00Z", ""},
		{"datetime serial location", Converter{Serials: true, Location: berlin}, f(records.TypeDateTime), "45838.5", "2025-06-30T10:00:00Z", ""},

		{"email", Converter{}, f(records.TypeEmail), " ada@example.com ", "ada@example.com", ""},
		{"email with name", Converter{}, f(records.TypeEmail), "Ada Lovelace <ada@example.com>", "ada@example.com", ""},
		{"email bad", Converter{}, f(records.TypeEmail), "ada at example", nil, `"ada at example" is not an email address`},

		{"url", Converter{}, f(records.TypeURL), "https://example.com/a?b=1", "https://example.com/a?b=1", ""},
		{"url no scheme", Converter{}, f(records.TypeURL), "www.example.com", "https://www.example.com", ""},
		{"url javascript", Converter{}, f(records.TypeURL), "javascript://alert(1)", nil, `"javascript://alert(1)" is not an http or https URL`},
		{"url spaces", Converter{}, f(records.TypeURL), "exa mple.com", nil, `"exa mple.com" is not an http or https URL`},

		{"picklist exact", Converter{}, stage, "Closed Won", "Closed Won", ""},
		{"picklist folded", Converter{}, stage, "  closed   WON ", "Closed Won", ""},
		{"picklist unknown", Converter{}, stage, "Won", nil, `"Won" is not one of: Prospecting, Closed Won`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.Convert(tc.field, tc.in)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestConvertLongValueShortened(t *testing.T) {
	long := "é" + strings.Repeat("x", 80)
	_, err := Converter{}.Convert(&records.Field{Type: records.TypeNumber}, long)
	require.EqualError(t, err, `"é`+strings.Repeat("x", 62)+`…" is not a number`)
}

// Serial numbers agree with excelize's own conversion.
func TestSerialsMatchExcelize(t *testing.T) {
	for _, v := range []float64{1, 59, 61, 100.25, 25569, 45838.4375, 2957000.5} {
		for _, d1904 := range []bool{false, true} {
			got, ok := Converter{Date1904: d1904}.serialTime(v)
			require.True(t, ok)
			want, err := excelize.ExcelDateToTime(v, d1904)
			require.NoError(t, err)
			require.WithinDuration(t, want, got, time.Millisecond, "%v 1904=%v", v, d1904)
		}
	}
}

func TestCellError(t *testing.T) {
	_, err := Converter{}.Convert(&records.Field{Type: records.TypeNumber}, "abc")
	ce := &CellError{Column: "Amount", Ref: "C7", Field: "amount", Err: err}
	require.EqualError(t, ce, `column "Amount" (C7): "abc" is not a number`)
	require.ErrorIs(t, ce, ErrCell)
	var errs error = CellErrors{ce, {Column: "Close", Ref: "D7", Err: errors.New(`"x" is not a date like 2006-01-02`)}}
	require.EqualError(t, errs, `column "Amount" (C7): "abc" is not a number; column "Close" (D7): "x" is not a date like 2006-01-02`)
	require.ErrorIs(t, errs, ErrCell)
	var got *CellError
	require.ErrorAs(t, errs, &got)
	require.Equal(t, "C7", got.Ref)
}

func TestColumnLetterAndRef(t *testing.T) {
	for i, want := range map[int]string{0: "A", 25: "Z", 26: "AA", 27: "AB", 51: "AZ", 52: "BA", 701: "ZZ", 702: "AAA", 16383: "XFD"} {
		require.Equal(t, want, ColumnLetter(i), i)
		require.Equal(t, i+1, refColumn([]byte(want+"12")), want)
	}
	require.Equal(t, "C7", CellRef(2, 7))
}
