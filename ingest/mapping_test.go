package ingest

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

func opportunity(tb testing.TB) *records.Object {
	tb.Helper()
	for _, o := range records.DefaultObjects() {
		if o.Name == "opportunity" {
			return &o
		}
	}
	tb.Fatal("no opportunity object")
	return nil
}

func columns(headers ...string) []Column {
	cols := make([]Column, len(headers))
	for i, h := range headers {
		cols[i] = Column{Index: i, Letter: ColumnLetter(i), Header: h}
	}
	return cols
}

func TestAutoMap(t *testing.T) {
	obj := opportunity(t)
	for _, tc := range []struct {
		name     string
		headers  []string
		explicit map[string]string
		used     map[string]string
		unmapped []string
		err      string
	}{
		{
			name:     "by name ignoring case, spaces, underscores, hyphens",
			headers:  []string{"Name", "AMOUNT", "Close Date", "close-date", "Stage ", "Probability", "Colour", "Closed At", "ID", "External_Id"},
			used:     map[string]string{"Name": "name", "AMOUNT": "amount", "Close Date": "close_date", "Stage ": "stage", "Probability": "probability", "ID": "id", "External_Id": "external_id"},
			unmapped: []string{"close-date", "Colour", "Closed At"},
		},
		{
			name:     "explicit mapping decides",
			headers:  []string{"Deal", "Value", "Amount", "Closed At", "Record"},
			explicit: map[string]string{"deal": "name", "Value": "amount", "Amount": "", "closed at": "closed_at", "Record": "id"},
			used:     map[string]string{"Deal": "name", "Value": "amount", "Closed At": "closed_at", "Record": "id"},
			unmapped: []string{"Amount"},
		},
		{
			name:     "explicit field taken from an auto-mapped column",
			headers:  []string{"Name", "Title"},
			explicit: map[string]string{"Title": "name"},
			used:     map[string]string{"Title": "name"},
			unmapped: []string{"Name"},
		},
		{name: "unknown column", headers: []string{"Name"}, explicit: map[string]string{"Nope": "name"}, err: `ingest: invalid column mapping: no column "Nope" in the file`},
		{name: "unknown field", headers: []string{"Name"}, explicit: map[string]string{"Name": "title"}, err: `ingest: invalid column mapping: "title" is not a field of opportunity`},
		{name: "two columns one field", headers: []string{"A", "B"}, explicit: map[string]string{"A": "name", "B": "name"}, err: `ingest: invalid column mapping: two columns mapped to "name"`},
		{name: "one column twice", headers: []string{"Name"}, explicit: map[string]string{"Name": "name", "name": "stage"}, err: `ingest: invalid column mapping: column "Name" mapped twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := AutoMap(obj, columns(tc.headers...), tc.explicit)
			if tc.err != "" {
				require.ErrorIs(t, err, ErrMapping)
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.used, m.Used())
			require.Equal(t, tc.unmapped, m.Unmapped)
		})
	}
}

func TestMappingRow(t *testing.T) {
	m, err := AutoMap(opportunity(t), columns("Name", "Amount", "Stage", "Close Date", "Notes", "Id"), nil)
	require.NoError(t, err)
	row := m.Row(Converter{}, TableRow{Num: 3, SheetRow: 7, Cells: []Cell{
		{"A7", "Acme"}, {"B7", "abc"}, {"C7", "closed won"}, {"D7", "31/02/2025"}, {"E7", "free text"}, {"F7", " rec_1 "},
	}})
	require.Equal(t, 3, row.Num)
	require.Equal(t, 7, row.SheetRow)
	require.Equal(t, "rec_1", row.ID)
	require.Equal(t, records.Fields{"name": "Acme", "stage": "Closed Won"}, row.Fields)
	require.Equal(t, []string{"Acme", "abc", "closed won", "31/02/2025", "free text", " rec_1 "}, row.Columns)
	require.ErrorIs(t, row.Err, ErrCell)
	require.EqualError(t, row.Err, `column "Amount" (B7): "abc" is not a number; column "Close Date" (D7): "31/02/2025" is not a date like 2006-01-02`)
	var errs CellErrors
	require.ErrorAs(t, row.Err, &errs)
	require.Equal(t, "amount", errs[0].Field)

	row = m.Row(Converter{}, TableRow{Num: 4, SheetRow: 8, Cells: []Cell{{"A8", "Beta"}, {"B8", ""}, {"C8", ""}, {"D8", "2025-06-30"}, {"E8", ""}, {"F8", ""}}})
	require.NoError(t, row.Err)
	require.Equal(t, records.Fields{"name": "Beta", "close_date": "2025-06-30"}, row.Fields, "empty cells leave their fields out")
}

func TestCSVTable(t *testing.T) {
	in := "\ufeffExported by SmartLite\n" +
		"Name,Amount,,Close Date\n" +
		"Acme,\"1,200.50\",x,30.06.2025\n" +
		",,,\n" +
		"Beta,7\n"
	tab, err := NewCSVTable(strings.NewReader(in), TableOptions{HeaderRow: 2})
	require.NoError(t, err)
	require.Equal(t, []Column{{0, "A", "Name"}, {1, "B", "Amount"}, {3, "D", "Close Date"}}, tab.Columns())
	rows, err := readTable(t, tab)
	require.NoError(t, err)
	require.Equal(t, []TableRow{
		{Num: 1, SheetRow: 3, Cells: []Cell{{"A3", "Acme"}, {"B3", "1,200.50"}, {"D3", "30.06.2025"}}},
		{Num: 2, SheetRow: 5, Cells: []Cell{{"A5", "Beta"}, {"B5", "7"}, {"D5", ""}}},
	}, rows)
	require.NoError(t, tab.Close())

	// Through a mapping, a CSV import reads like a bulk job.
	tab, err = NewCSVTable(strings.NewReader(in), TableOptions{HeaderRow: 2})
	require.NoError(t, err)
	m, err := AutoMap(opportunity(t), tab.Columns(), nil)
	require.NoError(t, err)
	got, err := readRows(t, NewTableRows(tab, m, Converter{}))
	require.NoError(t, err)
	require.Equal(t, records.Fields{"name": "Acme", "amount": 1200.5, "close_date": "2025-06-30"}, got[0].Fields)
	require.Equal(t, records.Fields{"name": "Beta", "amount": 7.0}, got[1].Fields)
}

func TestCSVTableLimits(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		lim      Limits
		limit    string
	}{
		{"rows", "a\n1\n2\n3\n4\n", Limits{Rows: 3}, "rows"},
		{"columns", "a,b,c,d\n", Limits{Columns: 3}, "columns"},
		{"file size", "a\n" + strings.Repeat("1\n", 5000), Limits{FileSize: 1000}, "file size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := NewCSVTable(strings.NewReader(tc.in), TableOptions{Limits: tc.lim})
			if err == nil {
				_, err = readTable(t, tab)
			}
			var le *LimitError
			require.ErrorAs(t, err, &le)
			require.Equal(t, tc.limit, le.Limit)
			require.ErrorIs(t, err, ErrRefused)
		})
	}
	_, err := NewCSVTable(strings.NewReader("a\n"), TableOptions{HeaderRow: 2})
	require.ErrorIs(t, err, ErrNoHeader)
	_, err = NewCSVTable(strings.NewReader(",,\n"), TableOptions{})
	require.ErrorIs(t, err, ErrNoHeader)
	_, err = NewCSVTable(strings.NewReader("a,b,a\n"), TableOptions{})
	require.ErrorIs(t, err, ErrMalformed)
	require.EqualError(t, err, `ingest: malformed input: header "a" in both A1 and C1`)
}

// A table error ends a RowReader over it with a *RowError.
func TestTableRowsError(t *testing.T) {
	tab, err := NewCSVTable(strings.NewReader("Name\nA\nB\nC\n"), TableOptions{Limits: Limits{Rows: 3}})
	require.NoError(t, err)
	m, err := AutoMap(opportunity(t), tab.Columns(), nil)
	require.NoError(t, err)
	r := NewTableRows(tab, m, Converter{})
	rows, err := readRows(t, r)
	require.Len(t, rows, 2)
	var re *RowError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 3, re.Row)
	require.EqualError(t, err, "row 3: over the rows limit of 3 (row 4)")
	_, err = r.Next()
	require.NotEqual(t, io.EOF, err)
}
