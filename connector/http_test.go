package connector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/records"
)

// apiRecord is one record of the fake source. Ids are larger than a float64
// holds exactly, so tests see that the poller keeps every digit.
type apiRecord struct {
	ID        json.Number `json:"id"`
	UpdatedAt string      `json:"updated_at"`
	Name      string      `json:"name"`
}

func makeRecords(n int, updatedAt func(i int) string) []apiRecord {
	recs := make([]apiRecord, n)
	for i := range recs {
		recs[i] = apiRecord{
			ID:        json.Number(strconv.FormatInt(820982911946154508+int64(i), 10)),
			UpdatedAt: updatedAt(i),
			Name:      fmt.Sprintf("customer %d", i),
		}
	}
	return recs
}

func sameTime(string) func(int) string {
	return func(int) string { return "2024-05-01T10:00:00Z" }
}

// fakeAPI serves records sorted by (updated_at, id) the way a real API would,
// paginated by whichever parameter a request carries: cursor (opaque "c<n>"),
// page (from 1), offset, or p with Link headers. It answers
// {"data": [...], "meta": {"next_cursor": ...}} and filters by
// updated_since, inclusive.
type fakeAPI struct {
	t       testing.TB
	mu      sync.Mutex
	recs    []apiRecord
	link    bool
	bare    bool // answer the array itself, without the envelope
	reqs    []*http.Request
	headers []http.Header
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	f.headers = append(f.headers, r.Header.Clone())
	q := r.URL.Query()
	var recs []apiRecord
	for _, rec := range f.recs {
		if s := q.Get("updated_since"); s == "" || connector.CompareValues(rec.UpdatedAt, s) >= 0 {
			recs = append(recs, rec)
		}
	}
	slices.SortStableFunc(recs, func(a, b apiRecord) int {
		if c := connector.CompareValues(a.UpdatedAt, b.UpdatedAt); c != 0 {
			return c
		}
		return connector.CompareValues(string(a.ID), string(b.ID))
	})
	size := len(recs)
	if l := q.Get("limit"); l != "" {
		size, _ = strconv.Atoi(l)
	}
	start := 0
	switch {
	case q.Get("cursor") != "":
		start, _ = strconv.Atoi(strings.TrimPrefix(q.Get("cursor"), "c"))
	case q.Get("page") != "":
		n, _ := strconv.Atoi(q.Get("page"))
		start = (n - 1) * size
	case q.Get("offset") != "":
		start, _ = strconv.Atoi(q.Get("offset"))
	case q.Get("p") != "":
		n, _ := strconv.Atoi(q.Get("p"))
		start = (n - 1) * size
	}
	start = min(start, len(recs))
	end := min(start+size, len(recs))
	var next any
	if end < len(recs) {
		next = fmt.Sprintf("c%d", end)
		if f.link {
			nq := r.URL.Query()
			nq.Set("p", strconv.Itoa(end/size+1))
			// A relative reference, which the poller resolves.
			w.Header().Add("Link", fmt.Sprintf(`<%s?%s>; rel="next", <%s?p=1>; rel="first"`, r.URL.Path, nq.Encode(), r.URL.Path))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	page := recs[start:end]
	if page == nil {
		page = []apiRecord{}
	}
	if f.bare {
		require.NoError(f.t, json.NewEncoder(w).Encode(page))
		return
	}
	require.NoError(f.t, json.NewEncoder(w).Encode(map[string]any{"data": page, "meta": map[string]any{"next_cursor": next}}))
}

func (f *fakeAPI) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func newFakeAPI(t *testing.T, f *fakeAPI) *httptest.Server {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

// sleeps records the waits of a Backoff instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func noJitter(int64) int64 { return 0 }

func newPoller(t *testing.T, src connector.Source, mod ...func(*connector.HTTPConfig)) (*connector.HTTPPoller, *sleeps) {
	t.Helper()
	s := &sleeps{}
	cfg := connector.HTTPConfig{Source: src, AllowPrivate: true, Backoff: connector.Backoff{Sleep: s.sleep, Rand: noJitter}}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := connector.NewHTTPPoller(cfg)
	require.NoError(t, err)
	return p, s
}

// drain polls a run to its end and answers the records and the number of
// pages requested.
func drain(t *testing.T, p connector.Poller, since string) ([]json.RawMessage, int) {
	t.Helper()
	var all []json.RawMessage
	req := connector.Request{Since: since}
	for pages := 1; ; pages++ {
		require.Less(t, pages, 1000, "the run does not end")
		page, err := p.Poll(context.Background(), req)
		require.NoError(t, err)
		all = append(all, page.Records...)
		if !page.More || len(page.Records) == 0 {
			require.Empty(t, page.Next, "a last page has no next cursor")
			return all, pages
		}
		req.Cursor = page.Next
	}
}

func ids(t *testing.T, docs []json.RawMessage) []string {
	t.Helper()
	out := make([]string, len(docs))
	for i, d := range docs {
		v, ok, err := connector.FieldValue(d, "id")
		require.NoError(t, err)
		require.True(t, ok)
		out[i] = v
	}
	return out
}

func recordIDs(recs []apiRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.ID)
	}
	return out
}

func TestHTTPPollerPagination(t *testing.T) {
	recs := makeRecords(23, func(i int) string { return fmt.Sprintf("2024-05-01T10:%02d:00Z", i) })
	tests := []struct {
		name       string
		pagination connector.Pagination
		link, bare bool
		recsPath   string
		pages      int    // requests the run makes
		param      string // the query parameter that moves
		values     []string
	}{
		{name: "cursor", recsPath: "data", pages: 3, param: "cursor", values: []string{"", "c10", "c20"},
			pagination: connector.Pagination{Kind: "cursor", CursorParam: "cursor", NextPath: "meta.next_cursor", SizeParam: "limit", PageSize: 10}},
		// page and offset go on to an empty page: a short page does not
		// prove the last.
		{name: "page", recsPath: "data", pages: 4, param: "page", values: []string{"1", "2", "3", "4"},
			pagination: connector.Pagination{Kind: "page", PageParam: "page", SizeParam: "limit", PageSize: 10}},
		{name: "offset", recsPath: "data", pages: 4, param: "offset", values: []string{"0", "10", "20", "23"},
			pagination: connector.Pagination{Kind: "offset", OffsetParam: "offset", SizeParam: "limit", PageSize: 10}},
		{name: "link", recsPath: "data", link: true, pages: 3, param: "p", values: []string{"", "2", "3"},
			pagination: connector.Pagination{Kind: "link", SizeParam: "limit", PageSize: 10}},
		{name: "none", recsPath: "data", pages: 1, param: "limit", values: []string{""},
			pagination: connector.Pagination{Kind: "none"}},
		{name: "empty kind is none", bare: true, pages: 1, param: "limit", values: []string{""}},
		{name: "page size 7, bare array", bare: true, pages: 5, param: "offset", values: []string{"0", "7", "14", "21", "23"},
			pagination: connector.Pagination{Kind: "offset", OffsetParam: "offset", SizeParam: "limit", PageSize: 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{recs: recs, link: tc.link, bare: tc.bare}
			srv := newFakeAPI(t, api)
			p, _ := newPoller(t, connector.Source{URL: srv.URL + "/v1/customers?active=true", RecordsPath: tc.recsPath, Pagination: tc.pagination})
			got, pages := drain(t, p, "")
			require.Equal(t, recordIDs(recs), ids(t, got))
			require.Equal(t, tc.pages, pages)
			reqs := api.requests()
			require.Len(t, reqs, tc.pages)
			var values []string
			for _, r := range reqs {
				values = append(values, r.URL.Query().Get(tc.param))
				require.Equal(t, "/v1/customers", r.URL.Path)
				require.Equal(t, "true", r.URL.Query().Get("active"), "the URL's own query is kept")
				if tc.pagination.SizeParam != "" {
					require.Equal(t, strconv.Itoa(tc.pagination.PageSize), r.URL.Query().Get("limit"))
				}
			}
			require.Equal(t, tc.values, values)
		})
	}
}

func TestHTTPPollerKeepsDocuments(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"result":{"items":[{"id":820982911946154508,"total":"12.50","nested":{"a":[1,2]}},{"id":1e3}]}}`))
	}))
	defer srv.Close()
	p, _ := newPoller(t, connector.Source{URL: srv.URL, RecordsPath: "result.items"})
	page, err := p.Poll(context.Background(), connector.Request{})
	require.NoError(t, err)
	require.False(t, page.More)
	require.Len(t, page.Records, 2)
	require.JSONEq(t, `{"id":820982911946154508,"total":"12.50","nested":{"a":[1,2]}}`, string(page.Records[0]))
	require.Contains(t, string(page.Records[0]), "820982911946154508")
	id, ok, err := connector.FieldValue(page.Records[0], "id")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "820982911946154508", id)
	a1, ok, err := connector.FieldValue(page.Records[0], "nested.a.1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "2", a1)
}

func TestHTTPPollerRecordsPath(t *testing.T) {
	tests := []struct {
		name, body, path string
		n                int
		err              string
	}{
		{name: "bare array", body: `[{"id":1},{"id":2}]`, n: 2},
		{name: "member", body: `{"data":[{"id":1}]}`, path: "data", n: 1},
		{name: "nested", body: `{"a":{"b":[{"id":1},{"id":2},{"id":3}]}}`, path: "a.b", n: 3},
		{name: "array index", body: `{"results":[{"rows":[{"id":1}]}]}`, path: "results.0.rows", n: 1},
		{name: "missing member ends", body: `{"meta":{}}`, path: "data", n: 0},
		{name: "null ends", body: `{"data":null}`, path: "data", n: 0},
		{name: "empty array ends", body: `{"data":[]}`, path: "data", n: 0},
		{name: "object, not array", body: `{"data":{"id":1}}`, path: "data", err: `records_path "data" is not an array`},
		{name: "answer not an array", body: `{"data":[]}`, err: "set records_path"},
		{name: "through a string", body: `{"data":"x"}`, path: "data.items", err: `"data" is not an object`},
		{name: "not JSON", body: `{"data":[`, path: "data", err: "not JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			p, _ := newPoller(t, connector.Source{URL: srv.URL, RecordsPath: tc.path,
				Pagination: connector.Pagination{Kind: "page", PageParam: "page"}})
			page, err := p.Poll(context.Background(), connector.Request{})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var re *connector.RetryableError
				require.False(t, errors.As(err, &re), "a malformed answer is not retried")
				return
			}
			require.NoError(t, err)
			require.Len(t, page.Records, tc.n)
			require.Equal(t, tc.n > 0, page.More)
		})
	}
}

func TestHTTPPollerIncrementalParam(t *testing.T) {
	recs := makeRecords(30, func(i int) string { return fmt.Sprintf("2024-05-%02dT00:00:00Z", 1+i/3) })
	for _, pg := range []connector.Pagination{
		{Kind: "cursor", CursorParam: "cursor", NextPath: "meta.next_cursor", SizeParam: "limit", PageSize: 4},
		{Kind: "page", PageParam: "page", SizeParam: "limit", PageSize: 4},
		{Kind: "offset", OffsetParam: "offset", SizeParam: "limit", PageSize: 4},
		{Kind: "link", SizeParam: "limit", PageSize: 4},
	} {
		t.Run(pg.Kind, func(t *testing.T) {
			api := &fakeAPI{recs: recs, link: pg.Kind == "link"}
			srv := newFakeAPI(t, api)
			p, _ := newPoller(t, connector.Source{URL: srv.URL + "/customers", RecordsPath: "data", Pagination: pg,
				Incremental: &connector.Incremental{Field: "updated_at", Param: "updated_since", Start: "2020-01-01T00:00:00Z"}})
			got, _ := drain(t, p, "2024-05-08T00:00:00Z")
			require.Equal(t, recordIDs(recs[21:]), ids(t, got), "from the value inclusive")
			for _, r := range api.requests() {
				require.Equal(t, "2024-05-08T00:00:00Z", r.URL.Query().Get("updated_since"), "every page carries since: %s", r.URL)
			}

			api.mu.Lock()
			api.reqs = nil
			api.mu.Unlock()
			got, _ = drain(t, p, "")
			require.Len(t, got, 30)
			for _, r := range api.requests() {
				require.False(t, r.URL.Query().Has("updated_since"), "no since, no parameter")
			}
		})
	}
}

func TestHTTPPollerCursorEnds(t *testing.T) {
	tests := []struct {
		name, body string
		more       bool
		next       string
	}{
		{"string", `{"data":[{"id":1}],"next":"abc"}`, true, "abc"},
		{"number", `{"data":[{"id":1}],"next":12345678901234567890}`, true, "12345678901234567890"},
		{"null", `{"data":[{"id":1}],"next":null}`, false, ""},
		{"missing", `{"data":[{"id":1}]}`, false, ""},
		{"empty", `{"data":[{"id":1}],"next":""}`, false, ""},
		{"the cursor given", `{"data":[{"id":1}],"next":"same"}`, false, ""},
		{"no records", `{"data":[],"next":"abc"}`, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			p, _ := newPoller(t, connector.Source{URL: srv.URL, RecordsPath: "data",
				Pagination: connector.Pagination{Kind: "cursor", CursorParam: "c", NextPath: "next"}})
			page, err := p.Poll(context.Background(), connector.Request{Cursor: "same"})
			require.NoError(t, err)
			require.Equal(t, tc.more, page.More)
			require.Equal(t, tc.next, page.Next)
		})
	}
}

func TestHTTPPollerLinkOrigin(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a link to another origin must not be followed")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "<"+other.URL+"/page2>; rel=next")
		_, _ = w.Write([]byte(`[{"id":1}]`))
	}))
	defer srv.Close()
	p, _ := newPoller(t, connector.Source{URL: srv.URL, Pagination: connector.Pagination{Kind: "link"}})
	_, err := p.Poll(context.Background(), connector.Request{})
	require.ErrorContains(t, err, "another origin")
	_, err = p.Poll(context.Background(), connector.Request{Cursor: other.URL + "/page2"})
	require.ErrorContains(t, err, "another origin")
}

func TestHTTPPollerHeaders(t *testing.T) {
	api := &fakeAPI{recs: makeRecords(1, sameTime(""))}
	srv := newFakeAPI(t, api)
	p, _ := newPoller(t, connector.Source{URL: srv.URL, RecordsPath: "data",
		Headers: map[string]string{"Authorization": "Bearer s3cret-token", "X-Api-Key": "k3y-value"}})
	_, err := p.Poll(context.Background(), connector.Request{})
	require.NoError(t, err)
	h := api.headers[0]
	require.Equal(t, "Bearer s3cret-token", h.Get("Authorization"))
	require.Equal(t, "k3y-value", h.Get("X-Api-Key"))
	require.Equal(t, "application/json", h.Get("Accept"))
	require.Equal(t, connector.DefaultUserAgent, h.Get("User-Agent"))
}

func TestSourceRedacted(t *testing.T) {
	src := connector.Source{URL: "https://billing.example/api", Headers: map[string]string{"Authorization": "Bearer s3cret-token"}}
	red := src.Redacted()
	require.Equal(t, map[string]string{"Authorization": "[redacted]"}, red.Headers)
	require.Equal(t, "Bearer s3cret-token", src.Headers["Authorization"], "the source itself is unchanged")
	b, err := json.Marshal(red)
	require.NoError(t, err)
	require.NotContains(t, string(b), "s3cret")
}

func TestHTTPPollerContentType(t *testing.T) {
	tests := []struct {
		name, ctype, body, err string
	}{
		{name: "json", ctype: "application/json; charset=utf-8", body: `[{"id":1}]`},
		{name: "vendor json", ctype: "application/vnd.api+json", body: `[{"id":1}]`},
		{name: "mislabelled json", ctype: "text/plain", body: `[{"id":1}]`},
		{name: "html", ctype: "text/html", body: `<html>login</html>`, err: "not JSON (Content-Type text/html)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			p, _ := newPoller(t, connector.Source{URL: srv.URL})
			page, err := p.Poll(context.Background(), connector.Request{})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, page.Records, 1)
		})
	}
}

func TestHTTPPollerPageLimit(t *testing.T) {
	body := `[` + strings.Repeat(`{"id":1},`, 200) + `{"id":2}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	p, _ := newPoller(t, connector.Source{URL: srv.URL}, func(c *connector.HTTPConfig) { c.MaxPageBytes = 1024 })
	_, err := p.Poll(context.Background(), connector.Request{})
	require.ErrorContains(t, err, "larger than 1024 bytes")

	p, _ = newPoller(t, connector.Source{URL: srv.URL}, func(c *connector.HTTPConfig) { c.MaxPageBytes = int64(len(body)) })
	page, err := p.Poll(context.Background(), connector.Request{})
	require.NoError(t, err)
	require.Len(t, page.Records, 201)
}

// flaky answers the statuses given in turn, then a page of one record.
type flaky struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter)
	calls   int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.answers) > 0 {
		a := f.answers[0]
		f.answers = f.answers[1:]
		a(w)
		return
	}
	_, _ = w.Write([]byte(`[{"id":1}]`))
}

