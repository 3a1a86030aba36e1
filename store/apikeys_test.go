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
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

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
