package store

import (
	"context"
	"fmt"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// Plan caps on what a workspace holds besides records. A cap is checked by
// counting the workspace's rows inside the transaction that inserts the new
// one, after taking a lock that concurrent creates of the same kind in the
// same workspace also take: on Postgres a transaction-scoped advisory lock
// keyed by the kind and the workspace (it blocks no other writer, unlike a
// lock on the workspace's row, which every record write updates); on SQLite
// the write lock every store transaction takes when it begins. So N
// concurrent creates against a cap with room for k store exactly k.

// CreateAPIKeyWithin stores k as CreateAPIKey does, unless the workspace
// already holds max active keys (neither revoked, nor with a revocation
// time set by a rotation, nor expired at k's creation time): then it
// answers an error wrapping records.ErrPlanLimit. max 0 means no cap.
func (s *Store) CreateAPIKeyWithin(ctx context.Context, k *apikey.Key, hash string, max int) error {
	if max <= 0 {
		return s.CreateAPIKey(ctx, k, hash)
	}
	return s.withinCap(ctx, "api_keys", k.Workspace, max,
		`SELECT count(*) FROM api_keys WHERE workspace_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
		[]any{k.Workspace, storedTime(k.CreatedAt)},
		func(ctx context.Context) error { return s.CreateAPIKey(ctx, k, hash) })
}

// CreateEndpointWithin stores e as CreateEndpoint does, unless the
// workspace already holds max endpoints (enabled or not): then it answers
// an error wrapping records.ErrPlanLimit. max 0 means no cap.
func (s *Store) CreateEndpointWithin(ctx context.Context, e *outbound.Endpoint, max int) error {
	if max <= 0 {
		return s.CreateEndpoint(ctx, e)
	}
	return s.withinCap(ctx, "webhook_endpoints", e.Workspace, max,
		`SELECT count(*) FROM webhook_endpoints WHERE workspace_id = ?`, []any{e.Workspace},
		func(ctx context.Context) error { return s.CreateEndpoint(ctx, e) })
}

// withinCap runs create in a transaction (a savepoint when ctx carries one)
// once countSQL, run in it under the cap's lock, answers fewer than max.
func (s *Store) withinCap(ctx context.Context, what, workspace string, max int, countSQL string, args []any, create func(ctx context.Context) error) error {
	return s.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
		db := s.IDB(ctx)
		if s.dialect == DialectPostgres {
			if _, err := db.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
				"crmkit_cap:"+what+":"+workspace); err != nil {
				return fmt.Errorf("store: lock the %s cap: %w", what, err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, countSQL, args...).Scan(&n); err != nil {
			return fmt.Errorf("store: count %s: %w", what, err)
		}
		if n >= max {
			return fmt.Errorf("store: workspace %s holds %d %s of %d: %w", workspace, n, what, max, records.ErrPlanLimit)
		}
		return create(ctx)
	})
}
