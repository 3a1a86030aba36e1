package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/internal/sealed"
	"github.com/smartlite/crmkit/records"
)

// Errors of sealed secrets. Neither ever carries a secret or a key; they
// name key ids (SecretKey.ID).
var (
	// ErrUnknownSecretKey: a stored secret is sealed under a key this store
	// was not opened with (WithSecretKey), or the store has no key at all.
	ErrUnknownSecretKey = errors.New("store: secret sealed under a key this store was not opened with")
	// ErrSecretCorrupt: a stored secret names a key the store has but does
	// not open under it: the value was damaged or edited.
	ErrSecretCorrupt = errors.New("store: sealed secret does not open under its key (damaged or edited)")
)

// SecretKey is a key-encryption key: 32 random bytes under which the store
// seals the secrets it must give back (webhook signing secrets, inbound
// source secrets, connector credentials). Printing one, with fmt or slog,
// shows its id only.
type SecretKey struct {
	raw [sealed.KeySize]byte
	set bool
}

// GenerateSecretKey answers a new random key.
func GenerateSecretKey() (SecretKey, error) {
	var k SecretKey
	if _, err := rand.Read(k.raw[:]); err != nil {
		return SecretKey{}, fmt.Errorf("store: generate secret key: %w", err)
	}
	k.set = true
	return k, nil
}

