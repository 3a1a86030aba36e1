package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
	"github.com/smartlite/crmkit/store/storetest"
	"github.com/smartlite/crmkit/webhook"
	"github.com/smartlite/crmkit/webhook/outbound"
)

func secretKey(tb testing.TB) store.SecretKey {
	tb.Helper()
	k, err := store.GenerateSecretKey()
	require.NoError(tb, err)
	return k
}

// rawSecrets answers the stored text of every endpoint's secret and
// previous secret, as the database holds it.
func rawSecrets(tb testing.TB, st *store.Store) []string {
	tb.Helper()
	var rows []struct {
		Secret   string `bun:"secret"`
		Previous string `bun:"previous_secret"`
	}
	require.NoError(tb, st.DB().NewRaw("SELECT secret, previous_secret FROM webhook_endpoints ORDER BY id").
		Scan(context.Background(), &rows))
	var out []string
	for _, r := range rows {
		out = append(out, r.Secret)
		if r.Previous != "" {
			out = append(out, r.Previous)
		}
	}
	return out
}

// newSecretEndpoints stores n endpoints of a new workspace, each with a
// fresh secret and a previous one, and answers them with every secret.
func newSecretEndpoints(t *testing.T, st *store.Store, n int) ([]*outbound.Endpoint, []string) {
	t.Helper()
	ctx := context.Background()
	ws := storetest.Workspace(t, st, "pro")
	var eps []*outbound.Endpoint
	var secrets []string
	for range n {
		e := newTestEndpoint(ws.ID)
		var err error
		e.Secret, err = webhook.NewSecret()
		require.NoError(t, err)
		require.NoError(t, st.CreateEndpoint(ctx, e))
		// A rotation: the first secret becomes the previous one.
		next, err := webhook.NewSecret()
		require.NoError(t, err)
		exp := time.Now().Add(time.Hour)
		e.PreviousSecret, e.PreviousSecretExpiresAt, e.Secret = e.Secret, &exp, next
		require.NoError(t, st.UpdateEndpoint(ctx, e))
		eps = append(eps, e)
		secrets = append(secrets, e.PreviousSecret, e.Secret)
	}
	return eps, secrets
}

// TestWebhookSecretsSealedAtRest: with a secret key, no webhook secret is
// in the database in plaintext: not in the raw column on either database,
// not anywhere in the SQLite file, its WAL or its shared memory file. Every
// read path gives the secrets back.
func TestWebhookSecretsSealedAtRest(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		key := secretKey(t)
		st := open(t, dsn, store.WithSecretKey(key))
		require.Equal(t, key.ID(), st.SecretKeyID())
		eps, secrets := newSecretEndpoints(t, st, 5)

		raw := rawSecrets(t, st)
		require.Len(t, raw, len(secrets))
		for _, v := range raw {
			require.True(t, strings.HasPrefix(v, "sealed:v1:"+key.ID()+":"), "stored sealed under the key")
		}
		for _, s := range secrets {
			body := strings.TrimPrefix(s, "whsec_")
			for _, v := range raw {
				require.NotContains(t, v, body)
			}
		}

		// Every read opens them.
		got, err := st.GetEndpoint(ctx, eps[0].Workspace, eps[0].ID)
		require.NoError(t, err)
		require.Equal(t, eps[0].Secret, got.Secret)
		require.Equal(t, eps[0].PreviousSecret, got.PreviousSecret)
		list, err := st.ListEndpoints(ctx, eps[0].Workspace, "", 0)
		require.NoError(t, err)
		require.Len(t, list, len(eps))
		for i, e := range list {
			require.Equal(t, eps[i].Secret, e.Secret)
			require.Equal(t, eps[i].PreviousSecret, e.PreviousSecret)
		}
		d := newTestDelivery(t, st, eps[0], time.Now())
		_, target, _, err := st.DeliveryTarget(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, eps[0].Secret, target.Secret)
		require.Equal(t, eps[0].PreviousSecret, target.PreviousSecret)
		_, targets, err := st.FanoutTargets(ctx, eps[0].Workspace, d.EventID)
		require.NoError(t, err)
		require.Len(t, targets, len(eps))
		require.Equal(t, eps[0].Secret, targets[0].Secret)

		if st.Dialect() != store.DialectSQLite {
			return
		}
		files := func() []byte {
			var all []byte
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				if b, err := os.ReadFile(dsn + suffix); err == nil {
					all = append(all, b...)
				}
			}
			return all
		}
		check := func(data []byte) {
			t.Helper()
			require.True(t, bytes.Contains(data, []byte(eps[0].ID)), "the files searched hold the endpoints")
			for i, s := range secrets {
				require.False(t, bytes.Contains(data, []byte(s)), "secret %d found in the database files", i)
				require.False(t, bytes.Contains(data, []byte(strings.TrimPrefix(s, "whsec_"))), "secret %d found in the database files", i)
			}
		}
		check(files()) // while open, the WAL in use
		require.NoError(t, st.Close())
		check(files())
	})
}

