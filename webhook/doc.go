// Package webhook signs outbound webhook deliveries and verifies them on the
// receiving side. It imports only the standard library, so a receiver that
// only checks signatures pulls in nothing else.
//
// # Schemes
//
// Every delivery carries its signature twice, in two schemes, both
// HMAC-SHA256 and both keyed by the endpoint's secret, "whsec_" followed by
// the standard base64 encoding of 32 random bytes (see [NewSecret]).
//
// The SmartLite scheme is one header:
//
//	X-SmartLite-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//
// keyed with the whole secret string, "whsec_" included, over the message
// "<t>.<raw body>". It needs nothing but an HMAC to check ([Sign]).
//
// The Standard Webhooks scheme (https://www.standardwebhooks.com) is three
// headers:
//
//	webhook-id: <event id>
//	webhook-timestamp: <unix seconds>
//	webhook-signature: v1,<base64 HMAC-SHA256>
//
// keyed with the base64-decoded part of the secret after "whsec_", over
// "<id>.<timestamp>.<raw body>", so any Standard Webhooks library verifies
// it ([SignStandard]). [Headers] (and [HMACSigner]) produce both schemes at
// once.
//
// [Verify] and [Verifier] accept either: X-SmartLite-Signature decides when
// present, otherwise the Standard Webhooks headers do. Signatures are compared
// in constant time, the timestamp must lie within a tolerance (default five
// minutes, in both directions) of an injectable clock, and failures match the
// sentinels [ErrMissingSignature], [ErrInvalidHeader],
// [ErrTimestampOutOfRange] and [ErrInvalidSignature]. No error message ever
// contains a signature or a secret. [Middleware] wraps an [http.Handler] with
// the same check.
//
// A receiver that has agreed on one scheme with its sender checks that one
// alone with [Verifier.VerifyStandard] or [Verifier.VerifySmartLite].
//
// # Shopify
//
// Shopify's webhooks carry one header, X-Shopify-Hmac-Sha256: the standard
// base64 of the HMAC-SHA256 of the raw body, keyed with the app's client
// secret as Shopify shows it. [VerifyShopify] checks it (and
// [Verifier.VerifyShopify], with every secret of a rotation), with the same
// sentinels. Shopify signs no timestamp: a receiver drops replays by
// X-Shopify-Webhook-Id.
//
// Verify over the raw bytes received, before any JSON decoding: re-encoding
// the payload changes the bytes and breaks the signature.
//
// # Verifying by hand with openssl
//
// With the delivery's t from X-SmartLite-Signature, its raw body and the
// secret:
//
//	t=1700000000
//	body='{"id":"evt_01","type":"record.updated"}'
//	secret='whsec_…'
//	printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret"
//
// prints the hex digest that must equal the header's v1 value. A shell
// variable drops a body's trailing newlines; for a body saved to a file, use
// { printf '%s.' "$t"; cat body.json; } as the input instead.
//
// The Standard Webhooks signature is the base64 of an HMAC keyed with the
// decoded secret:
//
//	key=$(printf '%s' "${secret#whsec_}" | base64 -d | xxd -p -c 256)
//	printf '%s.%s.%s' "$id" "$t" "$body" |
//		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64
//
// # Rotation
//
// When a secret is rotated the old one lives on for a grace period, and
// every delivery in that period is signed with both: the SmartLite header
// carries one v1 entry per secret ("t=…,v1=<old>,v1=<new>") and
// webhook-signature one space-separated entry per secret
// ("v1,<old> v1,<new>"). A receiver that knows either secret accepts the
// delivery, so it can switch to the new secret at any moment of the grace
// period. A receiver may likewise hold several secrets in
// [Verifier.Secrets]; any one matching is enough.
package webhook
