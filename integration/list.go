package integration

import (
	"net/http"
	"strconv"
)

// List pages: a page holds defaultLimit items unless ?limit= asks for
// another size; a larger limit than maxLimit is lowered to it rather than
// refused.
const (
	defaultLimit = 50
	maxLimit     = 200
)

var (
	limitParam = param{name: "limit", description: "page size, 1 to 200 (larger values are lowered to 200)",
		schema: map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit, "default": defaultLimit}}
	cursorParam = param{name: "cursor", description: "next_cursor of the previous page",
		schema: map[string]any{"type": "string"}}
)

// page is the envelope of every list: the items, and the cursor of the next
// page (null on the last).
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pageQuery is what a list request asks for: ?limit= and ?cursor=.
type pageQuery struct {
	Limit  int
	Cursor string
}

// parsePage reads ?limit= (default 50, at most 200) and ?cursor=.
func parsePage(r *http.Request) (pageQuery, error) {
	q := pageQuery{Limit: defaultLimit, Cursor: r.URL.Query().Get("cursor")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := parseLimit(v)
		if err != nil {
			return q, err
		}
		q.Limit = n
	}
	return q, nil
}

func parseLimit(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errBadRequest("invalid_parameter", "limit must be a whole number from 1 to 200")
	}
	return min(n, maxLimit), nil
}

// listRoute answers the handler of a list route. fetch answers, in the
// list's order, up to limit items after the cursor (the id, as idOf names
// it, of the last item of the previous page); listRoute asks it for one
// more than the page holds to learn whether a next page exists, and writes
// {"data","next_cursor"}.
func listRoute[T any](fetch func(r *http.Request, cursor string, limit int) ([]T, error), idOf func(T) string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		q, err := parsePage(r)
		if err != nil {
			return err
		}
		items, err := fetch(r, q.Cursor, q.Limit+1)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, pageOf(items, q.Limit, idOf))
	}
}

// pageOf cuts items, fetched with one more than limit, to a page.
func pageOf[T any](items []T, limit int, idOf func(T) string) page[T] {
	p := page[T]{Data: items}
	if len(items) > limit {
		p.Data = items[:limit]
		next := idOf(p.Data[limit-1])
		p.NextCursor = &next
	}
	if p.Data == nil {
		p.Data = []T{}
	}
	return p
}

// cursorOf is the next_cursor of a next-page cursor: null at the end.
func cursorOf(next string) *string {
	if next == "" {
		return nil
	}
	return &next
}
