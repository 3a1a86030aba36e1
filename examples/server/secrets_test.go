package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/store"
)

// TestServerSealsSecrets: the first start generates the secret key beside
// the database, both mode 0600; no webhook secret reaches the database
// files; rotate-key moves the secrets to a new key, after which a server
// with the old key refuses to start, naming the keys, and one with the new
// key serves the endpoint. No key text is ever printed.
func TestServerSealsSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "crmkit.db")
	keyFile := db + ".secret-key"
	adminFile := filepath.Join(dir, "admin.key")

	s := start(t, bin, dir, "-db", db, "-admin-key-file", adminFile, "-allow-private-webhooks")
	for _, f := range []string{db, db + "-wal", db + "-shm", keyFile} {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	b, err := os.ReadFile(adminFile)
	require.NoError(t, err)
	admin := strings.TrimSpace(string(b))
	var secrets []string
	var ids []string
	for range 3 {
		status, body := s.call(t, "POST", "/api/v1/webhooks", admin, `{"url":"http://127.0.0.1:9/hook","events":["record.updated"]}`)
		require.Equal(t, 201, status, "%v", body)
		secrets = append(secrets, body["secret"].(string))
		ids = append(ids, body["id"].(string))
		status, body = s.call(t, "POST", "/api/v1/webhooks/"+ids[len(ids)-1]+"/rotate-secret", admin, "")
		require.Equal(t, 200, status, "%v", body)
		secrets = append(secrets, body["secret"].(string))
	}
	noSecretIn := func() {
		t.Helper()
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if b, err := os.ReadFile(db + suffix); err == nil {
				all = append(all, b...)
			}
		}
		require.True(t, bytes.Contains(all, []byte(ids[0])))
		for _, sec := range secrets {
			require.False(t, bytes.Contains(all, []byte(strings.TrimPrefix(sec, "whsec_"))), "a webhook secret is in the database files")
		}
	}
	noSecretIn()
	require.Equal(t, 0, s.stop(t))
	noSecretIn()

	oldKey, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	newFile := filepath.Join(dir, "new.key")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"secrets", "rotate-key", "-db", db, "--old-key-file", keyFile, "--new-key-file", newFile},
		func(string) string { return "" }, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	require.Regexp(t, regexp.MustCompile(`Re-sealed 6 secrets under key [0-9a-f]{16}`), out.String())
	fi, err := os.Stat(newFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	newKey, err := os.ReadFile(newFile)
	require.NoError(t, err)
	for _, k := range [][]byte{oldKey, newKey} {
		require.NotContains(t, out.String()+errOut.String(), strings.TrimSpace(string(k)))
	}
	oldParsed, err := store.ParseSecretKey(oldKey)
	require.NoError(t, err)
	newParsed, err := store.ParseSecretKey(newKey)
	require.NoError(t, err)

	// The old key, in its default place, opens nothing any more.
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", db)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CRMKIT_ADDR=", "CRMKIT_DB=", "CRMKIT_SECRET_KEY_FILE=")
	refused, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", refused)
	require.Contains(t, string(refused), oldParsed.ID())
	require.Contains(t, string(refused), newParsed.ID())
	require.NotContains(t, string(refused), strings.TrimSpace(string(oldKey)))

	s = start(t, bin, dir, "-db", db, "-secret-key-file", newFile)
	for _, id := range ids {
		status, body := s.call(t, "GET", "/api/v1/webhooks/"+id, admin, "")
		require.Equal(t, 200, status, "%v", body)
	}
	require.Equal(t, 0, s.stop(t))
	for _, k := range [][]byte{oldKey, newKey} {
		require.NotContains(t, s.stdout.String()+s.stderr.String(), strings.TrimSpace(string(k)))
	}
}

func TestSecretKeyFileSettings(t *testing.T) {
	o, err := parseOptions(nil, func(k string) string {
		return map[string]string{"CRMKIT_SECRET_KEY_FILE": "/etc/crmkit/key"}[k]
	}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "/etc/crmkit/key", o.secretKeyFile)
	o, err = parseOptions([]string{"-secret-key-file", "k"}, func(string) string { return "/etc/crmkit/key" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "k", o.secretKeyFile, "the flag wins")

	for db, want := range map[string]string{
		"crmkit.db":                        "crmkit.db.secret-key",
		"/var/lib/crm/x.db":                "/var/lib/crm/x.db.secret-key",
		"file:/var/lib/crm%20x.db?mode=rw": "/var/lib/crm x.db.secret-key",
		"sqlite:///data/crm.db":            "/data/crm.db.secret-key",
		"postgres://db/crm":                "crmkit.secret-key",
	} {
		require.Equal(t, want, defaultSecretKeyFile(db), db)
	}

	// A file named explicitly must exist; one in the default place is
	// made once and read after.
	dir := t.TempDir()
	_, err = serverSecretKey(filepath.Join(dir, "missing"), filepath.Join(dir, "crm.db"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.ReadFile(filepath.Join(dir, "crm.db.secret-key"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
