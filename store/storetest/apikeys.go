package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
)

// newKey is an unsaved key of workspace created at at, with the hash of a
// fresh plaintext.
func newKey(tb testing.TB, workspace string, at time.Time) (*apikey.Key, string) {
	tb.Helper()
	plain, err := apikey.Generate(nil)
	require.NoError(tb, err)
	p, err := apikey.Parse(plain)
	require.NoError(tb, err)
	return &apikey.Key{
		ID: records.NewID("key"), Workspace: workspace, Name: "Finance Sync", Prefix: p.Display,
		Scopes: []apikey.Scope{apikey.ScopeRead, apikey.ScopeBulk}, CreatedAt: at,
	}, p.Hash
}

// createKey stores a new key of workspace and answers it with its hash.
func createKey(tb testing.TB, st Store, workspace string, at time.Time) (*apikey.Key, string) {
	tb.Helper()
	k, hash := newKey(tb, workspace, at)
	require.NoError(tb, st.CreateAPIKey(context.Background(), k, hash))
	return k, hash
}

// otherHash is a well-formed hash that differs from hash in its last digit.
func otherHash(hash string) string {
	last := hash[len(hash)-1]
	if last == '0' {
		return hash[:len(hash)-1] + "1"
	}
	return hash[:len(hash)-1] + "0"
}

func testAPIKeys(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	now := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)

	k, hash := newKey(t, ws.ID, now)
	expires := now.Add(90 * 24 * time.Hour)
	k.ExpiresAt = &expires
	require.NoError(t, st.CreateAPIKey(ctx, k, hash))
	require.Equal(t, stored(now), k.CreatedAt, "the key holds its time as stored")

	t.Run("lookup by hash", func(t *testing.T) {
		got, err := st.APIKeyByHash(ctx, hash)
		require.NoError(t, err)
		require.Equal(t, k, got)
		require.Equal(t, stored(expires), *got.ExpiresAt)
		require.Nil(t, got.RevokedAt)
		require.Nil(t, got.LastUsedAt)
		_, err = st.APIKeyByHash(ctx, otherHash(hash))
		require.ErrorIs(t, err, records.ErrNotFound)
	})

	t.Run("lookup by id within its workspace", func(t *testing.T) {
		got, err := st.APIKey(ctx, ws.ID, k.ID)
		require.NoError(t, err)
		require.Equal(t, k, got)
		_, err = st.APIKey(ctx, other.ID, k.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
		_, err = st.APIKey(ctx, ws.ID, "key_missing")
		require.ErrorIs(t, err, records.ErrNotFound)
	})

	t.Run("refused writes", func(t *testing.T) {
		dup, _ := newKey(t, ws.ID, now)
		require.ErrorIs(t, st.CreateAPIKey(ctx, dup, hash), records.ErrDuplicate, "same hash")
		again, h := newKey(t, ws.ID, now)
		again.ID = k.ID
		require.ErrorIs(t, st.CreateAPIKey(ctx, again, h), records.ErrDuplicate, "same id")
		_, err := st.APIKeyByHash(ctx, h)
		require.ErrorIs(t, err, records.ErrNotFound)
		orphan, h := newKey(t, "ws_missing", now)
		require.Error(t, st.CreateAPIKey(ctx, orphan, h), "unknown workspace")
		_, err = st.APIKeyByHash(ctx, h)
		require.ErrorIs(t, err, records.ErrNotFound)
	})

	t.Run("touch keeps a gap", func(t *testing.T) {
		lastUsed := func() *time.Time {
			got, err := st.APIKey(ctx, ws.ID, k.ID)
			require.NoError(t, err)
			return got.LastUsedAt
		}
		steps := []struct {
			name string
			at   time.Time
			want time.Time
		}{
			{"first use", now, now},
			{"within the gap", now.Add(59 * time.Second), now},
			{"earlier than the last", now.Add(-time.Hour), now},
			{"the gap later", now.Add(time.Minute), now.Add(time.Minute)},
		}
		for _, s := range steps {
			require.NoError(t, st.TouchAPIKey(ctx, k.ID, s.at, time.Minute), s.name)
			require.Equal(t, stored(s.want), *lastUsed(), s.name)
		}
	})

	t.Run("list pages by id", func(t *testing.T) {
		for range 4 {
			createKey(t, st, ws.ID, now)
		}
		createKey(t, st, other.ID, now)
		all, err := st.APIKeys(ctx, ws.ID, "", 100)
		require.NoError(t, err)
		require.Len(t, all, 5)
		for i, key := range all {
			require.Equal(t, ws.ID, key.Workspace)
			if i > 0 {
				require.Less(t, all[i-1].ID, key.ID)
			}
		}
		page, err := st.APIKeys(ctx, ws.ID, all[1].ID, 2)
		require.NoError(t, err)
		require.Equal(t, []*apikey.Key{all[2], all[3]}, page)
		rest, err := st.APIKeys(ctx, ws.ID, all[4].ID, 2)
		require.NoError(t, err)
		require.Empty(t, rest)
		theirs, err := st.APIKeys(ctx, other.ID, "", 100)
		require.NoError(t, err)
		require.Len(t, theirs, 1)
	})
}