func status(code int, header, value, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if header != "" {
			w.Header().Set(header, value)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func TestHTTPPollerBackoff(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	big := strings.Repeat("x", 10<<10)
	tests := []struct {
		name     string
		answers  []func(http.ResponseWriter)
		backoff  connector.Backoff
		calls    int
		waits    []time.Duration
		status   int  // of a failure, 0 for success
		retry    bool // the failure is a *RetryableError
		contains []string
	}{
		{name: "429 with Retry-After seconds",
			answers: []func(http.ResponseWriter){status(429, "Retry-After", "7", "slow down")},
			calls:   2, waits: []time.Duration{7 * time.Second}},
		{name: "429 with Retry-After date",
			answers: []func(http.ResponseWriter){status(429, "Retry-After", now.Add(90*time.Second).Format(http.TimeFormat), "")},
			calls:   2, waits: []time.Duration{90 * time.Second}},
		{name: "Retry-After date in the past backs off",
			answers: []func(http.ResponseWriter){status(503, "Retry-After", now.Add(-time.Hour).Format(http.TimeFormat), "")},
			calls:   2, waits: []time.Duration{time.Second}},
		{name: "503 then success",
			answers: []func(http.ResponseWriter){status(503, "", "", "maintenance"), status(502, "", "", "")},
			calls:   3, waits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "persistent 500 fails with status and body",
			answers: []func(http.ResponseWriter){status(500, "", "", "boom"), status(500, "", "", "boom"), status(500, "", "", "db down "+big)},
			backoff: connector.Backoff{Attempts: 3},
			calls:   3, waits: []time.Duration{time.Second, 2 * time.Second},
			status: 500, retry: true, contains: []string{"gave up after 3 attempts", "500 Internal Server Error", "db down xxx"}},
		{name: "exponential, capped",
			answers: []func(http.ResponseWriter){status(500, "", "", ""), status(500, "", "", ""), status(500, "", "", ""), status(500, "", "", ""), status(500, "", "", "")},
			backoff: connector.Backoff{Attempts: 6, BaseDelay: time.Second, MaxDelay: 4 * time.Second},
			calls:   6, waits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}},
		{name: "jitter adds up to half",
			answers: []func(http.ResponseWriter){status(500, "", "", ""), status(500, "", "", "")},
			backoff: connector.Backoff{Rand: func(n int64) int64 { return n - 1 }},
			calls:   3, waits: []time.Duration{1500 * time.Millisecond, 3 * time.Second}},
		{name: "404 fails at once",
			answers: []func(http.ResponseWriter){status(404, "", "", `{"error":"no such list"}`)},
			calls:   1, status: 404, contains: []string{"404 Not Found", `{"error":"no such list"}`}},
		{name: "400 fails at once even with Retry-After",
			answers: []func(http.ResponseWriter){status(400, "Retry-After", "1", "bad since")},
			calls:   1, status: 400, contains: []string{"400 Bad Request", "bad since"}},
		{name: "Retry-After beyond the limit fails at once",
			answers: []func(http.ResponseWriter){status(429, "Retry-After", "3600", "quota")},
			calls:   1, status: 429, retry: true, contains: []string{"asked to wait 1h0m0s", "429 Too Many Requests", "quota"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{answers: tc.answers}
			srv := httptest.NewServer(f)
			defer srv.Close()
			s := &sleeps{}
			b := tc.backoff
			b.Sleep = s.sleep
			if b.Rand == nil {
				b.Rand = noJitter
			}
			p, err := connector.NewHTTPPoller(connector.HTTPConfig{Source: connector.Source{URL: srv.URL + "/items?api_key=query-secret"},
				AllowPrivate: true, Backoff: b, Now: func() time.Time { return now }})
			require.NoError(t, err)
			page, err := p.Poll(context.Background(), connector.Request{})
			require.Equal(t, tc.calls, f.calls)
			require.Equal(t, tc.waits, s.waits())
			if tc.status == 0 {
				require.NoError(t, err)
				require.Len(t, page.Records, 1)
				return
			}
			var se *connector.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.status, se.StatusCode)
			require.LessOrEqual(t, len(se.Body), 4<<10)
			var re *connector.RetryableError
			require.Equal(t, tc.retry, errors.As(err, &re))
			for _, c := range tc.contains {
				require.Contains(t, err.Error(), c)
			}
			require.NotContains(t, err.Error(), "query-secret", "the query may hold credentials")
			require.Contains(t, err.Error(), srv.URL+"/items")
		})
	}
}

