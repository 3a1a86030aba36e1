package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/records"
)

type workspaceRow struct {
	bun.BaseModel `bun:"table:workspaces"`

	ID          string    `bun:"id,pk"`
	Name        string    `bun:"name"`
	Plan        string    `bun:"plan"`
	RecordCount int64     `bun:"record_count"`
	CreatedAt   time.Time `bun:"created_at"`
}

// CreateWorkspace stores w, giving it an id ("ws_…") and a creation time
// when it has none. An id already taken fails with records.ErrDuplicate.
func (s *Store) CreateWorkspace(ctx context.Context, w *records.Workspace) error {
	if w.ID == "" {
		w.ID = records.NewID("ws")
	}
	w.CreatedAt = storedTime(w.CreatedAt)
	row := &workspaceRow{ID: w.ID, Name: w.Name, Plan: w.Plan, CreatedAt: w.CreatedAt}
	res, err := s.IDB(ctx).NewInsert().Model(row).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return mapWriteErr("create workspace", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: create workspace: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: workspace %s: %w", w.ID, records.ErrDuplicate)
	}
	return nil
}

// GetWorkspace answers the workspace, or records.ErrNotFound. Rate limits
// read plans through it every few seconds per workspace, so its value is
// bound (see boundRows).
func (s *Store) GetWorkspace(ctx context.Context, id string) (*records.Workspace, error) {
	var row workspaceRow
	err := s.queryOne(ctx, &row, getWorkspaceSQL, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: workspace %s: %w", id, records.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get workspace: %w", err)
	}
	return &records.Workspace{ID: row.ID, Name: row.Name, Plan: row.Plan, CreatedAt: row.CreatedAt.UTC()}, nil
}

const getWorkspaceSQL = `SELECT id, name, plan, record_count, created_at FROM workspaces WHERE id = $1`

// SetWorkspacePlan moves the workspace to another plan. Records already
// held stay even when they exceed the new plan's cap; only new ones are
// refused.
func (s *Store) SetWorkspacePlan(ctx context.Context, id, plan string) error {
	res, err := s.IDB(ctx).NewUpdate().Table("workspaces").Set("plan = ?", plan).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: set workspace plan: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: set workspace plan: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: workspace %s: %w", id, records.ErrNotFound)
	}
	return nil
}

// RecordCount answers how many records the workspace's count says it holds:
// the figure ReserveRecords checks against the plan's cap.
func (s *Store) RecordCount(ctx context.Context, workspace string) (int64, error) {
	var n int64
	err := s.IDB(ctx).NewSelect().Table("workspaces").Column("record_count").Where("id = ?", workspace).Scan(ctx, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: workspace %s: %w", workspace, records.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("store: record count: %w", err)
	}
	return n, nil
}

// ListWorkspaces answers up to limit workspaces with an id after the given
// one ("" for the first), in id order: the operator's view of every tenant.
func (s *Store) ListWorkspaces(ctx context.Context, after string, limit int) ([]*records.Workspace, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var rows []workspaceRow
	if err := s.queryAll(ctx, &rows, listWorkspacesSQL, after, limit); err != nil {
		return nil, fmt.Errorf("store: list workspaces: %w", err)
	}
	out := make([]*records.Workspace, len(rows))
	for i, row := range rows {
		out[i] = &records.Workspace{ID: row.ID, Name: row.Name, Plan: row.Plan, CreatedAt: row.CreatedAt.UTC()}
	}
	return out, nil
}

const listWorkspacesSQL = `SELECT id, name, plan, record_count, created_at FROM workspaces WHERE id > $1 ORDER BY id LIMIT $2`
