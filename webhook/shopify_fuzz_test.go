package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const fuzzShopifySecret = "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"

// FuzzVerifyShopify feeds arbitrary X-Shopify-Hmac-Sha256 values and bodies:
// VerifyShopify answers only its sentinels, accepts a header only when it
// spells the body's MAC, never quotes the secret or the header, and always
// accepts the body's own MAC.
func FuzzVerifyShopify(f *testing.F) {
	body := []byte(`{"id":820982911946154508,"total_price":"199.65"}`)
	f.Add(shopifyMAC(body), body)
	f.Add(" "+shopifyMAC(body)+"\t", body)
	f.Add(strings.TrimRight(shopifyMAC(body), "="), body)
	f.Add(strings.Repeat("A", 43)+"=", []byte{})
	f.Add(strings.Repeat("A", 42)+"B=", []byte{})
	f.Add("sha256="+strings.Repeat("0", 64), body)
	f.Add("", []byte(nil))
	f.Add("====", []byte("x"))

	sentinels := []error{ErrMissingSignature, ErrInvalidHeader, ErrInvalidSignature}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := VerifyShopify(fuzzShopifySecret, body, header)
		want := shopifyMAC(body)
		switch {
		case err == nil:
			if strings.TrimSpace(header) != want {
				t.Fatalf("accepted %q for a body whose MAC is %q", header, want)
			}
		case !isOneOf(err, sentinels):
			t.Fatalf("VerifyShopify returned %v, not one of the sentinels", err)
		case strings.Contains(err.Error(), fuzzShopifySecret):
			t.Fatalf("error %q contains the secret", err)
		case len(strings.TrimSpace(header)) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(header)):
			// Shorter values can occur in the fixed text by chance.
			t.Fatalf("error %q quotes the header", err)
		case strings.TrimSpace(header) == want:
			t.Fatalf("refused the body's own MAC: %v", err)
		}
		if strings.TrimSpace(header) == "" && !errors.Is(err, ErrMissingSignature) {
			t.Fatalf("blank header %q: %v", header, err)
		}
		if err := VerifyShopify(fuzzShopifySecret, body, want); err != nil {
			t.Fatalf("own MAC does not verify: %v", err)
		}
		if err := VerifyShopify(fuzzShopifySecret, append(append([]byte(nil), body...), '!'), want); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("changed body: %v", err)
		}
	})
}

func shopifyMAC(body []byte) string {
	m := hmac.New(sha256.New, []byte(fuzzShopifySecret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