func TestHTTPPollerErrorsKeepSecrets(t *testing.T) {
	// A source that echoes the request headers in its error body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, "bad credentials: %s / %s", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
	}))
	defer srv.Close()
	p, _ := newPoller(t, connector.Source{URL: srv.URL,
		Headers: map[string]string{"Authorization": "Bearer s3cret-token", "X-Api-Key": "k3y-value"}})
	_, err := p.Poll(context.Background(), connector.Request{})
	require.ErrorContains(t, err, "401 Unauthorized: bad credentials: [redacted] / [redacted]")
	require.NotContains(t, err.Error(), "s3cret")
	require.NotContains(t, err.Error(), "k3y-value")
}

func TestHTTPPollerNetworkRetry(t *testing.T) {
	// A server that is closed refuses connections: retried, then failed.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p, s := newPoller(t, connector.Source{URL: srv.URL}, func(c *connector.HTTPConfig) { c.Backoff.Attempts = 2 })
	_, err := p.Poll(context.Background(), connector.Request{})
	var re *connector.RetryableError
	require.ErrorAs(t, err, &re)
	require.ErrorContains(t, err, "gave up after 2 attempts")
	require.Len(t, s.waits(), 1)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, s = newPoller(t, connector.Source{URL: srv.URL})
	_, err = p.Poll(ctx, connector.Request{})
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, s.waits(), "a cancelled run is not retried")
}