// ParseSecretKey reads the text Encode writes: the key's 32 bytes in
// base64 (standard or URL alphabet, padded or not), surrounding white space
// ignored. `openssl rand -base64 32` makes one.
func ParseSecretKey(text []byte) (SecretKey, error) {
	s := strings.TrimRight(strings.TrimSpace(string(text)), "=")
	var raw []byte
	var err error
	if strings.ContainsAny(s, "-_") {
		raw, err = base64.RawURLEncoding.DecodeString(s)
	} else {
		raw, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil || len(raw) != sealed.KeySize {
		return SecretKey{}, fmt.Errorf("store: a secret key is %d bytes in base64 (44 characters); this is not one", sealed.KeySize)
	}
	var k SecretKey
	copy(k.raw[:], raw)
	k.set = true
	return k, nil
}

// Encode answers the key as base64 text, the form ParseSecretKey reads.
// Keep it as you would a password.
func (k SecretKey) Encode() string { return base64.StdEncoding.EncodeToString(k.raw[:]) }

// ID answers a short name of the key (16 hex digits of a hash of it), which
// sealed values carry and errors name. It tells nothing about the key.
func (k SecretKey) ID() string { return sealed.KeyID(k.raw[:]) }

// IsZero reports whether k is the zero SecretKey, which is no key.
func (k SecretKey) IsZero() bool { return !k.set }

// String names the key by its id only.
func (k SecretKey) String() string { return "SecretKey(" + k.ID() + ")" }

// Format prints String whatever the verb, so no verb prints the key.
func (k SecretKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue logs the key's id only.
func (k SecretKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// WithSecretKey makes the store seal secrets under key, and open values
// sealed under key or any of older. On Open (unless WithoutMigrate) the
// store re-seals under key, in one transaction, every secret stored in
// plaintext or under one of older; see ResealSecrets.
func WithSecretKey(key SecretKey, older ...SecretKey) Option {
	return func(c *config) {
		c.secretKey = key
		c.olderKeys = older
	}
}

// keyring builds the store's keyring from its config: nil without a key.
func (c *config) keyring() (*sealed.Keyring, error) {
	if c.secretKey.IsZero() {
		if len(c.olderKeys) > 0 {
			return nil, errors.New("store: older secret keys given without a current one")
		}
		return nil, nil
	}
	primary, err := sealed.NewKey(c.secretKey.raw[:])
	if err != nil {
		return nil, err
	}
	var older []*sealed.Key
	for _, o := range c.olderKeys {
		if o.IsZero() {
			return nil, errors.New("store: an older secret key is the zero key")
		}
		k, err := sealed.NewKey(o.raw[:])
		if err != nil {
			return nil, err
		}
		older = append(older, k)
	}
	return sealed.NewKeyring(primary, older...), nil
}

// SecretKeyID answers the id of the key the store seals under, or "" when
// it was opened without one and stores secrets as given.
func (s *Store) SecretKeyID() string {
	if s.keys == nil {
		return ""
	}
	return s.keys.Primary()
}

// SealSecret answers what the store keeps of a secret it must give back
// later: plain sealed under the store's key, or plain itself when the store
// has no key. "" stays "" (no secret). Storage code calls it on every such
// value it writes, and OpenSecret on every one it reads.
func (s *Store) SealSecret(plain string) (string, error) {
	if s.keys == nil || plain == "" {
		return plain, nil
	}
	v, err := s.keys.Seal(plain)
	if err != nil {
		return "", fmt.Errorf("store: seal secret: %w", err)
	}
	return v, nil
}

// OpenSecret answers the secret SealSecret kept as stored. A value stored
// in plaintext (by a store without a key, or before keys were used) comes
// back as it is. A sealed value the store has no key for fails with
// ErrUnknownSecretKey, one that does not open with ErrSecretCorrupt; the
// error names the key id, never the value.
func (s *Store) OpenSecret(stored string) (string, error) {
	if !sealed.IsSealed(stored) {
		return stored, nil
	}
	if s.keys == nil {
		id, _, _ := sealed.Split(stored)
		return "", fmt.Errorf("%w: the value is sealed under key %s and this store has no key", ErrUnknownSecretKey, id)
	}
	plain, err := s.keys.Open(stored)
	switch {
	case errors.Is(err, sealed.ErrUnknownKey):
		id, _, _ := sealed.Split(stored)
		return "", fmt.Errorf("%w: the value is sealed under key %s, the store's key is %s", ErrUnknownSecretKey, id, s.keys.Primary())
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrSecretCorrupt, err)
	}
	return plain, nil
}

// openSecrets opens each stored value in place; what names the values'
// owner in the error (a table, column and row id).
func (s *Store) openSecrets(what string, values ...*string) error {
	for _, v := range values {
		plain, err := s.OpenSecret(*v)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		*v = plain
	}
	return nil
}

// sealSecrets seals each value in place.
func (s *Store) sealSecrets(values ...*string) error {
	for _, v := range values {
		sv, err := s.SealSecret(*v)
		if err != nil {
			return err
		}
		*v = sv
	}
	return nil
}

// sealedColumn is a column of secrets SealSecret made, which ResealSecrets
// walks. Its table has a text primary key named id.
type sealedColumn struct {
	table, column string
	// each, when set, is for a column holding several sealed values in one
	// text (a JSON object of header values, say): it answers the text with
	// f applied to every value in it. Nil means the column is one value.
	each func(text string, f func(string) (string, error)) (string, error)
}

// sealedColumns are every column of sealed secrets. Storage code of a
// feature that keeps secrets adds its columns here.
var sealedColumns = []sealedColumn{
	{table: "webhook_endpoints", column: "secret"},
	{table: "webhook_endpoints", column: "previous_secret"},
	{table: "inbound_sources", column: "secret"},
	{table: "inbound_sources", column: "previous_secret"},
	{table: "connectors", column: "headers", each: sealedHeaderValues},
}

// ResealSecrets seals under the store's key, in one transaction, every
// stored secret that is in plaintext or sealed under another key the store
// was given (WithSecretKey's older keys), and answers how many values it
// re-sealed. After it, the older keys open nothing this store holds, and
// may be destroyed. A value under a key the store was not given fails the
// whole call with ErrUnknownSecretKey and changes nothing. Open calls it
// when given a key (unless WithoutMigrate).
//
// On SQLite, the free pages of the file may keep the replaced text until
// they are reused or the database is vacuumed (VACUUM).
func (s *Store) ResealSecrets(ctx context.Context) (int, error) {
	if s.keys == nil {
		return 0, errors.New("store: ResealSecrets needs a secret key (WithSecretKey)")
	}
	current := sealed.Prefix + s.keys.Primary() + ":"
	// A look first, outside a transaction: most opens find nothing to do
	// and need not take SQLite's write lock for it.
	stale, err := s.staleSecrets(ctx, current)
	if err != nil || stale == 0 {
		return 0, err
	}
	n := 0
	err = s.InTx(ctx, func(ctx context.Context, _ records.Tx) error {
		n = 0
		for _, c := range sealedColumns {
			m, err := s.resealColumn(ctx, c, current)
			if err != nil {
				return err
			}
			n += m
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

type sealedValue struct {
	ID    string `bun:"id"`
	Value string `bun:"value"`
}

// staleQuery selects the rows of c that may hold a value not sealed under
// the current key.
func (s *Store) staleQuery(ctx context.Context, c sealedColumn, current string, dest *[]sealedValue) error {
	q := s.IDB(ctx).NewSelect().Table(c.table).ColumnExpr("id").ColumnExpr("? AS value", bun.Ident(c.column)).
		Where("? <> ''", bun.Ident(c.column))
	if c.each == nil {
		q = q.Where("substr(?, 1, ?) <> ?", bun.Ident(c.column), len(current), current)
	}
	return q.OrderExpr("id").Scan(ctx, dest)
}

func (s *Store) staleSecrets(ctx context.Context, current string) (int, error) {
	n := 0
	for _, c := range sealedColumns {
		var rows []sealedValue
		if err := s.staleQuery(ctx, c, current, &rows); err != nil {
			return 0, fmt.Errorf("store: read %s.%s: %w", c.table, c.column, err)
		}
		n += len(rows)
	}
	return n, nil
}

func (s *Store) resealColumn(ctx context.Context, c sealedColumn, current string) (int, error) {
	var rows []sealedValue
	if err := s.staleQuery(ctx, c, current, &rows); err != nil {
		return 0, fmt.Errorf("store: read %s.%s: %w", c.table, c.column, err)
	}
	n := 0
	for _, r := range rows {
		changed := false
		reseal := func(v string) (string, error) {
			if v == "" || strings.HasPrefix(v, current) {
				return v, nil
			}
			plain, err := s.OpenSecret(v)
			if err != nil {
				return "", err
			}
			changed = true
			return s.SealSecret(plain)
		}
		var next string
		var err error
		if c.each != nil {
			next, err = c.each(r.Value, reseal)
		} else {
			next, err = reseal(r.Value)
		}
		if err != nil {
			return 0, fmt.Errorf("store: %s.%s of %s: %w", c.table, c.column, r.ID, err)
		}
		if !changed {
			continue
		}
		_, err = s.IDB(ctx).NewUpdate().Table(c.table).Set("? = ?", bun.Ident(c.column), next).
			Where("id = ?", r.ID).Exec(ctx)
		if err != nil {
			return 0, fmt.Errorf("store: re-seal %s.%s: %w", c.table, c.column, err)
		}
		n++
	}
	return n, nil
}
