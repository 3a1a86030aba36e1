package connector_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/connector"
)

func TestCompareValues(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", 0},
		{"2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z", 0},
		{"2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00Z", 1},
		{"2024-05-01T09:59:59Z", "2024-05-01T10:00:00.000001Z", -1},
		// As strings "2024-05-01T11:00:00+03:00" > "2024-05-01T09:00:00Z";
		// as instants it is earlier.
		{"2024-05-01T11:00:00+03:00", "2024-05-01T09:00:00Z", -1},
		{"9", "10", -1},
		{"-3", "2", -1},
		{"1.5", "1.25", 1},
		{"1e3", "999", 1},
		{"100", "1e2", 0},
		// Beyond float64: these differ in the last digit.
		{"9007199254740993", "9007199254740992", 1},
		{"820982911946154508", "820982911946154509", -1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},
		{"abc", "abd", -1},
		{"b", "a", 1},
		{"10", "9a", -1}, // not both numbers: as strings
		{"2024-05-01", "2024-05-02", -1},
		{"2024-05-01T10:00:00Z", "1714557600", 1}, // a time and a number: as strings
	}
	for _, tc := range tests {
		t.Run(tc.a+" vs "+tc.b, func(t *testing.T) {
			require.Equal(t, tc.want, connector.CompareValues(tc.a, tc.b))
			require.Equal(t, -tc.want, connector.CompareValues(tc.b, tc.a))
		})
	}
}