func TestHTTPPollerRefusesPrivateAddresses(t *testing.T) {
	hits := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		_, _ = w.Write([]byte(`[{"id":1}]`))
	}))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")

	t.Run("literal address at construction", func(t *testing.T) {
		_, err := connector.NewHTTPPoller(connector.HTTPConfig{Source: connector.Source{URL: srv.URL}})
		require.ErrorIs(t, err, connector.ErrBlockedAddress)
		require.ErrorContains(t, err, "127.0.0.1 is a loopback address")
		require.ErrorContains(t, err, "AllowPrivate")
	})
	t.Run("metadata stays refused with AllowPrivate", func(t *testing.T) {
		_, err := connector.NewHTTPPoller(connector.HTTPConfig{Source: connector.Source{URL: "http://169.254.169.254/latest/meta-data/"}, AllowPrivate: true})
		require.ErrorIs(t, err, connector.ErrBlockedAddress)
		require.ErrorContains(t, err, "cloud metadata")
	})
	t.Run("name resolving to loopback, at dial time", func(t *testing.T) {
		p, err := connector.NewHTTPPoller(connector.HTTPConfig{Source: connector.Source{URL: "http://localhost:" + port + "/"}})
		require.NoError(t, err, "names are not resolved at construction")
		_, err = p.Poll(context.Background(), connector.Request{})
		require.ErrorIs(t, err, connector.ErrBlockedAddress)
		require.ErrorContains(t, err, "loopback address")
		require.ErrorContains(t, err, "AllowPrivate")
		var re *connector.RetryableError
		require.False(t, errors.As(err, &re), "a refused address is not retried")
	})
	mu.Lock()
	require.Zero(t, hits, "nothing may reach the server")
	mu.Unlock()

	t.Run("allowed when opted in", func(t *testing.T) {
		p, _ := newPoller(t, connector.Source{URL: "http://localhost:" + port + "/"})
		page, err := p.Poll(context.Background(), connector.Request{})
		require.NoError(t, err)
		require.Len(t, page.Records, 1)
	})
}

