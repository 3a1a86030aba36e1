package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func openForKeys(tb testing.TB, dsn string) (*store.Store, string) {
	tb.Helper()
	st, err := store.Open(context.Background(), dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	ws := &records.Workspace{Name: "Keys", Plan: "pro"}
	require.NoError(tb, st.CreateWorkspace(context.Background(), ws))
	return st, ws.ID
}

func newKeyRow(tb testing.TB, ws string, at time.Time) (*apikey.Key, string) {
	tb.Helper()
	plain, err := apikey.Generate(nil)
	require.NoError(tb, err)
	p, err := apikey.Parse(plain)
	require.NoError(tb, err)
	return &apikey.Key{
		ID: records.NewID("key"), Workspace: ws, Name: "n", Prefix: p.Display,
		Scopes: []apikey.Scope{apikey.ScopeRead, apikey.ScopeBulk}, CreatedAt: at,
	}, p.Hash
}

func TestAPIKeys(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, ws := openForKeys(t, dsn)
		now := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)

		k, hash := newKeyRow(t, ws, now)
		require.NoError(t, st.CreateAPIKey(ctx, k, hash))
		require.Equal(t, now.Truncate(time.Microsecond), k.CreatedAt)

		got, err := st.APIKeyByHash(ctx, hash)
		require.NoError(t, err)
		require.Equal(t, k, got)
		other := hash[:63] + "0"
		if hash[63] == '0' {
			other = hash[:63] + "1"
		}
		_, err = st.APIKeyByHash(ctx, other)
		require.ErrorIs(t, err, records.ErrNotFound)

		t.Run("duplicate hash", func(t *testing.T) {
			dup, _ := newKeyRow(t, ws, now)
			require.ErrorIs(t, st.CreateAPIKey(ctx, dup, hash), records.ErrDuplicate)
		})
		t.Run("unknown workspace", func(t *testing.T) {
			orphan, h := newKeyRow(t, "ws_missing", now)
			require.Error(t, st.CreateAPIKey(ctx, orphan, h))
		})

		t.Run("touch keeps a gap", func(t *testing.T) {
			require.NoError(t, st.TouchAPIKey(ctx, k.ID, now, time.Minute))
			require.NoError(t, st.TouchAPIKey(ctx, k.ID, now.Add(59*time.Second), time.Minute))
			got, err := st.APIKey(ctx, ws, k.ID)
			require.NoError(t, err)
			require.Equal(t, now.Truncate(time.Microsecond), *got.LastUsedAt)
			require.NoError(t, st.TouchAPIKey(ctx, k.ID, now.Add(time.Minute), time.Minute))
			got, err = st.APIKey(ctx, ws, k.ID)
			require.NoError(t, err)
			require.Equal(t, now.Add(time.Minute).Truncate(time.Microsecond), *got.LastUsedAt)
		})

		t.Run("revoke never moves later", func(t *testing.T) {
			r, h := newKeyRow(t, ws, now)
			require.NoError(t, st.CreateAPIKey(ctx, r, h))
			got, err := st.RevokeAPIKey(ctx, ws, r.ID, now.Add(time.Hour))
			require.NoError(t, err)
			require.Equal(t, now.Add(time.Hour).Truncate(time.Microsecond), *got.RevokedAt)
			got, err = st.RevokeAPIKey(ctx, ws, r.ID, now.Add(time.Minute))
			require.NoError(t, err)
			require.Equal(t, now.Add(time.Minute).Truncate(time.Microsecond), *got.RevokedAt)
			got, err = st.RevokeAPIKey(ctx, ws, r.ID, now.Add(2*time.Hour))
			require.NoError(t, err)
			require.Equal(t, now.Add(time.Minute).Truncate(time.Microsecond), *got.RevokedAt)
			_, err = st.RevokeAPIKey(ctx, ws, "key_missing", now)
			require.ErrorIs(t, err, records.ErrNotFound)
		})

		t.Run("rotate is all or nothing", func(t *testing.T) {
			old, h := newKeyRow(t, ws, now)
			require.NoError(t, st.CreateAPIKey(ctx, old, h))
			next, nh := newKeyRow(t, ws, now)
			require.NoError(t, st.RotateAPIKey(ctx, ws, old.ID, now.Add(time.Hour), next, nh))
			_, err := st.APIKeyByHash(ctx, nh)
			require.NoError(t, err)

			again, ah := newKeyRow(t, ws, now)
			require.ErrorIs(t, st.RotateAPIKey(ctx, ws, old.ID, now, again, ah), apikey.ErrInactive)
			_, err = st.APIKeyByHash(ctx, ah)
			require.ErrorIs(t, err, records.ErrNotFound)

			// A new key whose insert fails leaves the old one untouched.
			fresh, fh := newKeyRow(t, ws, now)
			require.NoError(t, st.CreateAPIKey(ctx, fresh, fh))
			clash, _ := newKeyRow(t, ws, now)
			require.ErrorIs(t, st.RotateAPIKey(ctx, ws, fresh.ID, now, clash, nh), records.ErrDuplicate)
			got, err := st.APIKey(ctx, ws, fresh.ID)
			require.NoError(t, err)
			require.Nil(t, got.RevokedAt)

			_, err = st.APIKey(ctx, ws, old.ID)
			require.NoError(t, err)
			require.ErrorIs(t, st.RotateAPIKey(ctx, "ws_other", old.ID, now, clash, "x"), records.ErrNotFound)
		})

		t.Run("list pages by id", func(t *testing.T) {
			other := &records.Workspace{Name: "Other"}
			require.NoError(t, st.CreateWorkspace(ctx, other))
			o, oh := newKeyRow(t, other.ID, now)
			require.NoError(t, st.CreateAPIKey(ctx, o, oh))
			all, err := st.APIKeys(ctx, ws, "", 100)
			require.NoError(t, err)
			require.GreaterOrEqual(t, len(all), 5)
			for i := 1; i < len(all); i++ {
				require.Less(t, all[i-1].ID, all[i].ID)
				require.Equal(t, ws, all[i].Workspace)
			}
			page, err := st.APIKeys(ctx, ws, all[1].ID, 2)
			require.NoError(t, err)
			require.Equal(t, []string{all[2].ID, all[3].ID}, []string{page[0].ID, page[1].ID})
		})
	})
}

