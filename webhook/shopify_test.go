package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/webhook"
)

// shopifySecret is an app client secret made for these tests only.
const shopifySecret = "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"

// refShopify is Shopify's scheme written from its documentation: the
// base64 of the HMAC-SHA256 of the raw body, keyed with the client secret.
func refShopify(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func shopifyOrder(tb testing.TB) []byte {
	tb.Helper()
	body, err := os.ReadFile("testdata/shopify_orders_create.json")
	require.NoError(tb, err)
	return body
}

func TestShopifyFixtureIsAnOrder(t *testing.T) {
	var order struct {
		ID         json.Number `json:"id"`
		TotalPrice string      `json:"total_price"`
		UpdatedAt  time.Time   `json:"updated_at"`
		Customer   struct {
			ID        json.Number `json:"id"`
			FirstName string      `json:"first_name"`
			LastName  string      `json:"last_name"`
			Email     string      `json:"email"`
		} `json:"customer"`
	}
	dec := json.NewDecoder(strings.NewReader(string(shopifyOrder(t))))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&order))
	require.Equal(t, json.Number("820982911946154508"), order.ID)
	require.Equal(t, "199.65", order.TotalPrice)
	require.Equal(t, json.Number("115310627314723954"), order.Customer.ID)
	require.Equal(t, "John", order.Customer.FirstName)
	require.False(t, order.UpdatedAt.IsZero())
}

func TestVerifyShopify(t *testing.T) {
	body := shopifyOrder(t)
	good := refShopify(shopifySecret, body)
	// The same header computed by openssl, outside Go:
	//   openssl dgst -sha256 -hmac "$secret" -binary testdata/shopify_orders_create.json | base64
	require.Equal(t, "L5tjacUf31IjohzSCURfNYk3nB1+DJf38b1iQ5oFVDo=", good)

	raw, err := base64.StdEncoding.DecodeString(good)
	require.NoError(t, err)
	// The same bytes with the last character's unused bits set: the lax
	// decoder reads it as the same MAC, the strict one refuses it.
	last := good[len(good)-2]
	offSpelling := good[:len(good)-2] + string(last+1) + "="
	require.NotEqual(t, good, offSpelling)

	tests := []struct {
		name   string
		secret string
		body   []byte
		header string
		want   error
	}{
		{"valid", shopifySecret, body, good, nil},
		{"surrounding spaces", shopifySecret, body, " " + good + " ", nil},
		{"empty body signed", shopifySecret, []byte{}, refShopify(shopifySecret, nil), nil},
		{"body changed", shopifySecret, append(append([]byte(nil), body...), ' '), good, webhook.ErrInvalidSignature},
		{"body re-encoded", shopifySecret, []byte(strings.TrimSpace(string(body))), good, webhook.ErrInvalidSignature},
		{"other secret", "shpss_other", body, good, webhook.ErrInvalidSignature},
		{"secret with whsec_ prefix taken literally", "whsec_" + shopifySecret, body, good, webhook.ErrInvalidSignature},
		{"no header", shopifySecret, body, "", webhook.ErrMissingSignature},
		{"blank header", shopifySecret, body, "   ", webhook.ErrMissingSignature},
		{"hex instead of base64", shopifySecret, body, fmt.Sprintf("%x", raw), webhook.ErrInvalidHeader},
		{"not base64", shopifySecret, body, strings.Repeat("!", 44), webhook.ErrInvalidHeader},
		{"unpadded", shopifySecret, body, strings.TrimRight(good, "="), webhook.ErrInvalidHeader},
		{"url alphabet", shopifySecret, body, strings.ReplaceAll(good, "+", "-"), webhook.ErrInvalidHeader},
		{"too short", shopifySecret, body, base64.StdEncoding.EncodeToString(raw[:31]), webhook.ErrInvalidHeader},
		{"too long", shopifySecret, body, base64.StdEncoding.EncodeToString(append(raw, 0)), webhook.ErrInvalidHeader},
		{"non-canonical spelling", shopifySecret, body, offSpelling, webhook.ErrInvalidHeader},
		{"sha1 length", shopifySecret, body, base64.StdEncoding.EncodeToString(raw[:20]), webhook.ErrInvalidHeader},
		{"no secret", "", body, good, webhook.ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.VerifyShopify(tt.secret, tt.body, tt.header)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.NotContains(t, err.Error(), shopifySecret)
			if tt.header != "" && strings.TrimSpace(tt.header) != "" {
				require.NotContains(t, err.Error(), strings.TrimSpace(tt.header))
			}
		})
	}
}