func TestHTTPConfigCheck(t *testing.T) {
	resolver := fakeResolver{
		"billing.example.test":  {netip.MustParseAddr("93.184.215.14")},
		"internal.example.test": {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.1.2.3")},
	}
	tests := []struct {
		url          string
		allowPrivate bool
		blocked      bool
	}{
		{url: "https://billing.example.test/api/customers"},
		{url: "https://internal.example.test/api", blocked: true},
		{url: "https://internal.example.test/api", allowPrivate: true},
		{url: "http://[::1]:8080/", blocked: true},
		{url: "http://[fd00:ec2::254]/", allowPrivate: true, blocked: true},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := connector.HTTPConfig{Source: connector.Source{URL: tc.url}, AllowPrivate: tc.allowPrivate, Resolver: resolver}.Check(context.Background())
			if !tc.blocked {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, connector.ErrBlockedAddress)
			require.ErrorContains(t, err, "AllowPrivate")
		})
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestHTTPPollerRedirects(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		_, _ = w.Write([]byte(`[{"id":1}]`))
	}))
	defer target.Close()
	_, targetPort, _ := strings.Cut(strings.TrimPrefix(target.URL, "http://"), ":")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/items", http.StatusMovedPermanently)
		case "/items":
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
			_, _ = w.Write([]byte(`[{"id":1}]`))
		case "/elsewhere":
			// Another origin: the same loopback address by name and another port.
			http.Redirect(w, r, "http://localhost:"+targetPort+"/items", http.StatusFound)
		case "/metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/unspecified":
			http.Redirect(w, r, "http://0.0.0.0:"+targetPort+"/", http.StatusFound)
		case "/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	defer srv.Close()
	headers := map[string]string{"Authorization": "Bearer s3cret-token", "X-Api-Key": "k3y-value"}

	tests := []struct {
		path    string
		blocked bool
		err     string
		headers bool // the configured headers reach the final server
	}{
		{path: "/moved", headers: true},
		{path: "/elsewhere", headers: false},
		{path: "/metadata", blocked: true, err: "169.254.169.254 is a cloud metadata address"},
		{path: "/unspecified", blocked: true, err: "0.0.0.0 is an unspecified address"},
		{path: "/file", err: "redirect not followed: to a file URL"},
		{path: "/loop", err: "more than 5 redirects"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			p, s := newPoller(t, connector.Source{URL: srv.URL + tc.path, Headers: headers})
			page, err := p.Poll(context.Background(), connector.Request{})
			mu.Lock()
			defer mu.Unlock()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				if tc.blocked {
					require.ErrorIs(t, err, connector.ErrBlockedAddress)
					require.ErrorContains(t, err, "AllowPrivate")
				}
				require.Empty(t, s.waits(), "a refused redirect is not retried")
				require.Empty(t, seen)
				return
			}
			require.NoError(t, err)
			require.Len(t, page.Records, 1)
			require.Len(t, seen, 1)
			if tc.headers {
				require.Equal(t, "Bearer s3cret-token", seen[0].Get("Authorization"))
				require.Equal(t, "k3y-value", seen[0].Get("X-Api-Key"))
			} else {
				require.Empty(t, seen[0].Get("Authorization"))
				require.Empty(t, seen[0].Get("X-Api-Key"))
			}
		})
	}
}

