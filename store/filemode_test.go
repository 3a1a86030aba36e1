//go:build unix

package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
)

// TestSQLiteFilesOwnerOnly: a new SQLite database and the -wal and -shm
// files SQLite makes beside it are readable by their owner only, whatever
// the umask lets through, for each form of DSN Open takes.
func TestSQLiteFilesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	for name, c := range map[string]struct{ file, dsn string }{
		"path":   {"crm %?#.db", "crm %?#.db"},
		"file":   {"crm 1.db", "file:crm%201.db?_pragma=busy_timeout(5000)"},
		"sqlite": {"crm2.db", "sqlite://crm2.db"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			dsn := c.dsn
			if name == "path" {
				dsn = path
			} else {
				dsn = strings.Replace(dsn, "crm", filepath.ToSlash(dir)+"/crm", 1)
			}
			st, err := store.Open(context.Background(), dsn)
			require.NoError(t, err)
			defer st.Close()
			storetest.Workspace(t, st, "pro") // a write, so the WAL exists
			for _, suffix := range []string{"", "-wal", "-shm"} {
				fi, err := os.Stat(path + suffix)
				require.NoError(t, err, suffix)
				require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s%s", name, suffix)
			}
		})
	}
}