func FuzzCompareValues(f *testing.F) {
	for _, s := range [][2]string{
		{"2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00"},
		{"9007199254740993", "9007199254740992"},
		{"1e9999", "1"},
		{"-0.0", "0"},
		{"abc", "1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := connector.CompareValues(a, b), connector.CompareValues(b, a)
		if ab != -ba {
			t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if c := connector.CompareValues(a, a); c != 0 {
			t.Fatalf("Compare(%q, itself) = %d", a, c)
		}
	})
}

func TestCheckpoint(t *testing.T) {
	const t0, t1, t2 = "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"
	var c connector.Checkpoint
	require.False(t, c.Covers(t1, "a"), "the zero checkpoint covers nothing")
	require.Equal(t, "", c.String())

	run := connector.NewSync(c)
	for _, r := range [][2]string{{t1, "b"}, {t1, "a"}, {t1, "b"}, {t0, "z"}, {"", "y"}} {
		require.True(t, run.Keep(r[0], r[1]), "the zero checkpoint skips nothing")
	}
	run.Advance(connector.Page{})
	c = run.Next().From
	require.Equal(t, connector.Checkpoint{Value: t1, IDs: []string{"a", "b"}}, c, "older values and records without one move nothing")

	tests := []struct {
		value, id string
		covered   bool
	}{
		{t0, "z", true},
		{t1, "a", true},
		{t1, "b", true},
		{t1, "c", false},
		{"2024-05-01T13:00:00+02:00", "a", true}, // t1 written another way
		{t2, "a", false},
		{"", "a", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.covered, c.Covers(tc.value, tc.id), "%s %s", tc.value, tc.id)
	}

	s := c.String()
	require.JSONEq(t, `{"value":"2024-05-01T11:00:00Z","ids":["a","b"]}`, s)
	back, err := connector.ParseCheckpoint(s)
	require.NoError(t, err)
	require.Equal(t, c, back)
	zero, err := connector.ParseCheckpoint("")
	require.NoError(t, err)
	require.Equal(t, connector.Checkpoint{}, zero)
	_, err = connector.ParseCheckpoint("{")
	require.Error(t, err)

	run = connector.NewSync(c)
	require.True(t, run.Keep(t2, "c"))
	require.Equal(t, connector.Checkpoint{Value: t2, IDs: []string{"c"}}, run.To, "a greater value starts a new set")
}

// memSource is an external source held in memory, read through a Poller
// with offset pagination.
type memSource struct {
	recs     []memRecord
	size     int
	filter   bool // honours Since (inclusive); otherwise answers everything
	unsorted bool // answers in id order, descending, rather than by updated_at
}

type memRecord struct {
	id, updated string
}

func (m *memSource) Poll(_ context.Context, req connector.Request) (connector.Page, error) {
	var recs []memRecord
	for _, r := range m.recs {
		if !m.filter || req.Since == "" || connector.CompareValues(r.updated, req.Since) >= 0 {
			recs = append(recs, r)
		}
	}
	slices.SortStableFunc(recs, func(a, b memRecord) int {
		if m.unsorted {
			return connector.CompareValues(b.id, a.id)
		}
		if c := connector.CompareValues(a.updated, b.updated); c != 0 {
			return c
		}
		return connector.CompareValues(a.id, b.id)
	})
	off := 0
	if req.Cursor != "" {
		off, _ = strconv.Atoi(req.Cursor)
	}
	end := min(off+m.size, len(recs))
	var page connector.Page
	for _, r := range recs[off:end] {
		doc, _ := json.Marshal(map[string]any{"id": json.Number(r.id), "updated_at": r.updated})
		page.Records = append(page.Records, doc)
	}
	page.Next, page.More = strconv.Itoa(end), end < len(recs)
	return page, nil
}

func (m *memSource) set(id, updated string) {
	for i := range m.recs {
		if m.recs[i].id == id {
			m.recs[i].updated = updated
			return
		}
	}
	m.recs = append(m.recs, memRecord{id, updated})
}

// runSync runs a sync the way a connector run does, storing its state as a
// string after every page; it stops after stopAfter pages when that is not
// zero. It answers the ids written and the stored state.
func runSync(t *testing.T, p connector.Poller, state string, stopAfter int) ([]string, string) {
	t.Helper()
	s, err := connector.ParseSync(state)
	require.NoError(t, err)
	var written []string
	for pages := 1; !s.Done; pages++ {
		require.Less(t, pages, 10000)
		page, err := p.Poll(context.Background(), s.Request())
		require.NoError(t, err)
		for _, doc := range page.Records {
			value, _, err := connector.FieldValue(doc, "updated_at")
			require.NoError(t, err)
			id, _, err := connector.FieldValue(doc, "id")
			require.NoError(t, err)
			if s.Keep(value, id) {
				written = append(written, id)
			}
		}
		s.Advance(page)
		// What the page's transaction commits, read back as a resumed run would.
		s, err = connector.ParseSync(s.String())
		require.NoError(t, err)
		if pages == stopAfter {
			return written, s.String()
		}
	}
	return written, s.Next().String()
}

func TestIncrementalSync(t *testing.T) {
	const (
		start = "2020-01-01T00:00:00Z"
		ts    = "2024-05-01T10:00:00Z"
		later = "2024-05-01T10:00:01Z"
	)
	same := func(n int) []memRecord {
		recs := make([]memRecord, n)
		for i := range recs {
			recs[i] = memRecord{strconv.Itoa(1000 + i), ts}
		}
		return recs
	}
	type step struct {
		change    func(*memSource)
		stopAfter int      // pages before the run is killed; 0 runs to the end
		want      []string // ids written by this run, sorted as strings
		wantN     int      // or only how many, when want is nil
	}
	tests := []struct {
		name  string
		src   memSource
		steps []step
		never []string // ids below the checkpoint, rightly never written
	}{
		{
			name: "300 records sharing one updated_at, pages of 100",
			src:  memSource{recs: same(300), size: 100, filter: true},
			steps: []step{
				{wantN: 300},
				{want: nil, wantN: 0},
				{change: func(m *memSource) { m.set("5000", ts); m.set("5001", later) }, want: []string{"5000", "5001"}},
				{wantN: 0},
			},
		},
		{
			name: "300 records sharing one updated_at, pages of 7",
			src:  memSource{recs: same(300), size: 7, filter: true},
			steps: []step{
				{wantN: 300},
				{change: func(m *memSource) { m.set("1042", later) }, want: []string{"1042"}},
				{wantN: 0},
			},
		},
		{
			name: "killed mid-way, resumed from the last committed page",
			src:  memSource{recs: same(300), size: 100, filter: true},
			steps: []step{
				{stopAfter: 2, wantN: 200},
				{wantN: 100}, // the same run, resumed
				{wantN: 0},
			},
		},
		{
			name: "source ignores since",
			src:  memSource{recs: same(300), size: 50, filter: false},
			steps: []step{
				{wantN: 300},
				{wantN: 0},
				{change: func(m *memSource) { m.set("5000", ts); m.set("1000", later) }, want: []string{"1000", "5000"}},
			},
		},
		{
			name: "source not ordered by the field",
			src: memSource{size: 2, filter: false, unsorted: true, recs: []memRecord{
				{"1", "2024-05-01T10:00:05Z"}, {"2", "2024-05-01T10:00:01Z"}, {"3", "2024-05-01T10:00:09Z"},
				{"4", "2024-05-01T10:00:02Z"}, {"5", "2024-05-01T10:00:09Z"},
			}},
			steps: []step{
				// The greatest value comes first; later pages' older records
				// are still written.
				{want: []string{"1", "2", "3", "4", "5"}},
				{want: nil},
				{change: func(m *memSource) { m.set("2", "2024-05-01T10:00:09Z") }, want: []string{"2"}},
			},
		},
		{
			name: "numeric field beyond float64",
			src: memSource{size: 2, filter: true, recs: []memRecord{
				{"1", "9007199254740992"}, {"2", "9007199254740993"}, {"3", "9007199254740993"},
			}},
			steps: []step{
				{want: []string{"1", "2", "3"}},
				{change: func(m *memSource) { m.set("4", "9007199254740993"); m.set("5", "9007199254740992") }, want: []string{"4"}},
			},
			never: []string{"5"},
		},
		{
			name: "offsets: one instant written two ways",
			src:  memSource{size: 10, filter: false, recs: []memRecord{{"1", "2024-05-01T12:00:00+02:00"}}},
			steps: []step{
				{want: []string{"1"}},
				{change: func(m *memSource) { m.set("1", "2024-05-01T10:00:00Z"); m.set("2", "2024-05-01T10:00:00Z") }, want: []string{"2"}},
			},
		},
		{
			name:  "records before incremental.start are skipped",
			src:   memSource{size: 10, filter: false, recs: []memRecord{{"1", "2019-12-31T23:59:59Z"}, {"2", start}}},
			steps: []step{{want: []string{"2"}}},
			never: []string{"1"},
		},
		{
			name:  "records without the field are always written",
			src:   memSource{size: 10, filter: false, recs: []memRecord{{"1", ""}, {"2", ts}}},
			steps: []step{{want: []string{"1", "2"}}, {want: []string{"1"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			state := connector.NewSync(connector.Checkpoint{Value: start}).String()
			everWritten := map[string]int{}
			for i, st := range tc.steps {
				if st.change != nil {
					st.change(&src)
				}
				written, next := runSync(t, &src, state, st.stopAfter)
				state = next
				slices.Sort(written)
				require.Equal(t, slices.Compact(slices.Clone(written)), written, "step %d wrote a record twice", i)
				if st.want != nil || st.wantN == 0 {
					require.Equal(t, st.want, written, "step %d", i)
				} else {
					require.Len(t, written, st.wantN, "step %d", i)
				}
				for _, id := range written {
					everWritten[id]++
				}
			}
			for _, r := range src.recs {
				if slices.Contains(tc.never, r.id) {
					require.NotContains(t, everWritten, r.id)
					continue
				}
				require.Contains(t, everWritten, r.id, "record %s was lost", r.id)
			}
		})
	}
}

// TestIncrementalSyncHTTP runs the 300-record case through the HTTP poller:
// the cursor pagination of a source filtering by updated_since.
func TestIncrementalSyncHTTP(t *testing.T) {
	api := &fakeAPI{recs: makeRecords(300, sameTime(""))}
	srv := newFakeAPI(t, api)
	p, _ := newPoller(t, connector.Source{URL: srv.URL, RecordsPath: "data",
		Pagination:  connector.Pagination{Kind: "cursor", CursorParam: "cursor", NextPath: "meta.next_cursor", SizeParam: "limit", PageSize: 100},
		Incremental: &connector.Incremental{Field: "updated_at", Param: "updated_since", Start: "2020-01-01T00:00:00Z"}})
	state := connector.NewSync(connector.Checkpoint{Value: "2020-01-01T00:00:00Z"}).String()

	written, state := runSync(t, p, state, 0)
	require.ElementsMatch(t, recordIDs(api.recs), written)
	require.Len(t, api.requests(), 3)
	s, err := connector.ParseSync(state)
	require.NoError(t, err)
	require.Equal(t, "2024-05-01T10:00:00Z", s.From.Value)
	require.Len(t, s.From.IDs, 300)

	api.mu.Lock()
	api.recs = append(api.recs, apiRecord{ID: "820982911946155000", UpdatedAt: "2024-05-01T10:00:00Z"})
	api.mu.Unlock()
	written, _ = runSync(t, p, state, 0)
	require.Equal(t, []string{"820982911946155000"}, written)
	for _, r := range api.requests()[3:] {
		require.Equal(t, "2024-05-01T10:00:00Z", r.URL.Query().Get("updated_since"))
	}
}

func TestSyncState(t *testing.T) {
	s := connector.NewSync(connector.Checkpoint{Value: "5", IDs: []string{"a"}})
	require.Equal(t, connector.Request{Since: "5"}, s.Request())
	require.False(t, s.Keep("4", "x"))
	require.False(t, s.Keep("5", "a"))
	require.True(t, s.Keep("5", "b"))
	require.True(t, s.Keep("7", "e"))
	require.True(t, s.Keep("7", "c"))
	require.True(t, s.Keep("7", "d"))
	require.True(t, s.Keep("7", "c"), "a record met twice in one run is written again")
	require.True(t, s.Keep("6", "f"))
	s.Advance(connector.Page{Records: make([]json.RawMessage, 4), Next: "p2", More: true})
	require.Equal(t, connector.Checkpoint{Value: "7", IDs: []string{"c", "d", "e"}}, s.To)
	require.Equal(t, connector.Request{Cursor: "p2", Since: "5"}, s.Request(), "the whole run asks from where it started")
	require.False(t, s.Done)

	back, err := connector.ParseSync(s.String())
	require.NoError(t, err)
	require.Equal(t, s, back)

	// A run that failed and is not resumed starts again from where it began.
	require.Equal(t, connector.NewSync(connector.Checkpoint{Value: "5", IDs: []string{"a"}}), s.Next())

	s.Advance(connector.Page{})
	require.True(t, s.Done)
	require.Empty(t, s.Cursor)
	require.Equal(t, connector.NewSync(connector.Checkpoint{Value: "7", IDs: []string{"c", "d", "e"}}), s.Next())
	require.True(t, s.Next().From.Covers("7", "d"))

	_, err = connector.ParseSync("not json")
	require.Error(t, err)
}