func TestSourceValidate(t *testing.T) {
	ok := connector.Source{URL: "https://billing.example/api/customers"}
	tests := []struct {
		name   string
		mod    func(*connector.Source)
		fields []string
	}{
		{"minimal", func(*connector.Source) {}, nil},
		{"design example", func(s *connector.Source) {
			require.NoError(t, json.Unmarshal([]byte(`{"url": "https://billing.example/api/customers",
				"headers": {"Authorization": "Bearer x"}, "records_path": "data",
				"pagination": {"kind": "cursor", "cursor_param": "cursor", "next_path": "meta.next_cursor", "size_param": "limit", "page_size": 500},
				"incremental": {"field": "updated_at", "param": "updated_since", "start": "2020-01-01T00:00:00Z"}}`), s))
		}, nil},
		{"no url", func(s *connector.Source) { s.URL = "" }, []string{"url"}},
		{"ftp", func(s *connector.Source) { s.URL = "ftp://billing.example/x" }, []string{"url"}},
		{"credentials in url", func(s *connector.Source) { s.URL = "https://u:p@billing.example/x" }, []string{"url"}},
		{"relative", func(s *connector.Source) { s.URL = "/api/customers" }, []string{"url"}},
		{"header name", func(s *connector.Source) { s.Headers = map[string]string{"Bad Name": "v"} }, []string{"headers"}},
		{"header value", func(s *connector.Source) { s.Headers = map[string]string{"Authorization": "Bearer x\r\nX-Evil: 1"} }, []string{"headers"}},
		{"records path", func(s *connector.Source) { s.RecordsPath = "data..items" }, []string{"records_path"}},
		{"unknown kind", func(s *connector.Source) { s.Pagination.Kind = "scroll" }, []string{"pagination.kind"}},
		{"cursor without params", func(s *connector.Source) { s.Pagination.Kind = "cursor" }, []string{"pagination.cursor_param", "pagination.next_path"}},
		{"page without param", func(s *connector.Source) { s.Pagination.Kind = "page" }, []string{"pagination.page_param"}},
		{"offset without param", func(s *connector.Source) { s.Pagination.Kind = "offset" }, []string{"pagination.offset_param"}},
		{"size param without size", func(s *connector.Source) { s.Pagination.SizeParam = "limit" }, []string{"pagination.page_size"}},
		{"negative size", func(s *connector.Source) { s.Pagination.PageSize = -1 }, []string{"pagination.page_size"}},
		{"incremental without field", func(s *connector.Source) { s.Incremental = &connector.Incremental{Param: "since"} }, []string{"incremental.field"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mod(&s)
			err := s.Validate()
			if tc.fields == nil {
				require.NoError(t, err)
				return
			}
			var ve *records.ValidationError
			require.ErrorAs(t, err, &ve)
			var fields []string
			for _, f := range ve.Fields {
				fields = append(fields, f.Field)
			}
			require.Equal(t, tc.fields, fields)
			require.NotContains(t, err.Error(), "Bearer x", "header values are secrets")
		})
	}
}