// TestSecretsWithoutKey: a store opened without a key keeps secrets as
// given, and says so when it meets a sealed one; it never answers the
// sealed text as if it were the secret.
func TestSecretsWithoutKey(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		plain := open(t, dsn)
		require.Empty(t, plain.SecretKeyID())
		eps, secrets := newSecretEndpoints(t, plain, 1)
		require.ElementsMatch(t, secrets, rawSecrets(t, plain), "stored as given")
		got, err := plain.GetEndpoint(ctx, eps[0].Workspace, eps[0].ID)
		require.NoError(t, err)
		require.Equal(t, eps[0].Secret, got.Secret)

		key := secretKey(t)
		sealedSt := open(t, dsn, store.WithSecretKey(key)) // seals what it finds on open
		for _, v := range rawSecrets(t, sealedSt) {
			require.True(t, strings.HasPrefix(v, "sealed:v1:"+key.ID()+":"))
		}

		_, err = plain.GetEndpoint(ctx, eps[0].Workspace, eps[0].ID)
		require.ErrorIs(t, err, store.ErrUnknownSecretKey)
		require.Contains(t, err.Error(), key.ID())
		require.Contains(t, err.Error(), "has no key")
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s)
		}
		_, err = plain.ListEndpoints(ctx, eps[0].Workspace, "", 0)
		require.ErrorIs(t, err, store.ErrUnknownSecretKey)
	})
}

// TestWrongSecretKey: a store opened with a key other than the one the
// secrets are sealed under refuses to open, naming both key ids; a sealed
// value edited in the database fails to open, naming neither secret.
func TestWrongSecretKey(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		right, wrong := secretKey(t), secretKey(t)
		st := open(t, dsn, store.WithSecretKey(right))
		eps, secrets := newSecretEndpoints(t, st, 2)

		_, err := store.Open(ctx, dsn, store.WithSecretKey(wrong))
		require.ErrorIs(t, err, store.ErrUnknownSecretKey)
		require.Contains(t, err.Error(), right.ID())
		require.Contains(t, err.Error(), wrong.ID())
		for _, s := range append(secrets, right.Encode(), wrong.Encode()) {
			require.NotContains(t, err.Error(), s)
		}
		// Without the check on open, the read itself refuses.
		other, err := store.Open(ctx, dsn, store.WithSecretKey(wrong), store.WithoutMigrate())
		require.NoError(t, err)
		defer other.Close()
		_, err = other.GetEndpoint(ctx, eps[0].Workspace, eps[0].ID)
		require.ErrorIs(t, err, store.ErrUnknownSecretKey)

		// One character of the sealed text changed.
		raw := rawSecrets(t, st)[0]
		i := len(raw) - 5
		edited := raw[:i] + string(raw[i]^1) + raw[i+1:]
		_, err = st.DB().NewRaw("UPDATE webhook_endpoints SET secret = ? WHERE id = ?", edited, eps[0].ID).Exec(ctx)
		require.NoError(t, err)
		_, err = st.GetEndpoint(ctx, eps[0].Workspace, eps[0].ID)
		require.ErrorIs(t, err, store.ErrSecretCorrupt)
		require.Contains(t, err.Error(), eps[0].ID)
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s)
		}
	})
}

// TestRotateSecretKey: ResealSecrets moves every secret to the new key in
// one call; the old key alone then opens nothing, the new one alone opens
// everything.
func TestRotateSecretKey(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		oldKey, newKey := secretKey(t), secretKey(t)
		st, err := store.Open(ctx, dsn, store.WithSecretKey(oldKey))
		require.NoError(t, err)
		eps, secrets := newSecretEndpoints(t, st, 3)
		before := rawSecrets(t, st)
		require.NoError(t, st.Close())

		rot, err := store.Open(ctx, dsn, store.WithSecretKey(newKey, oldKey), store.WithoutMigrate())
		require.NoError(t, err)
		n, err := rot.ResealSecrets(ctx)
		require.NoError(t, err)
		require.Equal(t, len(secrets), n)
		after := rawSecrets(t, rot)
		for i, v := range after {
			require.True(t, strings.HasPrefix(v, "sealed:v1:"+newKey.ID()+":"))
			require.NotEqual(t, before[i], v)
		}
		n, err = rot.ResealSecrets(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "nothing left under the old key")
		require.NoError(t, rot.Close())

		_, err = store.Open(ctx, dsn, store.WithSecretKey(oldKey))
		require.ErrorIs(t, err, store.ErrUnknownSecretKey, "the old key no longer opens")

		st = open(t, dsn, store.WithSecretKey(newKey))
		for _, e := range eps {
			got, err := st.GetEndpoint(ctx, e.Workspace, e.ID)
			require.NoError(t, err)
			require.Equal(t, e.Secret, got.Secret)
			require.Equal(t, e.PreviousSecret, got.PreviousSecret)
		}
	})
}

