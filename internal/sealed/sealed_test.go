package sealed_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/sealed"
)

func newKey(t *testing.T) *sealed.Key {
	t.Helper()
	raw := make([]byte, sealed.KeySize)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	k, err := sealed.NewKey(raw)
	require.NoError(t, err)
	return k
}

func TestSealOpen(t *testing.T) {
	k := newKey(t)
	ring := sealed.NewKeyring(k)
	const plain = "whsec_c2VjcmV0IHNpZ25pbmcga2V5IG9mIDMyIGJ5dGVzISE="
	a, err := ring.Seal(plain)
	require.NoError(t, err)
	b, err := ring.Seal(plain)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "a fresh nonce per value")
	require.True(t, strings.HasPrefix(a, sealed.Prefix+k.ID()+":"))
	require.NotContains(t, a, plain)
	require.True(t, sealed.IsSealed(a))
	require.False(t, sealed.IsSealed(plain))
	for _, v := range []string{a, b} {
		got, err := ring.Open(v)
		require.NoError(t, err)
		require.Equal(t, plain, got)
	}
	empty, err := ring.Seal("")
	require.NoError(t, err)
	got, err := ring.Open(empty)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestOpenRefusals(t *testing.T) {
	old, cur := newKey(t), newKey(t)
	v, err := sealed.NewKeyring(old).Seal("the secret")
	require.NoError(t, err)

	// Under another key: said so, by id, never garbage.
	_, err = sealed.NewKeyring(cur).Open(v)
	require.ErrorIs(t, err, sealed.ErrUnknownKey)
	require.Contains(t, err.Error(), old.ID())

	// Given as an older key, it opens.
	got, err := sealed.NewKeyring(cur, old).Open(v)
	require.NoError(t, err)
	require.Equal(t, "the secret", got)

	ring := sealed.NewKeyring(old)
	id, body, err := sealed.Split(v)
	require.NoError(t, err)
	flipped := []byte(body)
	flipped[len(flipped)/2] ^= 1
	if bytes.Equal(flipped, []byte(body)) {
		t.Fatal("no change")
	}
	for name, bad := range map[string]string{
		"edited body":   sealed.Prefix + id + ":" + string(flipped),
		"truncated":     sealed.Prefix + id + ":" + body[:10],
		"not base64":    sealed.Prefix + id + ":***",
		"no key id":     sealed.Prefix + body,
		"not sealed":    "the secret",
		"other version": strings.Replace(v, "v1", "v2", 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ring.Open(bad)
			require.Error(t, err)
			require.ErrorIs(t, err, sealed.ErrCorrupt)
			require.NotContains(t, err.Error(), "the secret")
		})
	}
}

func TestKeyID(t *testing.T) {
	_, err := sealed.NewKey(make([]byte, 16))
	require.Error(t, err, "AES-256 only")
	a, b := newKey(t), newKey(t)
	require.Len(t, a.ID(), 16)
	require.NotEqual(t, a.ID(), b.ID())
	raw := bytes.Repeat([]byte{7}, sealed.KeySize)
	require.Equal(t, sealed.KeyID(raw), sealed.KeyID(raw))
}