func TestHTTPFactoryRegistry(t *testing.T) {
	api := &fakeAPI{recs: makeRecords(3, sameTime(""))}
	srv := newFakeAPI(t, api)
	var reg connector.Registry
	require.NoError(t, reg.Register(connector.KindHTTP, connector.HTTPFactory(connector.HTTPConfig{AllowPrivate: true})))
	require.Error(t, reg.Register(connector.KindHTTP, connector.HTTPFactory(connector.HTTPConfig{})), "a kind is registered once")
	def, err := json.Marshal(map[string]any{"name": "Billing customers", "url": srv.URL, "records_path": "data", "schedule": "every 5m"})
	require.NoError(t, err)
	p, err := reg.Poller(connector.KindHTTP, def)
	require.NoError(t, err)
	got, _ := drain(t, p, "")
	require.Len(t, got, 3)

	_, err = reg.Poller("postgres", def)
	require.ErrorIs(t, err, connector.ErrUnknownKind)
	_, err = reg.Poller(connector.KindHTTP, json.RawMessage(`{"url":"ftp://x"}`))
	var ve *records.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, []string{connector.KindHTTP}, reg.Kinds())
}

// static is a host's own Poller kind: it fails with a RetryableError first.
type static struct {
	mu       sync.Mutex
	failures int
	calls    int
}

