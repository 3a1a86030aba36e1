package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

var _ connector.Store = (*Store)(nil)

type connectorRow struct {
	bun.BaseModel `bun:"table:connectors"`

	ID             string     `bun:"id,pk"`
	WorkspaceID    string     `bun:"workspace_id"`
	Name           string     `bun:"name"`
	Kind           string     `bun:"kind"`
	Settings       string     `bun:"settings"`
	Headers        string     `bun:"headers"`
	Schedule       string     `bun:"schedule"`
	Mode           string     `bun:"mode"`
	Deletes        string     `bun:"deletes"`
	MaxDeleteRatio float64    `bun:"max_delete_ratio"`
	Mapping        string     `bun:"mapping"`
	Enabled        bool       `bun:"enabled"`
	State          string     `bun:"state"`
	ActiveRunID    *string    `bun:"active_run_id"`
	LeaseToken     string     `bun:"lease_token"`
	LeaseUntil     *time.Time `bun:"lease_until"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
}

// definitionColumns are the columns UpdateConnector writes.
var definitionColumns = []string{"name", "kind", "settings", "headers", "schedule", "mode", "deletes",
	"max_delete_ratio", "mapping", "enabled", "updated_at"}

func (s *Store) newConnectorRow(c *connector.Connector) (*connectorRow, error) {
	c.CreatedAt, c.UpdatedAt = storedTime(c.CreatedAt), storedTime(c.UpdatedAt)
	m, err := json.Marshal(c.Mapping)
	if err != nil {
		return nil, fmt.Errorf("store: connector mapping: %w", err)
	}
	row := &connectorRow{ID: c.ID, WorkspaceID: c.Workspace, Name: c.Name, Kind: c.Kind, Settings: string(c.Settings),
		Schedule: c.Schedule, Mode: c.Mode, Deletes: c.Deletes, MaxDeleteRatio: c.MaxDeleteRatio, Mapping: string(m),
		Enabled: c.Enabled, State: c.State, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if row.Settings == "" {
		row.Settings = "{}"
	}
	if len(c.Headers) > 0 {
		sealed := make(map[string]string, len(c.Headers))
		for name, v := range c.Headers {
			if sealed[name], err = s.SealSecret(v); err != nil {
				return nil, err
			}
		}
		b, _ := json.Marshal(sealed)
		row.Headers = string(b)
	}
	return row, nil
}

func (s *Store) connectorOf(r *connectorRow) (*connector.Connector, error) {
	c := &connector.Connector{ID: r.ID, Workspace: r.WorkspaceID, Name: r.Name, Kind: r.Kind,
		Settings: json.RawMessage(r.Settings), Schedule: r.Schedule, Mode: r.Mode, Deletes: r.Deletes,
		MaxDeleteRatio: r.MaxDeleteRatio, Enabled: r.Enabled, State: r.State,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.ActiveRunID != nil {
		c.ActiveRunID = *r.ActiveRunID
	}
	spec, err := mapping.ParseSpec([]byte(r.Mapping))
	if err != nil {
		return nil, fmt.Errorf("store: connector %s mapping: %w", r.ID, err)
	}
	c.Mapping = spec
	if r.Headers != "" {
		if err := json.Unmarshal([]byte(r.Headers), &c.Headers); err != nil {
			return nil, fmt.Errorf("store: connector %s headers: %w", r.ID, err)
		}
		for name, v := range c.Headers {
			plain, err := s.OpenSecret(v)
			if err != nil {
				return nil, fmt.Errorf("store: connector %s header %q: %w", r.ID, name, err)
			}
			c.Headers[name] = plain
		}
	}
	return c, nil
}

func connectorNotFound(id string) error {
	return fmt.Errorf("store: connector %s: %w", id, records.ErrNotFound)
}

// CreateConnector stores a new connector.
func (s *Store) CreateConnector(ctx context.Context, c *connector.Connector) error {
	row, err := s.newConnectorRow(c)
	if err != nil {
		return err
	}
	if _, err := s.IDB(ctx).NewInsert().Model(row).Exec(ctx); err != nil {
		return mapWriteErr("insert connector", err)
	}
	return nil
}

// GetConnector answers a connector of the workspace, or of any workspace
// when workspace is "".
func (s *Store) GetConnector(ctx context.Context, workspace, id string) (*connector.Connector, error) {
	var row connectorRow
	q := s.IDB(ctx).NewSelect().Model(&row).Where("id = ?", id)
	if workspace != "" {
		q = q.Where("workspace_id = ?", workspace)
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, connectorNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get connector: %w", err)
	}
	return s.connectorOf(&row)
}

// ListConnectors answers the workspace's connectors in id order after the
// id after, at most limit (DefaultListLimit when 0).
func (s *Store) ListConnectors(ctx context.Context, workspace, after string, limit int) ([]*connector.Connector, error) {
	var rows []connectorRow
	if err := pageAfter(s.IDB(ctx).NewSelect().Model(&rows), workspace, after, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list connectors: %w", err)
	}
	return s.connectorsOf(rows)
}

func (s *Store) connectorsOf(rows []connectorRow) ([]*connector.Connector, error) {
	out := make([]*connector.Connector, len(rows))
	for i := range rows {
		c, err := s.connectorOf(&rows[i])
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// ScheduledConnectors answers every enabled connector with a schedule.
func (s *Store) ScheduledConnectors(ctx context.Context) ([]*connector.Connector, error) {
	var rows []connectorRow
	err := s.IDB(ctx).NewSelect().Model(&rows).Where("enabled = ? AND schedule <> ''", true).OrderExpr("id").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: scheduled connectors: %w", err)
	}
	return s.connectorsOf(rows)
}

// UpdateConnector stores c's definition.
func (s *Store) UpdateConnector(ctx context.Context, c *connector.Connector) error {
	row, err := s.newConnectorRow(c)
	if err != nil {
		return err
	}
	res, err := s.IDB(ctx).NewUpdate().Model(row).Column(definitionColumns...).
		Where("workspace_id = ? AND id = ?", c.Workspace, c.ID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: update connector: %w", err)
	}
	return oneConnector(res, c.ID)
}

func oneConnector(res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: connector %s: %w", id, err)
	}
	if n == 0 {
		return connectorNotFound(id)
	}
	return nil
}

// DeleteConnector removes a connector; its runs and record knowledge go
// with it.
func (s *Store) DeleteConnector(ctx context.Context, workspace, id string) error {
	res, err := s.IDB(ctx).NewDelete().Model((*connectorRow)(nil)).
		Where("workspace_id = ? AND id = ?", workspace, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: delete connector: %w", err)
	}
	return oneConnector(res, id)
}

// heldOr answers why a conditional update of the connector touched no row:
// it holds a run (ErrRunActive) or it does not exist.
func heldOr(ctx context.Context, db bun.IDB, workspace, id string) error {
	n, err := db.NewSelect().Model((*connectorRow)(nil)).Where("workspace_id = ? AND id = ?", workspace, id).Count(ctx)
	if err != nil {
		return fmt.Errorf("store: connector %s: %w", id, err)
	}
	if n == 0 {
		return connectorNotFound(id)
	}
	return connector.ErrRunActive
}

// ResetConnector sets the state of a connector no run holds and forgets
// the hashes of what it wrote.
func (s *Store) ResetConnector(ctx context.Context, workspace, id, state string) error {
	return s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*connectorRow)(nil)).Set("state = ?", state).
			Where("workspace_id = ? AND id = ? AND active_run_id IS NULL", workspace, id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: reset connector: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return heldOr(ctx, tx, workspace, id)
		}
		_, err = tx.NewUpdate().Model((*connectorRecordRow)(nil)).Set("hash = ''").Set("version = 0").
			Where("connector_id = ?", id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: reset connector records: %w", err)
		}
		return nil
	})
}

type connectorRunRow struct {
	bun.BaseModel `bun:"table:connector_runs"`

	ID           string     `bun:"id,pk"`
	WorkspaceID  string     `bun:"workspace_id"`
	ConnectorID  string     `bun:"connector_id"`
	Trigger      string     `bun:"trigger"`
	Status       string     `bun:"status"`
	CreatedAt    time.Time  `bun:"created_at"`
	StartedAt    *time.Time `bun:"started_at"`
	FinishedAt   *time.Time `bun:"finished_at"`
	Pages        int64      `bun:"pages"`
	Created      int64      `bun:"created"`
	Updated      int64      `bun:"updated"`
	Unchanged    int64      `bun:"unchanged"`
	Deleted      int64      `bun:"deleted"`
	Failed       int64      `bun:"failed"`
	Skipped      int64      `bun:"skipped"`
	CursorBefore string     `bun:"cursor_before"`
	CursorAfter  string     `bun:"cursor_after"`
	Error        string     `bun:"error"`
	Failures     string     `bun:"failures"`
	Notes        string     `bun:"notes"`
}

func newRunRow(r *connector.Run) *connectorRunRow {
	r.CreatedAt = storedTime(r.CreatedAt)
	r.StartedAt, r.FinishedAt = webhookTime(r.StartedAt), webhookTime(r.FinishedAt)
	row := &connectorRunRow{ID: r.ID, WorkspaceID: r.Workspace, ConnectorID: r.ConnectorID, Trigger: r.Trigger,
		Status: r.Status, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Pages: r.Pages,
		Created: r.Created, Updated: r.Updated, Unchanged: r.Unchanged, Deleted: r.Deleted, Failed: r.Failed,
		Skipped: r.Skipped, CursorBefore: r.CursorBefore, CursorAfter: r.CursorAfter}
	if r.Error != nil {
		b, _ := json.Marshal(r.Error)
		row.Error = string(b)
	}
	if len(r.Failures) > 0 {
		b, _ := json.Marshal(r.Failures)
		row.Failures = string(b)
	}
	if len(r.Notes) > 0 {
		b, _ := json.Marshal(r.Notes)
		row.Notes = string(b)
	}
	return row
}

func (r *connectorRunRow) run() (*connector.Run, error) {
	run := &connector.Run{ID: r.ID, Workspace: r.WorkspaceID, ConnectorID: r.ConnectorID, Trigger: r.Trigger,
		Status: r.Status, CreatedAt: r.CreatedAt.UTC(), StartedAt: utcTime(r.StartedAt), FinishedAt: utcTime(r.FinishedAt),
		Pages: r.Pages, CursorBefore: r.CursorBefore, CursorAfter: r.CursorAfter, Failures: []connector.Failure{}, Notes: []string{},
		Counts: connector.Counts{Created: r.Created, Updated: r.Updated, Unchanged: r.Unchanged, Deleted: r.Deleted,
			Failed: r.Failed, Skipped: r.Skipped}}
	if r.Error != "" {
		run.Error = new(connector.RunError)
		if err := json.Unmarshal([]byte(r.Error), run.Error); err != nil {
			return nil, fmt.Errorf("store: connector run %s error: %w", r.ID, err)
		}
	}
	if r.Failures != "" {
		if err := json.Unmarshal([]byte(r.Failures), &run.Failures); err != nil {
			return nil, fmt.Errorf("store: connector run %s failures: %w", r.ID, err)
		}
	}
	if r.Notes != "" {
		if err := json.Unmarshal([]byte(r.Notes), &run.Notes); err != nil {
			return nil, fmt.Errorf("store: connector run %s notes: %w", r.ID, err)
		}
	}
	return run, nil
}

func runNotFound(id string) error {
	return fmt.Errorf("store: connector run %s: %w", id, records.ErrNotFound)
}

// BeginConnectorRun takes the connector for run, stores run and enqueues
// job in one transaction; connector.ErrRunActive when a run holds it.
func (s *Store) BeginConnectorRun(ctx context.Context, run *connector.Run, leaseUntil time.Time, job river.InsertManyParams) error {
	row := newRunRow(run)
	client := s.JobClient()
	if client == nil {
		return errors.New("store: BeginConnectorRun needs the job client")
	}
	return s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*connectorRow)(nil)).
			Set("active_run_id = ?", run.ID).Set("lease_token = ''").Set("lease_until = ?", storedTime(leaseUntil)).
			Where("workspace_id = ? AND id = ? AND active_run_id IS NULL", run.Workspace, run.ConnectorID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: begin connector run: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return heldOr(ctx, tx, run.Workspace, run.ConnectorID)
		}
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			return mapWriteErr("insert connector run", err)
		}
		if _, err := client.InsertManyFastTx(ctx, tx.Tx, []river.InsertManyParams{job}); err != nil {
			return fmt.Errorf("store: enqueue connector run: %w", err)
		}
		return nil
	})
}

// ClaimConnectorRun makes the caller the worker of a run no live worker
// holds, and marks the run running.
func (s *Store) ClaimConnectorRun(ctx context.Context, connectorID, runID, token string, now, leaseUntil time.Time) (*connector.Connector, *connector.Run, bool, error) {
	var c *connector.Connector
	var run *connector.Run
	ok := false
	err := s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*connectorRow)(nil)).
			Set("lease_token = ?", token).Set("lease_until = ?", storedTime(leaseUntil)).
			Where("id = ? AND active_run_id = ? AND (lease_token = '' OR lease_until < ?)", connectorID, runID, storedTime(now)).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: claim connector run: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		var crow connectorRow
		if err := tx.NewSelect().Model(&crow).Where("id = ?", connectorID).Scan(ctx); err != nil {
			return fmt.Errorf("store: claim connector run: %w", err)
		}
		if c, err = s.connectorOf(&crow); err != nil {
			return err
		}
		_, err = tx.NewUpdate().Model((*connectorRunRow)(nil)).Set("status = ?", connector.RunRunning).
			Set("started_at = COALESCE(started_at, ?)", storedTime(now)).Where("id = ?", runID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: start connector run: %w", err)
		}
		var rrow connectorRunRow
		if err := tx.NewSelect().Model(&rrow).Where("id = ?", runID).Scan(ctx); err != nil {
			return fmt.Errorf("store: claim connector run: %w", err)
		}
		if run, err = rrow.run(); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil || !ok {
		return nil, nil, false, err
	}
	return c, run, true, nil
}

// ExtendConnectorLease moves the lease of the worker holding token on.
func (s *Store) ExtendConnectorLease(ctx context.Context, connectorID, token string, leaseUntil time.Time) error {
	res, err := s.IDB(ctx).NewUpdate().Model((*connectorRow)(nil)).Set("lease_until = ?", storedTime(leaseUntil)).
		Where("id = ? AND lease_token = ?", connectorID, token).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: extend connector lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return connector.ErrLeaseLost
	}
	return nil
}

// CommitConnectorPage stores a page's state in the transaction ctx
// carries, counts the page on its run, and in full mode marks the page's
// records seen.
func (s *Store) CommitConnectorPage(ctx context.Context, p connector.PageCommit) error {
	db := s.IDB(ctx)
	res, err := db.NewUpdate().Model((*connectorRow)(nil)).Set("state = ?", p.State).
		Set("lease_until = ?", storedTime(p.LeaseUntil)).
		Where("id = ? AND active_run_id = ? AND lease_token = ?", p.ConnectorID, p.RunID, p.Token).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: commit connector page: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return connector.ErrLeaseLost
	}
	if _, err := db.NewUpdate().Model((*connectorRunRow)(nil)).Set("pages = pages + 1").Where("id = ?", p.RunID).Exec(ctx); err != nil {
		return fmt.Errorf("store: count connector page: %w", err)
	}
	if p.SeenRun == "" || len(p.Seen) == 0 {
		return nil
	}
	rows := make([]connectorRecordRow, len(p.Seen))
	for i, k := range p.Seen {
		rows[i] = connectorRecordRow{ConnectorID: p.ConnectorID, Object: k.Object, ExternalID: k.ExternalID, SeenRun: p.SeenRun}
	}
	for start := 0; start < len(rows); start += recordChunk {
		part := rows[start:min(start+recordChunk, len(rows))]
		_, err := db.NewInsert().Model(&part).On("CONFLICT (connector_id, object, external_id) DO UPDATE").
			Set("seen_run = EXCLUDED.seen_run").Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: mark connector records seen: %w", err)
		}
	}
	return nil
}

// recordChunk bounds the rows of one statement about connector records,
// within SQLite's limit of bound variables.
const recordChunk = 500

type connectorRecordRow struct {
	bun.BaseModel `bun:"table:connector_records"`

	ConnectorID string `bun:"connector_id,pk"`
	Object      string `bun:"object,pk"`
	ExternalID  string `bun:"external_id,pk"`
	Hash        string `bun:"hash"`
	Version     int64  `bun:"version"`
	SeenRun     string `bun:"seen_run"`
}

// RecordConnectorPage stores the run's counts and failures and the hashes
// of what the page wrote.
func (s *Store) RecordConnectorPage(ctx context.Context, run *connector.Run, owned []connector.Owned) error {
	row := newRunRow(run)
	return s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model(row).Column("created", "updated", "unchanged", "deleted", "failed", "skipped", "failures").
			WherePK().Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: record connector page: %w", err)
		}
		rows := make([]connectorRecordRow, len(owned))
		for i, o := range owned {
			rows[i] = connectorRecordRow{ConnectorID: run.ConnectorID, Object: o.Object, ExternalID: o.ExternalID,
				Hash: o.Hash, Version: o.Version}
		}
		for start := 0; start < len(rows); start += recordChunk {
			part := rows[start:min(start+recordChunk, len(rows))]
			_, err := tx.NewInsert().Model(&part).On("CONFLICT (connector_id, object, external_id) DO UPDATE").
				Set("hash = EXCLUDED.hash").Set("version = EXCLUDED.version").Exec(ctx)
			if err != nil {
				return fmt.Errorf("store: record connector records: %w", err)
			}
		}
		return nil
	})
}

// FinishConnectorRun stores the run's outcome and the connector's state,
// and releases the connector.
func (s *Store) FinishConnectorRun(ctx context.Context, run *connector.Run, token, state string) error {
	row := newRunRow(run)
	return s.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*connectorRow)(nil)).Set("state = ?", state).
			Set("active_run_id = NULL").Set("lease_token = ''").Set("lease_until = NULL").
			Where("id = ? AND active_run_id = ? AND lease_token = ?", run.ConnectorID, run.ID, token).Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: finish connector run: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return connector.ErrLeaseLost
		}
		_, err = tx.NewUpdate().Model(row).ExcludeColumn("id", "workspace_id", "connector_id", "trigger", "created_at", "pages").
			WherePK().Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: finish connector run: %w", err)
		}
		return nil
	})
}

// GetConnectorRun answers a run of the workspace.
func (s *Store) GetConnectorRun(ctx context.Context, workspace, id string) (*connector.Run, error) {
	var row connectorRunRow
	err := s.IDB(ctx).NewSelect().Model(&row).Where("workspace_id = ? AND id = ?", workspace, id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, runNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get connector run: %w", err)
	}
	return row.run()
}

// ListConnectorRuns answers runs newest first.
func (s *Store) ListConnectorRuns(ctx context.Context, workspace, connectorID, before string, limit int) ([]*connector.Run, error) {
	var rows []connectorRunRow
	q := s.IDB(ctx).NewSelect().Model(&rows)
	if connectorID != "" {
		q = q.Where("connector_id = ?", connectorID)
	}
	if err := pageBefore(q, workspace, before, limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list connector runs: %w", err)
	}
	out := make([]*connector.Run, len(rows))
	for i := range rows {
		r, err := rows[i].run()
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// StaleConnectorRuns answers the runs holding a connector whose lease
// ended before now.
func (s *Store) StaleConnectorRuns(ctx context.Context, now time.Time) ([]*connector.Run, error) {
	var rows []connectorRow
	err := s.IDB(ctx).NewSelect().Model(&rows).Column("id", "workspace_id", "active_run_id").
		Where("active_run_id IS NOT NULL AND lease_until < ?", storedTime(now)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: stale connector runs: %w", err)
	}
	out := make([]*connector.Run, len(rows))
	for i, r := range rows {
		out[i] = &connector.Run{ID: *r.ActiveRunID, Workspace: r.WorkspaceID, ConnectorID: r.ID}
	}
	return out, nil
}

type ownedRow struct {
	Object        string  `bun:"object"`
	ExternalID    string  `bun:"external_id"`
	Hash          string  `bun:"hash"`
	Version       int64   `bun:"version"`
	SeenRun       string  `bun:"seen_run"`
	RecordID      *string `bun:"record_id"`
	RecordVersion *int64  `bun:"record_version"`
}

func (r *ownedRow) owned() connector.Owned {
	o := connector.Owned{RecordKey: connector.RecordKey{Object: r.Object, ExternalID: r.ExternalID}, Hash: r.Hash, Version: r.Version}
	if r.RecordID != nil {
		o.RecordID = *r.RecordID
	}
	if r.RecordVersion != nil {
		o.RecordVersion = *r.RecordVersion
	}
	return o
}

// ownedQuery selects the connector's records joined with the records as
// stored.
func (s *Store) ownedQuery(ctx context.Context, workspace, connectorID string, dest *[]ownedRow) *bun.SelectQuery {
	return s.IDB(ctx).NewSelect().TableExpr("connector_records AS cr").
		ColumnExpr("cr.object, cr.external_id, cr.hash, cr.version, cr.seen_run, r.id AS record_id, r.version AS record_version").
		Join("LEFT JOIN records AS r ON r.workspace_id = ? AND r.object = cr.object AND r.external_id = cr.external_id", workspace).
		Where("cr.connector_id = ?", connectorID)
}

// ConnectorRecords answers what the connector knows of the records with
// these keys.
func (s *Store) ConnectorRecords(ctx context.Context, workspace, connectorID string, keys []connector.RecordKey) (map[connector.RecordKey]connector.Owned, error) {
	out := make(map[connector.RecordKey]connector.Owned, len(keys))
	// By object, so that each lookup is a range of the primary key.
	byObject := map[string][]string{}
	seen := make(map[connector.RecordKey]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			byObject[k.Object] = append(byObject[k.Object], k.ExternalID)
		}
	}
	for obj, exts := range byObject {
		for start := 0; start < len(exts); start += recordChunk {
			var rows []ownedRow
			part := exts[start:min(start+recordChunk, len(exts))]
			err := s.ownedQuery(ctx, workspace, connectorID, &rows).
				Where("cr.object = ? AND cr.external_id IN (?)", obj, bun.List(part)).Scan(ctx, &rows)
			if err != nil {
				return nil, fmt.Errorf("store: connector records: %w", err)
			}
			for i := range rows {
				o := rows[i].owned()
				out[o.RecordKey] = o
			}
		}
	}
	return out, nil
}

// UnseenConnectorRecords answers the connector's existing records that
// runID did not see, and how many of its records exist.
func (s *Store) UnseenConnectorRecords(ctx context.Context, workspace, connectorID, runID string) ([]connector.Owned, int, error) {
	var rows []ownedRow
	if err := s.ownedQuery(ctx, workspace, connectorID, &rows).Where("r.id IS NOT NULL").
		OrderExpr("cr.object, cr.external_id").Scan(ctx, &rows); err != nil {
		return nil, 0, fmt.Errorf("store: connector records: %w", err)
	}
	var unseen []connector.Owned
	for i := range rows {
		if rows[i].SeenRun != runID {
			unseen = append(unseen, rows[i].owned())
		}
	}
	return unseen, len(rows), nil
}

// ForgetConnectorRecords drops the connector's knowledge of records.
func (s *Store) ForgetConnectorRecords(ctx context.Context, connectorID string, keys []connector.RecordKey) error {
	byObject := map[string][]string{}
	for _, k := range keys {
		byObject[k.Object] = append(byObject[k.Object], k.ExternalID)
	}
	for obj, exts := range byObject {
		for start := 0; start < len(exts); start += recordChunk {
			part := exts[start:min(start+recordChunk, len(exts))]
			_, err := s.IDB(ctx).NewDelete().Model((*connectorRecordRow)(nil)).
				Where("connector_id = ? AND object = ? AND external_id IN (?)", connectorID, obj, bun.List(part)).Exec(ctx)
			if err != nil {
				return fmt.Errorf("store: forget connector records: %w", err)
			}
		}
	}
	return nil
}

// sealedHeaderValues applies f to every value of a connector's headers
// column, a JSON object of header name to (sealed) value, for
// ResealSecrets.
func sealedHeaderValues(text string, f func(string) (string, error)) (string, error) {
	var h map[string]string
	if err := json.Unmarshal([]byte(text), &h); err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	for name, v := range h {
		next, err := f(v)
		if err != nil {
			return "", fmt.Errorf("header %q: %w", name, err)
		}
		h[name] = next
	}
	b, err := json.Marshal(h)
	return string(b), err
}