func testAPIKeyRevokeAndRotate(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "pro"), Workspace(t, st, "pro")
	now := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	revokedAt := func(id string) *time.Time {
		got, err := st.APIKey(ctx, ws.ID, id)
		require.NoError(t, err)
		return got.RevokedAt
	}

	t.Run("revoke never moves later", func(t *testing.T) {
		k, _ := createKey(t, st, ws.ID, now)
		steps := []struct {
			name string
			at   time.Time
			want time.Time
		}{
			{"first", now.Add(time.Hour), now.Add(time.Hour)},
			{"earlier cuts it short", now.Add(time.Minute), now.Add(time.Minute)},
			{"later is ignored", now.Add(2 * time.Hour), now.Add(time.Minute)},
		}
		for _, s := range steps {
			got, err := st.RevokeAPIKey(ctx, ws.ID, k.ID, s.at)
			require.NoError(t, err, s.name)
			require.Equal(t, stored(s.want), *got.RevokedAt, s.name)
			require.Equal(t, stored(s.want), *revokedAt(k.ID), s.name)
		}
	})

	t.Run("revoke within the workspace only", func(t *testing.T) {
		k, _ := createKey(t, st, ws.ID, now)
		_, err := st.RevokeAPIKey(ctx, other.ID, k.ID, now)
		require.ErrorIs(t, err, records.ErrNotFound)
		require.Nil(t, revokedAt(k.ID))
		_, err = st.RevokeAPIKey(ctx, ws.ID, "key_missing", now)
		require.ErrorIs(t, err, records.ErrNotFound)
	})

	t.Run("rotate", func(t *testing.T) {
		old, _ := createKey(t, st, ws.ID, now)
		next, nh := newKey(t, ws.ID, now)
		require.NoError(t, st.RotateAPIKey(ctx, ws.ID, old.ID, now.Add(time.Hour), next, nh))
		require.Equal(t, stored(now.Add(time.Hour)), *revokedAt(old.ID))
		got, err := st.APIKeyByHash(ctx, nh)
		require.NoError(t, err)
		require.Equal(t, next, got)

		t.Run("a revoked key is inactive", func(t *testing.T) {
			again, ah := newKey(t, ws.ID, now)
			require.ErrorIs(t, st.RotateAPIKey(ctx, ws.ID, old.ID, now, again, ah), apikey.ErrInactive)
			_, err := st.APIKeyByHash(ctx, ah)
			require.ErrorIs(t, err, records.ErrNotFound)
			require.Equal(t, stored(now.Add(time.Hour)), *revokedAt(old.ID))
		})
		t.Run("a failed insert leaves the old key active", func(t *testing.T) {
			fresh, _ := createKey(t, st, ws.ID, now)
			clash, _ := newKey(t, ws.ID, now)
			require.ErrorIs(t, st.RotateAPIKey(ctx, ws.ID, fresh.ID, now, clash, nh), records.ErrDuplicate)
			require.Nil(t, revokedAt(fresh.ID))
			_, err := st.APIKey(ctx, ws.ID, clash.ID)
			require.ErrorIs(t, err, records.ErrNotFound)
		})
		t.Run("another workspace's key does not exist", func(t *testing.T) {
			fresh, _ := createKey(t, st, ws.ID, now)
			n, h := newKey(t, other.ID, now)
			require.ErrorIs(t, st.RotateAPIKey(ctx, other.ID, fresh.ID, now, n, h), records.ErrNotFound)
			require.Nil(t, revokedAt(fresh.ID))
			_, err := st.APIKeyByHash(ctx, h)
			require.ErrorIs(t, err, records.ErrNotFound)
		})
	})
}