func (s *static) Poll(_ context.Context, req connector.Request) (connector.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failures {
		return connector.Page{}, &connector.RetryableError{Err: errors.New("database busy"), After: 3 * time.Second}
	}
	return connector.Page{Records: []json.RawMessage{json.RawMessage(`{"id":1}`)}, Next: req.Cursor + "x", More: true}, nil
}

func TestRetrying(t *testing.T) {
	s := &sleeps{}
	src := &static{failures: 2}
	p := connector.Retrying(src, connector.Backoff{Sleep: s.sleep})
	page, err := p.Poll(context.Background(), connector.Request{Cursor: "a"})
	require.NoError(t, err)
	require.Equal(t, "ax", page.Next)
	require.Equal(t, []time.Duration{3 * time.Second, 3 * time.Second}, s.waits())

	src = &static{failures: 10}
	_, err = connector.Retrying(src, connector.Backoff{Attempts: 4, Sleep: s.sleep}).Poll(context.Background(), connector.Request{})
	require.ErrorContains(t, err, "gave up after 4 attempts: database busy")
	require.Equal(t, 4, src.calls)

	// A wait that ends the context ends the retries.
	ctx, cancel := context.WithCancel(context.Background())
	src = &static{failures: 10}
	_, err = connector.Retrying(src, connector.Backoff{Sleep: func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}}).Poll(ctx, connector.Request{})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "database busy")
	require.Equal(t, 1, src.calls)
}
