package apikey

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// withChecksum completes a Prefix+BodyLen string into a valid key.
func withChecksum(body string) string { return body + checksum(body) }

func TestParse(t *testing.T) {
	valid := withChecksum(Prefix + strings.Repeat("aB3", 10) + "Zz")
	require.Len(t, valid, Len)
	flipped := []byte(valid)
	flipped[10] = 'Q' // still base62, now the checksum disagrees
	badSum := valid[:Len-1] + string(rune(valid[Len-1]^1))

	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"valid", valid, nil},
		{"empty", "", ErrMalformed},
		{"wrong prefix", "slx_" + valid[4:], ErrMalformed},
		{"upper prefix", "SLK_" + valid[4:], ErrMalformed},
		{"too short", valid[:Len-1], ErrMalformed},
		{"too long", valid + "0", ErrMalformed},
		{"non base62 body", valid[:8] + "-" + valid[9:], ErrMalformed},
		{"non base62 checksum", valid[:Len-1] + "_", ErrMalformed},
		{"non ascii", valid[:8] + "é" + valid[10:], ErrMalformed},
		{"body changed", string(flipped), ErrChecksum},
		{"checksum changed", badSum, ErrChecksum},
		{"whitespace", " " + valid[1:], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.in)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.ErrorIs(t, err, ErrInvalidKey)
				if len(tt.in) > DisplayLen {
					require.NotContains(t, err.Error(), tt.in[DisplayLen:])
				}
				return
			}
			require.NoError(t, err)
			require.Len(t, p.Hash, 64)
			require.Equal(t, tt.in[:DisplayLen], p.Display)
		})
	}
}

func TestChecksumIsPadded(t *testing.T) {
	// Some bodies have a CRC32 small enough to need leading zeros; every
	// checksum must still be ChecksumLen characters.
	for i := range 2000 {
		body := Prefix + strings.Repeat(string(base62[i%62]), BodyLen-1) + string(base62[(i/62)%62])
		require.Len(t, checksum(body), ChecksumLen)
	}
	require.Equal(t, "000000", checksum("")) // CRC32 of nothing is 0
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k, err := Generate(nil)
		require.NoError(t, err)
		require.Len(t, k, Len)
		require.True(t, strings.HasPrefix(k, Prefix))
		_, err = Parse(k)
		require.NoError(t, err)
		require.False(t, seen[k])
		seen[k] = true
	}

	t.Run("deterministic with a fixed reader", func(t *testing.T) {
		a, err := Generate(bytes.NewReader(bytes.Repeat([]byte{7, 250, 61}, 100)))
		require.NoError(t, err)
		b, err := Generate(bytes.NewReader(bytes.Repeat([]byte{7, 250, 61}, 100)))
		require.NoError(t, err)
		require.Equal(t, a, b)
		require.Equal(t, Prefix+strings.Repeat("7z", 16), a[:Len-ChecksumLen])
	})

	t.Run("reader failure", func(t *testing.T) {
		_, err := Generate(bytes.NewReader(nil))
		require.Error(t, err)
	})
}

func TestScopes(t *testing.T) {
	got, err := NormalizeScopes([]Scope{"write", "READ", "WRITE", " admin "})
	require.NoError(t, err)
	require.Equal(t, []Scope{ScopeRead, ScopeWrite, ScopeAdmin}, got)

	for _, bad := range [][]Scope{nil, {}, {"OWNER"}, {"READ", ""}} {
		_, err := NormalizeScopes(bad)
		require.Error(t, err)
	}

	tests := []struct {
		have  []Scope
		need  Scope
		grant bool
	}{
		{[]Scope{ScopeRead}, ScopeRead, true},
		{[]Scope{ScopeRead}, ScopeWrite, false},
		{[]Scope{ScopeAdmin}, ScopeDelete, true},
		{[]Scope{ScopeAdmin}, ScopeBulk, true},
		{[]Scope{ScopeWrite, ScopeBulk}, ScopeBulk, true},
		{nil, ScopeRead, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v grants %s", tt.have, tt.need), func(t *testing.T) {
			require.Equal(t, tt.grant, Grants(tt.have, tt.need))
		})
	}

	p := &Principal{Scopes: []Scope{ScopeRead, ScopeWrite}}
	require.True(t, p.CanGrant([]Scope{ScopeRead}))
	require.True(t, p.CanGrant([]Scope{ScopeRead, ScopeWrite}))
	require.False(t, p.CanGrant([]Scope{ScopeRead, ScopeDelete}))
	require.False(t, p.CanGrant([]Scope{ScopeAdmin}))
	admin := &Principal{Scopes: []Scope{ScopeAdmin}}
	require.True(t, admin.CanGrant(AllScopes))
	var none *Principal
	require.False(t, none.Has(ScopeRead))
}

func FuzzParse(f *testing.F) {
	k, err := Generate(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k)
	f.Add("")
	f.Add(Prefix)
	f.Add(k[:Len-1] + "0")
	f.Add(strings.Repeat("\xff", Len))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("unexpected error kind %v", err)
			}
			return
		}
		if len(s) != Len || !strings.HasPrefix(s, Prefix) || checksum(s[:Len-ChecksumLen]) != s[Len-ChecksumLen:] {
			t.Fatalf("accepted an invalid key")
		}
		if len(p.Hash) != 64 || p.Display != s[:DisplayLen] {
			t.Fatalf("bad parse result")
		}
	})
}
