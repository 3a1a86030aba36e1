package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/smartlite/crmkit/webhook"
)

// benchBody is a 2 KiB payload, about the size of one record event.
var benchBody = bytes.Repeat([]byte(`{"k":"v"},`), 2048/10+1)[:2048]

var sinkString string
var sinkBytes []byte

// BenchmarkHMACSHA256 is the floor Sign and Verify are measured against: one
// HMAC-SHA256 of the same body, with a new HMAC per operation as Sign needs.
func BenchmarkHMACSHA256(b *testing.B) {
	key := []byte(secretA)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(benchBody)
		sinkBytes = m.Sum(sinkBytes[:0])
	}
}

func BenchmarkSign(b *testing.B) {
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		sinkString = webhook.Sign(secretA, signedAt, benchBody)
	}
}

func BenchmarkVerify(b *testing.B) {
	h := smartLiteHeader([]string{secretA}, signedAt, benchBody)
	v := webhook.Verifier{Secrets: []string{secretA}, Clock: fixedClock(signedAt)}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyStandard verifies the Standard Webhooks headers alone.
func BenchmarkVerifyStandard(b *testing.B) {
	h := standardHeader(b, []string{secretA}, eventID, signedAt, benchBody)
	v := webhook.Verifier{Secrets: []string{secretA}, Clock: fixedClock(signedAt)}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeaders signs one delivery in both schemes with one secret: two
// HMACs, so its floor is twice BenchmarkHMACSHA256.
func BenchmarkHeaders(b *testing.B) {
	secrets := []string{secretA}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := webhook.Headers(secrets, eventID, signedAt, benchBody)
		if err != nil {
			b.Fatal(err)
		}
		sinkString = h.Get("X-SmartLite-Signature")
	}
}
