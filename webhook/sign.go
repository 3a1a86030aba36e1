package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of both schemes. The Standard Webhooks names are written as
// the specification writes them; [http.Header] canonicalises them on Set and
// Get, and HTTP header names are case-insensitive on the wire.
const (
	HeaderSignature         = "X-SmartLite-Signature"
	HeaderWebhookID         = "webhook-id"
	HeaderWebhookTimestamp  = "webhook-timestamp"
	HeaderWebhookSignature  = "webhook-signature"
	SecretPrefix            = "whsec_"
	secretRandomBytes       = 32
	standardSignaturePrefix = "v1,"
)

// ErrInvalidSecret is returned when a secret cannot be used: it is empty,
// or, for the Standard Webhooks scheme, the part after "whsec_" is not
// standard base64. Its messages never contain the secret.
var ErrInvalidSecret = errors.New("webhook: invalid secret")

// NewSecret returns a fresh endpoint secret: "whsec_" followed by the
// standard base64 encoding of 32 random bytes. The same string keys both
// schemes.
func NewSecret() (string, error) {
	var b [secretRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("webhook: reading random bytes: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Sign returns the value of the X-SmartLite-Signature header for one secret:
// "t=<unix seconds>,v1=<hex HMAC-SHA256>", keyed with the whole secret string
// over "<t>.<body>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := t.Unix()
	buf := make([]byte, 0, len("t=,v1=")+20+hex.EncodedLen(sha256.Size))
	buf = append(buf, "t="...)
	buf = strconv.AppendInt(buf, ts, 10)
	buf = append(buf, ",v1="...)
	buf = appendSmartLiteMAC(buf, []byte(secret), ts, body)
	return string(buf)
}

// SignStandard returns the value of the webhook-signature header of the
// Standard Webhooks scheme for one secret: "v1,<base64 HMAC-SHA256>", keyed
// with the base64-decoded part of the secret after "whsec_" over
// "<id>.<unix seconds>.<body>". It fails with ErrInvalidSecret when that part
// is not standard base64.
func SignStandard(secret, id string, t time.Time, body []byte) (string, error) {
	key, err := standardKey(secret)
	if err != nil {
		return "", err
	}
	buf := append([]byte(nil), standardSignaturePrefix...)
	return string(appendStandardMAC(buf, key, id, t.Unix(), body)), nil
}

// Headers returns the signature headers of one delivery in both schemes:
// X-SmartLite-Signature, webhook-id, webhook-timestamp and webhook-signature.
// Every secret contributes one signature to each scheme, so during a
// rotation's grace period a receiver holding either the old or the new secret
// accepts the delivery.
func Headers(secrets []string, id string, t time.Time, body []byte) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	if id == "" {
		return nil, errors.New("webhook: empty event id")
	}
	ts := t.Unix()
	tsText := strconv.FormatInt(ts, 10)

	sl := make([]byte, 0, 2+len(tsText)+len(secrets)*(4+hex.EncodedLen(sha256.Size)))
	sl = append(sl, "t="...)
	sl = append(sl, tsText...)
	std := make([]byte, 0, len(secrets)*(len(standardSignaturePrefix)+1+base64.StdEncoding.EncodedLen(sha256.Size)))
	for i, secret := range secrets {
		if secret == "" {
			return nil, fmt.Errorf("%w: secret %d is empty", ErrInvalidSecret, i)
		}
		key, err := standardKey(secret)
		if err != nil {
			return nil, fmt.Errorf("%w (secret %d)", err, i)
		}
		sl = append(sl, ",v1="...)
		sl = appendSmartLiteMAC(sl, []byte(secret), ts, body)
		if i > 0 {
			std = append(std, ' ')
		}
		std = append(std, standardSignaturePrefix...)
		std = appendStandardMAC(std, key, id, ts, body)
	}

	h := make(http.Header, 4)
	h.Set(HeaderSignature, string(sl))
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, tsText)
	h.Set(HeaderWebhookSignature, string(std))
	return h, nil
}

// HMACSigner is the default signer of outbound deliveries: it produces both
// schemes' headers with HMAC-SHA256, exactly as [Headers] does. Its zero value
// is ready to use.
type HMACSigner struct{}

// Sign returns the signature headers of one delivery; see [Headers].
func (HMACSigner) Sign(secrets []string, id string, t time.Time, body []byte) (http.Header, error) {
	return Headers(secrets, id, t, body)
}

// standardKey decodes the HMAC key of the Standard Webhooks scheme. Like the
// reference libraries, it accepts the secret with or without its "whsec_"
// prefix.
func standardKey(secret string) ([]byte, error) {
	enc := strings.TrimPrefix(secret, SecretPrefix)
	if enc == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// The decoder's error quotes an offset into the secret, not its
		// bytes, but a fixed message is simpler to audit.
		return nil, fmt.Errorf("%w: the part after %q is not standard base64", ErrInvalidSecret, SecretPrefix)
	}
	return key, nil
}

// appendSmartLiteMAC appends the hex HMAC-SHA256 of "<ts>.<body>".
func appendSmartLiteMAC(dst, key []byte, ts int64, body []byte) []byte {
	var sum [sha256.Size]byte
	smartLiteMAC(sum[:0], key, ts, body)
	return hex.AppendEncode(dst, sum[:])
}

func smartLiteMAC(dst, key []byte, ts int64, body []byte) []byte {
	var tsBuf [24]byte
	m := hmac.New(sha256.New, key)
	m.Write(strconv.AppendInt(tsBuf[:0], ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(dst)
}

// appendStandardMAC appends the base64 HMAC-SHA256 of "<id>.<ts>.<body>".
func appendStandardMAC(dst, key []byte, id string, ts int64, body []byte) []byte {
	var sum [sha256.Size]byte
	standardMAC(sum[:0], key, id, ts, body)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

func standardMAC(dst, key []byte, id string, ts int64, body []byte) []byte {
	var tsBuf [24]byte
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(tsBuf[:0], ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(dst)
}
