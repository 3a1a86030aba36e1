package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Format of a key: Prefix, BodyLen random base62 characters, then a
// ChecksumLen-character base62 CRC32 (IEEE) of everything before it. The
// checksum lets Parse turn away typos and made-up strings before any
// database work, and lets secret scanners recognise a real key.
const (
	Prefix      = "slk_"
	BodyLen     = 32
	ChecksumLen = 6
	// Len is the length of a whole key.
	Len = len(Prefix) + BodyLen + ChecksumLen
	// DisplayLen is how much of a key is kept for display: the prefix and four
	// random characters, about 24 bits, enough to tell keys apart in a list
	// and too little to help guess one.
	DisplayLen = len(Prefix) + 4
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Errors Verify and Parse return. Every one of them wraps ErrInvalidKey, which
// is all an HTTP caller is ever told.
var (
	ErrInvalidKey = errors.New("apikey: invalid key")
	ErrMalformed  = fmt.Errorf("%w: malformed", ErrInvalidKey)
	ErrChecksum   = fmt.Errorf("%w: bad checksum", ErrInvalidKey)
	ErrUnknownKey = fmt.Errorf("%w: unknown", ErrInvalidKey)
	ErrRevoked    = fmt.Errorf("%w: revoked", ErrInvalidKey)
	ErrExpired    = fmt.Errorf("%w: expired", ErrInvalidKey)
)

// Parsed is what may be kept of a key: its SHA-256 and its display prefix.
type Parsed struct {
	// Hash is the hex SHA-256 of the whole key, the only form stored.
	Hash string
	// Display is the key's first DisplayLen characters.
	Display string
}

// Parse checks the shape and checksum of a key and returns its hash. It does
// no I/O. Errors wrap ErrMalformed or ErrChecksum and never contain the key.
func Parse(s string) (Parsed, error) {
	if err := check(s); err != nil {
		return Parsed{}, err
	}
	d := digestOf(s)
	return Parsed{Hash: d.hex(), Display: s[:DisplayLen]}, nil
}

// check answers whether s has the shape and checksum of a key.
func check(s string) error {
	if !sized(s) {
		return ErrMalformed
	}
	for i := len(Prefix); i < Len; i++ {
		if !isBase62(s[i]) {
			return ErrMalformed
		}
	}
	if checksumDigits(s[:Len-ChecksumLen]) != [ChecksumLen]byte([]byte(s[Len-ChecksumLen:])) {
		return ErrChecksum
	}
	return nil
}

// sized answers whether s has a key's length and prefix, the part of check
// worth doing before hashing a presented string.
func sized(s string) bool { return len(s) == Len && s[:len(Prefix)] == Prefix }

// digest is the SHA-256 of a key: what the cache is keyed by, and, in hex,
// what the store keeps.
type digest [sha256.Size]byte

// digestOf hashes a key of Len bytes without allocating, so that verifying
// a cached key (every authenticated request) makes no garbage.
func digestOf(s string) digest {
	var key [Len]byte
	n := copy(key[:], s)
	return sha256.Sum256(key[:n])
}

func (d digest) hex() string { return hex.EncodeToString(d[:]) }

// Generate returns a new random key read from r (crypto/rand when nil).
func Generate(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	out := make([]byte, 0, Len)
	out = append(out, Prefix...)
	var buf [64]byte
	for len(out) < len(Prefix)+BodyLen {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("apikey: read random bytes: %w", err)
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting the top bytes keeps every character
			// equally likely.
			if b >= 248 {
				continue
			}
			out = append(out, base62[b%62])
			if len(out) == len(Prefix)+BodyLen {
				break
			}
		}
	}
	out = append(out, checksum(string(out))...)
	return string(out), nil
}

// checksum is the CRC32 (IEEE) of s in base62, left-padded with zeros to
// ChecksumLen characters (62^6 > 2^32, so it always fits).
func checksum(s string) string {
	d := checksumDigits(s)
	return string(d[:])
}

func checksumDigits(s string) [ChecksumLen]byte {
	// The table-driven CRC over the string itself, rather than
	// crc32.ChecksumIEEE([]byte(s)), which copies s to the heap.
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ crc>>8
	}
	v := ^crc
	var out [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		out[i] = base62[v%62]
		v /= 62
	}
	return out
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}