func TestVerifierVerifyShopifyAcceptsEitherSecretDuringRotation(t *testing.T) {
	body := shopifyOrder(t)
	const next = "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"
	v := webhook.Verifier{Secrets: []string{"", shopifySecret, next}}
	for _, secret := range []string{shopifySecret, next} {
		h := http.Header{}
		h.Set("X-Shopify-Hmac-Sha256", refShopify(secret, body))
		h.Set("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
		require.NoError(t, v.VerifyShopify(h, body))
	}

	h := http.Header{}
	h.Set(webhook.HeaderShopifyHmac, refShopify("shpss_retired", body))
	require.ErrorIs(t, v.VerifyShopify(h, body), webhook.ErrInvalidSignature)
	require.ErrorIs(t, v.VerifyShopify(http.Header{}, body), webhook.ErrMissingSignature)
	require.ErrorIs(t, webhook.Verifier{}.VerifyShopify(h, body), webhook.ErrInvalidSecret)

	// A SmartLite or Standard Webhooks signature is not a Shopify one.
	std, err := webhook.Headers([]string{secretA}, eventID, signedAt, body)
	require.NoError(t, err)
	require.ErrorIs(t, webhook.Verifier{Secrets: []string{secretA}}.VerifyShopify(std, body), webhook.ErrMissingSignature)
}

func TestVerifyStandardWithOnlyTheSecret(t *testing.T) {
	// The published Standard Webhooks example, verified with nothing but
	// the secret, as an inbound source of kind "standard" verifies.
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		msgID  = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		sig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	payload := []byte(`{"test": 2432232314}`)
	signed := time.Unix(1614265330, 0)
	h := http.Header{}
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", sig)

	tests := []struct {
		name string
		now  time.Time
		edit func(http.Header)
		body []byte
		want error
	}{
		{"at signing", signed, nil, payload, nil},
		{"4m59s late", signed.Add(4*time.Minute + 59*time.Second), nil, payload, nil},
		{"4m59s early", signed.Add(-4*time.Minute - 59*time.Second), nil, payload, nil},
		{"5m01s late", signed.Add(5*time.Minute + time.Second), nil, payload, webhook.ErrTimestampOutOfRange},
		{"5m01s early", signed.Add(-5*time.Minute - time.Second), nil, payload, webhook.ErrTimestampOutOfRange},
		{"body changed", signed, nil, []byte(`{"test": 2432232315}`), webhook.ErrInvalidSignature},
		{"id changed", signed, func(h http.Header) { h.Set("webhook-id", "msg_other") }, payload, webhook.ErrInvalidSignature},
		{"no id", signed, func(h http.Header) { h.Del("webhook-id") }, payload, webhook.ErrInvalidHeader},
		{"no timestamp", signed, func(h http.Header) { h.Del("webhook-timestamp") }, payload, webhook.ErrInvalidHeader},
		{"no signature", signed, func(h http.Header) { h.Del("webhook-signature") }, payload, webhook.ErrMissingSignature},
		{"a SmartLite header does not decide", signed, func(h http.Header) {
			h.Set("X-SmartLite-Signature", "t=1,v1=00")
		}, payload, nil},
		{"a SmartLite signature alone is not enough", signed, func(h http.Header) {
			h.Del("webhook-signature")
			h.Set("X-SmartLite-Signature", webhook.Sign(secret, signed, payload))
		}, payload, webhook.ErrMissingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hh := h.Clone()
			if tt.edit != nil {
				tt.edit(hh)
			}
			v := webhook.Verifier{Secrets: []string{secret}, Clock: fixedClock(tt.now)}
			err := v.VerifyStandard(hh, tt.body)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.NotContains(t, err.Error(), strings.TrimPrefix(secret, "whsec_"))
		})
	}
}

func TestVerifySmartLiteAlone(t *testing.T) {
	h, err := webhook.Headers([]string{secretA}, eventID, signedAt, body)
	require.NoError(t, err)
	v := webhook.Verifier{Secrets: []string{secretA}, Clock: fixedClock(signedAt)}
	require.NoError(t, v.VerifySmartLite(h, body))

	// A good Standard Webhooks signature does not stand in for a bad
	// SmartLite one, nor for a missing one.
	bad := h.Clone()
	bad.Set("X-SmartLite-Signature", "t=1700000000,v1="+strings.Repeat("0", 64))
	require.ErrorIs(t, v.VerifySmartLite(bad, body), webhook.ErrInvalidSignature)
	bad.Del("X-SmartLite-Signature")
	require.ErrorIs(t, v.VerifySmartLite(bad, body), webhook.ErrMissingSignature)
	require.NoError(t, v.VerifyStandard(bad, body))
}

func ExampleVerifyShopify() {
	secret := "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"
	body := []byte(`{"id":820982911946154508,"total_price":"199.65"}`)
	// What Shopify sends in X-Shopify-Hmac-Sha256.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	header := base64.StdEncoding.EncodeToString(m.Sum(nil))

	fmt.Println(webhook.VerifyShopify(secret, body, header))
	err := webhook.VerifyShopify(secret, []byte(`{"id":820982911946154508,"total_price":"0.01"}`), header)
	fmt.Println(errors.Is(err, webhook.ErrInvalidSignature))
	// Output:
	// <nil>
	// true
}