// TestResealIsAllOrNothing: a value under a key the rotation was not given
// fails the rotation, which then changes no value.
func TestResealIsAllOrNothing(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b, c := secretKey(t), secretKey(t), secretKey(t)
		plain := open(t, dsn)
		newSecretEndpoints(t, plain, 2) // plaintext, resealable by any key
		stA, err := store.Open(ctx, dsn, store.WithSecretKey(a), store.WithoutMigrate())
		require.NoError(t, err)
		defer stA.Close()
		newSecretEndpoints(t, stA, 1) // sealed under a
		before := rawSecrets(t, plain)

		stC, err := store.Open(ctx, dsn, store.WithSecretKey(c, b), store.WithoutMigrate())
		require.NoError(t, err)
		defer stC.Close()
		_, err = stC.ResealSecrets(ctx)
		require.ErrorIs(t, err, store.ErrUnknownSecretKey)
		require.Equal(t, before, rawSecrets(t, plain), "nothing changed")
	})
}

// A SecretKey prints as its id, whatever the verb or logger.
func TestSecretKeyNeverPrinted(t *testing.T) {
	k := secretKey(t)
	enc := k.Encode()
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("opened", "key", k)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("opened", "key", k, "ptr", &k)
	out := fmt.Sprintf("%v %+v %#v %s %x %X %d %q", k, k, k, k, k, k, k, k) + logged.String()
	require.NotContains(t, out, enc)
	require.NotContains(t, out, strings.TrimRight(enc, "="))
	require.Contains(t, out, k.ID())

	back, err := store.ParseSecretKey([]byte(" " + enc + "\n"))
	require.NoError(t, err)
	require.Equal(t, k.ID(), back.ID())
	_, err = store.ParseSecretKey([]byte("c2hvcnQ="))
	require.Error(t, err)
	require.True(t, store.SecretKey{}.IsZero())
}

// ResealSecrets needs a key; a zero key given as older is refused.
func TestSecretKeyOptions(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.SQLiteDSN(t)
	st := open(t, dsn)
	_, err := st.ResealSecrets(ctx)
	require.Error(t, err)
	_, err = store.Open(ctx, dsn, store.WithSecretKey(secretKey(t), store.SecretKey{}))
	require.Error(t, err)
	v, err := st.SealSecret("x")
	require.NoError(t, err)
	require.Equal(t, "x", v, "a store without a key keeps secrets as given")
}

// The conformance suite holds with secrets sealed.
func TestConformanceSQLiteSealed(t *testing.T) {
	key := secretKey(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, testdb.SQLiteDSN(t), store.WithSecretKey(key))
	}, conformance)
}

// TestInboundSourceSecretsSealedAtRest: an inbound source's secrets are
// sealed like a webhook endpoint's, read back by every read, and moved by
// a rotation.
func TestInboundSourceSecretsSealedAtRest(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		oldKey, newKey := secretKey(t), secretKey(t)
		st := open(t, dsn, store.WithSecretKey(oldKey))
		ws := storetest.Workspace(t, st, "pro")
		now := time.Now()
		exp := now.Add(time.Hour)
		src := &ingest.InboundSource{ID: records.NewID("src"), Workspace: ws.ID, Name: "Shop", Kind: "shopify",
			Secret: "shpss_current-client-secret", PreviousSecret: "shpss_previous-client-secret", PreviousSecretExpiresAt: &exp,
			Mapping: mapping.Spec{Targets: []mapping.Target{{Object: "lead"}}}, Enabled: true, MaxBodyBytes: 1 << 20,
			CreatedAt: now, UpdatedAt: now}
		require.NoError(t, st.CreateInboundSource(ctx, src))
		raw := func() []string {
			var rows []struct {
				Secret   string `bun:"secret"`
				Previous string `bun:"previous_secret"`
			}
			require.NoError(t, st.DB().NewRaw("SELECT secret, previous_secret FROM inbound_sources").Scan(ctx, &rows))
			require.Len(t, rows, 1)
			return []string{rows[0].Secret, rows[0].Previous}
		}
		for _, v := range raw() {
			require.True(t, strings.HasPrefix(v, "sealed:v1:"+oldKey.ID()+":"))
			require.NotContains(t, v, "client-secret")
		}
		for _, workspace := range []string{ws.ID, ""} {
			got, err := st.GetInboundSource(ctx, workspace, src.ID)
			require.NoError(t, err)
			require.Equal(t, src.Secret, got.Secret)
			require.Equal(t, src.PreviousSecret, got.PreviousSecret)
		}
		list, err := st.ListInboundSources(ctx, ws.ID, "", 0)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, src.Secret, list[0].Secret)

		rot, err := store.Open(ctx, dsn, store.WithSecretKey(newKey, oldKey), store.WithoutMigrate())
		require.NoError(t, err)
		defer rot.Close()
		n, err := rot.ResealSecrets(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		for _, v := range raw() {
			require.True(t, strings.HasPrefix(v, "sealed:v1:"+newKey.ID()+":"))
		}
		_, err = st.GetInboundSource(ctx, ws.ID, src.ID)
		require.ErrorIs(t, err, store.ErrUnknownSecretKey, "the old key opens it no more")
		got, err := rot.GetInboundSource(ctx, ws.ID, src.ID)
		require.NoError(t, err)
		require.Equal(t, src.PreviousSecret, got.PreviousSecret)
	})
}
