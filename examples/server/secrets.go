package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/smartlite/crmkit/store"
)

// defaultSecretKeyFile is where the server keeps its key-encryption key
// when -secret-key-file is not given: beside an SQLite database file
// (crmkit.db gets crmkit.db.secret-key), or, for a postgres:// database,
// crmkit.secret-key in the working directory. Replicas on one Postgres
// database must share one key, so give them the same file.
func defaultSecretKeyFile(db string) string {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return "crmkit.secret-key"
	}
	path := db
	for _, p := range []string{"file:", "sqlite://", "sqlite:"} {
		if rest, ok := strings.CutPrefix(path, p); ok {
			path, _, _ = strings.Cut(rest, "?")
			if p == "file:" {
				if u, err := url.PathUnescape(path); err == nil {
					path = u
				}
			}
			break
		}
	}
	return path + ".secret-key"
}

// serverSecretKey answers the key the server seals secrets under: read
// from file, or, when file is "" (the default place), read from
// defaultSecretKeyFile(db) or generated there, mode 0600, on first start. A
// file named explicitly must exist: a missing one is more likely a missing
// mount than a first start, and a new key would not open what the old one
// sealed.
func serverSecretKey(file, db string, log *slog.Logger) (store.SecretKey, error) {
	if file != "" {
		return readSecretKeyFile(file, log)
	}
	file = defaultSecretKeyFile(db)
	k, err := readSecretKeyFile(file, log)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err = createSecretKeyFile(file)
	if errors.Is(err, fs.ErrExist) {
		return readSecretKeyFile(file, log) // another replica made it first
	}
	if err != nil {
		return store.SecretKey{}, err
	}
	log.Warn("generated the key that seals webhook and connector secrets in the database; back it up with the database, and give every replica the same file",
		"secret_key_file", file, "secret_key_id", k.ID())
	return k, nil
}

// readSecretKeyFile reads a key written by createSecretKeyFile or made with
// `openssl rand -base64 32`. A file others may read is used, with a warning.
func readSecretKeyFile(path string, log *slog.Logger) (store.SecretKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	k, err := store.ParseSecretKey(b)
	if err != nil {
		return store.SecretKey{}, fmt.Errorf("secret key file %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && log != nil {
		log.Warn("the secret key file is readable by others than its owner; chmod 600 it", "secret_key_file", path)
	}
	return k, nil
}

// createSecretKeyFile generates a key and writes it to path, mode 0600,
// failing with fs.ErrExist when path exists. The key is written to a
// temporary file first and linked into place, so nobody reads a half
// written key.
func createSecretKeyFile(path string) (store.SecretKey, error) {
	k, err := store.GenerateSecretKey()
	if err != nil {
		return store.SecretKey{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	if _, err := tmp.WriteString(k.Encode() + "\n"); err != nil {
		_ = tmp.Close()
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return store.SecretKey{}, fmt.Errorf("secret key file: %w", err)
	}
	return k, nil
}

// secretKeyCommands are the operator commands that open the store with
// secret keys of their own.
var secretKeyCommands = map[string]func(ctx context.Context, db string, args []string, stdout io.Writer) error{
	"secrets rotate-key": secretsRotateKey,
}

// secretsRotateKey re-seals every secret in the database under a new key:
// server secrets rotate-key --old-key-file OLD --new-key-file NEW. NEW is
// generated (mode 0600) when it does not exist. It runs in one transaction;
// afterwards OLD opens nothing in the database, and the servers must be
// started with NEW.
func secretsRotateKey(ctx context.Context, db string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("secrets rotate-key", flag.ContinueOnError)
	oldFile := fs.String("old-key-file", "", "the key the secrets are sealed under now")
	newFile := fs.String("new-key-file", "", "the key to seal them under; generated when the file does not exist")
	if err := parseFlags(fs, args, "old-key-file", "new-key-file"); err != nil {
		return err
	}
	oldKey, err := readSecretKeyFile(*oldFile, nil)
	if err != nil {
		return err
	}
	newKey, err := readSecretKeyFile(*newFile, nil)
	generated := false
	if errors.Is(err, os.ErrNotExist) {
		newKey, err = createSecretKeyFile(*newFile)
		generated = true
	}
	if err != nil {
		return err
	}
	if oldKey.ID() == newKey.ID() {
		return usageError{errors.New("the old and new key files hold the same key")}
	}
	st, err := store.Open(ctx, db, store.WithSecretKey(newKey, oldKey), store.WithoutMigrate())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	n, err := st.ResealSecrets(ctx)
	if err != nil {
		return err
	}
	if generated {
		fmt.Fprintf(stdout, "Generated key %s in %s (mode 0600).\n", newKey.ID(), *newFile)
	}
	fmt.Fprintf(stdout, "Re-sealed %d secrets under key %s; key %s opens none of them now.\n", n, newKey.ID(), oldKey.ID())
	fmt.Fprintf(stdout, "Start the servers with -secret-key-file %s (env CRMKIT_SECRET_KEY_FILE), or move it over %s.\n", *newFile, *oldFile)
	return nil
}
