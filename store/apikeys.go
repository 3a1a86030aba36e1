package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

var _ apikey.Store = (*Store)(nil)

type apiKeyRow struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID          string     `bun:"id,pk"`
	WorkspaceID string     `bun:"workspace_id"`
	Name        string     `bun:"name"`
	Prefix      string     `bun:"prefix"`
	KeyHash     string     `bun:"key_hash"`
	Scopes      string     `bun:"scopes"`
	CreatedAt   time.Time  `bun:"created_at"`
	ExpiresAt   *time.Time `bun:"expires_at"`
	RevokedAt   *time.Time `bun:"revoked_at"`
	LastUsedAt  *time.Time `bun:"last_used_at"`
}

func storedTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	st := storedTime(*t)
	return &st
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func newAPIKeyRow(k *apikey.Key, hash string) *apiKeyRow {
	k.CreatedAt = storedTime(k.CreatedAt)
	k.ExpiresAt = storedTimePtr(k.ExpiresAt)
	scopes := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = string(s)
	}
	return &apiKeyRow{
		ID:          k.ID,
		WorkspaceID: k.Workspace,
		Name:        k.Name,
		Prefix:      k.Prefix,
		KeyHash:     hash,
		Scopes:      strings.Join(scopes, " "),
		CreatedAt:   k.CreatedAt,
		ExpiresAt:   k.ExpiresAt,
	}
}

func (r *apiKeyRow) key() *apikey.Key {
	var scopes []apikey.Scope
	for _, s := range strings.Fields(r.Scopes) {
		scopes = append(scopes, apikey.Scope(s))
	}
	return &apikey.Key{
		ID:         r.ID,
		Workspace:  r.WorkspaceID,
		Name:       r.Name,
		Prefix:     r.Prefix,
		Scopes:     scopes,
		CreatedAt:  r.CreatedAt.UTC(),
		ExpiresAt:  utcPtr(r.ExpiresAt),
		RevokedAt:  utcPtr(r.RevokedAt),
		LastUsedAt: utcPtr(r.LastUsedAt),
	}
}

// CreateAPIKey stores k and the hash of its plaintext. Times are rounded to
// the microsecond in k, as stored.
func (s *Store) CreateAPIKey(ctx context.Context, k *apikey.Key, hash string) error {
	if _, err := s.IDB(ctx).NewInsert().Model(newAPIKeyRow(k, hash)).Exec(ctx); err != nil {
		return mapWriteErr("create api key", err)
	}
	return nil
}

// APIKeyByHash finds a key of any workspace by the SHA-256 of its plaintext.
// It runs on every key cache miss, so its value is bound (see boundRows).
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*apikey.Key, error) {
	var row apiKeyRow
	err := s.queryOne(ctx, &row, apiKeyByHashSQL, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: api key: %w", records.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get api key: %w", err)
	}
	return row.key(), nil
}

const apiKeyByHashSQL = `SELECT id, workspace_id, name, prefix, key_hash, scopes, created_at, expires_at, revoked_at, last_used_at
FROM api_keys WHERE key_hash = $1`

// APIKey finds a key by id within a workspace.
func (s *Store) APIKey(ctx context.Context, workspace, id string) (*apikey.Key, error) {
	return s.oneAPIKey(ctx, s.IDB(ctx), "workspace_id = ? AND id = ?", workspace, id)
}

func (s *Store) oneAPIKey(ctx context.Context, db bun.IDB, where string, args ...any) (*apikey.Key, error) {
	var row apiKeyRow
	err := db.NewSelect().Model(&row).Where(where, args...).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: api key: %w", records.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get api key: %w", err)
	}
	return row.key(), nil
}

// APIKeys lists a workspace's keys by ascending id after the id after.
func (s *Store) APIKeys(ctx context.Context, workspace, after string, limit int) ([]*apikey.Key, error) {
	var rows []apiKeyRow
	q := s.IDB(ctx).NewSelect().Model(&rows).Where("workspace_id = ?", workspace).OrderExpr("id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	out := make([]*apikey.Key, len(rows))
	for i := range rows {
		out[i] = rows[i].key()
	}
	return out, nil
}

// RevokeAPIKey sets revoked_at to at unless it is already earlier (a key
// revoked stays revoked; a rotation's grace can only be cut short).
func (s *Store) RevokeAPIKey(ctx context.Context, workspace, id string, at time.Time) (*apikey.Key, error) {
	at = storedTime(at)
	db := s.IDB(ctx)
	if _, err := db.NewUpdate().Table("api_keys").
		Set("revoked_at = ?", at).
		Where("workspace_id = ? AND id = ?", workspace, id).
		Where("(revoked_at IS NULL OR revoked_at > ?)", at).
		Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: revoke api key: %w", err)
	}
	return s.oneAPIKey(ctx, db, "workspace_id = ? AND id = ?", workspace, id)
}

// RotateAPIKey schedules the revocation of oldID at revokeAt and stores
// next, in one transaction. A key whose revoked_at is already set is
// apikey.ErrInactive.
func (s *Store) RotateAPIKey(ctx context.Context, workspace, oldID string, revokeAt time.Time, next *apikey.Key, hash string) error {
	rotate := func(ctx context.Context, db bun.IDB) error {
		res, err := db.NewUpdate().Table("api_keys").
			Set("revoked_at = ?", storedTime(revokeAt)).
			Where("workspace_id = ? AND id = ? AND revoked_at IS NULL", workspace, oldID).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("store: rotate api key: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: rotate api key: %w", err)
		} else if n == 0 {
			if _, err := s.oneAPIKey(ctx, db, "workspace_id = ? AND id = ?", workspace, oldID); err != nil {
				return err
			}
			return apikey.ErrInactive
		}
		if _, err := db.NewInsert().Model(newAPIKeyRow(next, hash)).Exec(ctx); err != nil {
			return mapWriteErr("rotate api key", err)
		}
		return nil
	}
	if t := s.txFrom(ctx); t != nil {
		return t.Savepoint(ctx, func(ctx context.Context) error { return rotate(ctx, t.tx) })
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return rotate(ctx, tx) })
}

// TouchAPIKey records a use of the key at at, unless one at or after
// at-minGap is already recorded.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time, minGap time.Duration) error {
	at = storedTime(at)
	if _, err := s.IDB(ctx).NewUpdate().Table("api_keys").
		Set("last_used_at = ?", at).
		Where("id = ?", id).
		Where("(last_used_at IS NULL OR last_used_at <= ?)", at.Add(-minGap)).
		Exec(ctx); err != nil {
		return fmt.Errorf("store: touch api key: %w", err)
	}
	return nil
}