// The database file never holds a key's plaintext, not even in the WAL: only
// its hash and display prefix.
func TestAPIKeyPlaintextNeverStored(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	st, err := store.Open(ctx, path)
	require.NoError(t, err)
	ws := &records.Workspace{Name: "Acme"}
	require.NoError(t, st.CreateWorkspace(ctx, ws))
	svc, err := apikey.New(apikey.Config{Store: st})
	require.NoError(t, err)

	var plains, hashes []string
	for range 5 {
		k, plain, err := svc.Create(ctx, ws.ID, "Finance Sync", []apikey.Scope{apikey.ScopeRead}, nil)
		require.NoError(t, err)
		_, err = svc.Verify(ctx, plain)
		require.NoError(t, err)
		next, nextPlain, err := svc.Rotate(ctx, ws.ID, k.ID, time.Hour)
		require.NoError(t, err)
		_, err = svc.Verify(ctx, nextPlain)
		require.NoError(t, err)
		_, err = svc.Revoke(ctx, ws.ID, next.ID)
		require.NoError(t, err)
		for _, p := range []string{plain, nextPlain} {
			plains = append(plains, p)
			parsed, err := apikey.Parse(p)
			require.NoError(t, err)
			hashes = append(hashes, parsed.Hash)
		}
	}
	svc.Flush()

	files := func() []byte {
		var all []byte
		for _, suffix := range []string{"", "-wal", "-journal"} {
			b, err := os.ReadFile(path + suffix)
			if err == nil {
				all = append(all, b...)
			}
		}
		return all
	}
	check := func(data []byte) {
		t.Helper()
		require.NotEmpty(t, data)
		for i, p := range plains {
			secret := p[apikey.DisplayLen:]
			require.False(t, bytes.Contains(data, []byte(secret)), "plaintext of key %d found", i)
		}
		// The hashes are there, so the bytes searched are the right ones.
		found := 0
		for _, h := range hashes {
			if bytes.Contains(data, []byte(h)) {
				found++
			}
		}
		require.Equal(t, len(hashes), found)
	}
	check(files()) // while open, with the WAL in use
	require.NoError(t, st.Close())
	check(files())
}
