package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/smartlite/crmkit/records"
)

// EventFeed answers a workspace's events in the order they committed, after
// the event q.After ("" for the first), of type q.Type and object q.Object
// when those are set, at most q.Limit of them. An After that names no event
// of the workspace answers records.ErrNotFound.
//
// Event ids are made before their transaction commits, so id order is not
// commit order when writers run at once, and a consumer resuming from the
// last id it saw could miss an event committed after it with a smaller id.
// The feed orders instead by a commit position: on SQLite, which commits
// one write transaction at a time, the row's rowid; on Postgres, the id of
// the writing transaction, and only events of transactions older than every
// transaction still running are answered, so a page once read never gains
// an event before its end.
func (s *Store) EventFeed(ctx context.Context, q records.EventQuery) ([]*records.Event, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultListLimit
	}
	var pos int64
	if q.After != "" {
		col := "rowid"
		if s.dialect != DialectSQLite {
			col = "txid"
		}
		var row struct {
			Pos int64 `bun:"pos"`
		}
		err := s.queryOne(ctx, &row, "SELECT "+col+" AS pos FROM events WHERE workspace_id = $1 AND id = $2", q.Workspace, q.After)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: event %s: %w", q.After, records.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("store: event feed: %w", err)
		}
		pos = row.Pos
	}

	var b strings.Builder
	args := []any{q.Workspace}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString("SELECT id, workspace_id, type, object, record_id, payload, created_at FROM events WHERE workspace_id = $1")
	order := "rowid"
	if s.dialect == DialectSQLite {
		if q.After != "" {
			b.WriteString(" AND rowid > " + arg(pos))
		}
	} else {
		order = "txid, id"
		b.WriteString(" AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
		if q.After != "" {
			p, id := arg(pos), arg(q.After)
			b.WriteString(" AND (txid > " + p + " OR (txid = " + p + " AND id > " + id + "))")
		}
	}
	if q.Type != "" {
		b.WriteString(" AND type = " + arg(q.Type))
	}
	if q.Object != "" {
		b.WriteString(" AND object = " + arg(q.Object))
	}
	b.WriteString(" ORDER BY " + order + " LIMIT " + arg(q.Limit))

	var rows []eventRow
	if err := s.queryAll(ctx, &rows, b.String(), args...); err != nil {
		return nil, fmt.Errorf("store: event feed: %w", err)
	}
	return eventsOf(rows)
}
