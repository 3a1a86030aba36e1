package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// Header names of Shopify's webhooks. X-Shopify-Hmac-Sha256 carries the
// signature; X-Shopify-Webhook-Id is the same on every retry of one delivery,
// the key to drop duplicates by; X-Shopify-Triggered-At says when the event
// happened, which a receiver can use to drop stale deliveries.
const (
	HeaderShopifyHmac        = "X-Shopify-Hmac-Sha256"
	HeaderShopifyWebhookID   = "X-Shopify-Webhook-Id"
	HeaderShopifyTopic       = "X-Shopify-Topic"
	HeaderShopifyShopDomain  = "X-Shopify-Shop-Domain"
	HeaderShopifyTriggeredAt = "X-Shopify-Triggered-At"
)

// VerifyShopify checks a Shopify webhook: header, the value of
// X-Shopify-Hmac-Sha256, must be the standard base64 encoding of the
// HMAC-SHA256 of the raw body keyed with secret, the app's client secret
// exactly as Shopify shows it (no "whsec_" decoding). The comparison is in
// constant time.
//
// Shopify signs no timestamp, so there is no tolerance to check: a receiver
// drops replays by X-Shopify-Webhook-Id instead. It returns nil or an error
// that matches ErrMissingSignature (header is empty), ErrInvalidHeader (not
// the base64 of 32 bytes), ErrInvalidSignature or, for an empty secret,
// ErrInvalidSecret. No error contains the secret or the header.
func VerifyShopify(secret string, body []byte, header string) error {
	return verifyShopify([]string{secret}, body, header)
}

// VerifyShopify checks a Shopify webhook's X-Shopify-Hmac-Sha256 header
// against every one of v.Secrets, so that a rotated secret's old value keeps
// verifying during its grace period. Tolerance and Clock do not apply:
// Shopify signs no timestamp. See the function [VerifyShopify].
func (v Verifier) VerifyShopify(header http.Header, body []byte) error {
	return verifyShopify(v.Secrets, body, header.Get(HeaderShopifyHmac))
}

func verifyShopify(secrets []string, body []byte, header string) error {
	header = strings.TrimSpace(header)
	if header == "" {
		return fmt.Errorf("%w: no %s", ErrMissingSignature, HeaderShopifyHmac)
	}
	// Strict: one spelling per signature, as for the other schemes.
	if len(header) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return fmt.Errorf("%w: %s is not a base64 HMAC-SHA256", ErrInvalidHeader, HeaderShopifyHmac)
	}
	var buf [sha256.Size + 1]byte // DecodedLen of 44 characters is 33
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(header))
	sig := buf[:n]
	if err != nil || n != sha256.Size {
		return fmt.Errorf("%w: %s is not a base64 HMAC-SHA256", ErrInvalidHeader, HeaderShopifyHmac)
	}
	var sum [sha256.Size]byte
	tried := false
	ok := false
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		tried = true
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		if hmac.Equal(sig, m.Sum(sum[:0])) {
			ok = true
		}
	}
	switch {
	case !tried:
		return fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	case !ok:
		return ErrInvalidSignature
	}
	return nil
}
