// Package sealed encrypts short secrets for storage: AES-256-GCM under a
// key-encryption key (KEK), a random 96-bit nonce per value, and the id of
// the key in the sealed text, so a value sealed under one key is told from
// one sealed under another without trying to open it.
//
// A sealed value is text, safe in any TEXT column:
//
//	sealed:v1:<key id>:<base64url(nonce || ciphertext || tag)>
//
// The prefix up to the last colon is the additional authenticated data, so
// a value whose key id or version was edited does not open. The key id is
// the first 8 bytes of the key's SHA-256 under a label, in hex: it names a
// key without telling anything about it.
//
// Errors name key ids, never a key or a plaintext.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a key-encryption key in bytes (AES-256).
const KeySize = 32

// Prefix starts every sealed value; a stored value without it is plaintext.
const Prefix = "sealed:v1:"

// Errors Open answers, wrapped with the key id concerned.
var (
	// ErrUnknownKey: the value is sealed under a key the Keyring lacks.
	ErrUnknownKey = errors.New("sealed under a key not given")
	// ErrCorrupt: the value names a known key but does not open under it
	// (damaged, or edited), or is not a sealed value at all.
	ErrCorrupt = errors.New("sealed value does not open")
)

// Key is one key-encryption key.
type Key struct {
	id   string
	aead cipher.AEAD
}

// NewKey makes a Key of KeySize raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("sealed: a key is %d bytes, not %d", KeySize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{id: KeyID(raw), aead: aead}, nil
}

// KeyID answers the id of the raw key.
func KeyID(raw []byte) string {
	h := sha256.New()
	h.Write([]byte("crmkit key-encryption key id\x00"))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// ID answers the key's id.
func (k *Key) ID() string { return k.id }

// Keyring seals under its first key and opens under any of its keys.
type Keyring struct {
	primary *Key
	byID    map[string]*Key
}

// NewKeyring answers a Keyring sealing under primary and opening values
// sealed under primary or any of older.
func NewKeyring(primary *Key, older ...*Key) *Keyring {
	r := &Keyring{primary: primary, byID: map[string]*Key{primary.id: primary}}
	for _, k := range older {
		if _, ok := r.byID[k.id]; !ok {
			r.byID[k.id] = k
		}
	}
	return r
}

// Primary answers the id of the key Seal uses.
func (r *Keyring) Primary() string { return r.primary.id }

// Seal encrypts plain under the primary key.
func (r *Keyring) Seal(plain string) (string, error) {
	k := r.primary
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sealed: nonce: %w", err)
	}
	head := Prefix + k.id + ":"
	out := k.aead.Seal(nonce, nonce, []byte(plain), []byte(head))
	return head + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value Seal made under any key of the ring.
func (r *Keyring) Open(v string) (string, error) {
	id, body, err := Split(v)
	if err != nil {
		return "", err
	}
	k, ok := r.byID[id]
	if !ok {
		return "", fmt.Errorf("sealed: key %s: %w", id, ErrUnknownKey)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	ns := k.aead.NonceSize()
	if err != nil || len(raw) < ns+k.aead.Overhead() {
		return "", fmt.Errorf("sealed: key %s: %w", id, ErrCorrupt)
	}
	plain, err := k.aead.Open(nil, raw[:ns], raw[ns:], []byte(Prefix+id+":"))
	if err != nil {
		return "", fmt.Errorf("sealed: key %s: %w", id, ErrCorrupt)
	}
	return string(plain), nil
}

// IsSealed reports whether v has the form of a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// Split answers the key id and the encoded body of a sealed value.
func Split(v string) (id, body string, err error) {
	rest, ok := strings.CutPrefix(v, Prefix)
	if !ok {
		return "", "", fmt.Errorf("sealed: %w: no %q prefix", ErrCorrupt, Prefix)
	}
	id, body, ok = strings.Cut(rest, ":")
	if !ok || len(id) != 16 {
		return "", "", fmt.Errorf("sealed: %w: no key id", ErrCorrupt)
	}
	return id, body, nil
}
