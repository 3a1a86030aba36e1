package webhook

import (
	"crypto/hmac"
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

// DefaultTolerance is how far a signature's timestamp may lie from the
// receiver's clock, in either direction, when Verifier.Tolerance is zero.
const DefaultTolerance = 5 * time.Minute

// The errors Verify returns, possibly wrapped with a fixed explanation. None
// of them ever carries a signature or a secret.
var (
	// ErrMissingSignature: the request carries neither X-SmartLite-Signature
	// nor webhook-signature.
	ErrMissingSignature = errors.New("webhook: missing signature")
	// ErrInvalidHeader: a signature header is present but cannot be parsed,
	// or a header the scheme needs is missing.
	ErrInvalidHeader = errors.New("webhook: invalid signature header")
	// ErrTimestampOutOfRange: the signature is genuine but its timestamp lies
	// further from the receiver's clock than the tolerance.
	ErrTimestampOutOfRange = errors.New("webhook: timestamp out of range")
	// ErrInvalidSignature: no signature in the header matches the body under
	// any of the secrets.
	ErrInvalidSignature = errors.New("webhook: invalid signature")
)

// maxTimestampDigits bounds the timestamp text: ten digits cover every second
// until the year 2286, and a longer value is more likely an attack on the
// parser than a clock.
const maxTimestampDigits = 12

// Verifier checks signed deliveries. The zero value needs only Secrets.
type Verifier struct {
	// Secrets are tried in turn; any one of them verifying is enough, which
	// is what lets a receiver accept both the old and the new secret while a
	// rotation is in its grace period. Empty strings are ignored.
	Secrets []string
	// Tolerance is how far the signed timestamp may lie from Clock, in
	// either direction. Zero or negative means DefaultTolerance.
	Tolerance time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// MaxBodyBytes bounds the body Middleware reads; zero or negative means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Verify checks a delivery's signature against secrets with the default
// tolerance and the system clock. See [Verifier.Verify].
func Verify(header http.Header, body []byte, secrets []string) error {
	return Verifier{Secrets: secrets}.Verify(header, body)
}

// Verify checks the signature of a delivery with header and its raw body.
//
// When X-SmartLite-Signature is present it alone decides; otherwise the
// Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)
// do. The signature is checked before the timestamp, so
// ErrTimestampOutOfRange always means the sender held the secret and the
// clocks disagree (or the delivery is a replay). It returns nil or an error
// that matches one of ErrMissingSignature, ErrInvalidHeader,
// ErrInvalidSignature, ErrTimestampOutOfRange or, when no secret is usable,
// ErrInvalidSecret.
func (v Verifier) Verify(header http.Header, body []byte) error {
	if sl := header.Get(HeaderSignature); sl != "" {
		return v.verifySmartLite(sl, body)
	}
	if std := header.Get(HeaderWebhookSignature); std != "" {
		return v.verifyStandard(header, std, body)
	}
	return ErrMissingSignature
}

// VerifyStandard checks a delivery by the Standard Webhooks scheme alone
// (webhook-id, webhook-timestamp, webhook-signature), ignoring any
// X-SmartLite-Signature: for a receiver that has agreed on that scheme with
// its sender, as an inbound source of kind "standard" has. The secrets are
// "whsec_" + base64 (the prefix is optional); the tolerance and clock are
// v's. It returns nil or an error that matches ErrMissingSignature (no
// webhook-signature), ErrInvalidHeader, ErrInvalidSignature,
// ErrTimestampOutOfRange or, when no secret decodes, ErrInvalidSecret.
func (v Verifier) VerifyStandard(header http.Header, body []byte) error {
	std := header.Get(HeaderWebhookSignature)
	if std == "" {
		return fmt.Errorf("%w: no %s", ErrMissingSignature, HeaderWebhookSignature)
	}
	return v.verifyStandard(header, std, body)
}

// VerifySmartLite checks a delivery by the X-SmartLite-Signature scheme
// alone, ignoring any Standard Webhooks headers. Its errors are those of
// VerifyStandard.
func (v Verifier) VerifySmartLite(header http.Header, body []byte) error {
	sl := header.Get(HeaderSignature)
	if sl == "" {
		return fmt.Errorf("%w: no %s", ErrMissingSignature, HeaderSignature)
	}
	return v.verifySmartLite(sl, body)
}

func (v Verifier) verifySmartLite(value string, body []byte) error {
	sig, err := ParseSignatureHeader(value)
	if err != nil {
		return err
	}
	ts := sig.Timestamp.Unix()
	var sum [sha256.Size]byte
	tried := false
	for _, secret := range v.Secrets {
		if secret == "" {
			continue
		}
		tried = true
		mac := smartLiteMAC(sum[:0], []byte(secret), ts, body)
		if anyEqual(sig.V1, mac) {
			return v.checkTime(ts)
		}
	}
	if !tried {
		return fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	return ErrInvalidSignature
}

func (v Verifier) verifyStandard(header http.Header, value string, body []byte) error {
	id := header.Get(HeaderWebhookID)
	if id == "" {
		return fmt.Errorf("%w: webhook-signature without webhook-id", ErrInvalidHeader)
	}
	ts, err := parseTimestamp(header.Get(HeaderWebhookTimestamp))
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp %s", ErrInvalidHeader, err)
	}
	sigs, err := parseStandardSignature(value)
	if err != nil {
		return err
	}
	var sum [sha256.Size]byte
	tried := false
	for _, secret := range v.Secrets {
		key, err := standardKey(secret)
		if err != nil {
			// A secret that is not "whsec_" + base64 can still verify the
			// SmartLite scheme, so it is skipped here rather than fatal.
			continue
		}
		tried = true
		if anyEqual(sigs, standardMAC(sum[:0], key, id, ts, body)) {
			return v.checkTime(ts)
		}
	}
	if !tried {
		return fmt.Errorf("%w: no secret usable for webhook-signature", ErrInvalidSecret)
	}
	return ErrInvalidSignature
}

// anyEqual compares mac with every candidate in constant time per candidate;
// the number of candidates is public.
func anyEqual(candidates [][]byte, mac []byte) bool {
	ok := false
	for _, c := range candidates {
		if hmac.Equal(c, mac) {
			ok = true
		}
	}
	return ok
}

func (v Verifier) checkTime(ts int64) error {
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	now := time.Now
	if v.Clock != nil {
		now = v.Clock
	}
	signed := time.Unix(ts, 0)
	t := now()
	switch {
	case t.After(signed.Add(tol)):
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrTimestampOutOfRange, t.Sub(signed).Truncate(time.Second), tol)
	case t.Before(signed.Add(-tol)):
		return fmt.Errorf("%w: signed %s in the future, tolerance %s", ErrTimestampOutOfRange, signed.Sub(t).Truncate(time.Second), tol)
	}
	return nil
}

// Signature is a parsed X-SmartLite-Signature header.
type Signature struct {
	// Timestamp is the signing time, in whole seconds.
	Timestamp time.Time
	// V1 holds the decoded HMAC-SHA256 of every v1 entry, one per secret
	// the sender signed with.
	V1 [][]byte
}

// String formats s as an X-SmartLite-Signature header value.
func (s Signature) String() string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(s.Timestamp.Unix(), 10))
	for _, v := range s.V1 {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(v))
	}
	return b.String()
}

// ParseSignatureHeader parses an X-SmartLite-Signature value of the form
// "t=<unix seconds>,v1=<hex>[,v1=<hex>…]". Spaces around entries are
// allowed; entries with other keys are ignored so that a future scheme
// version can be sent alongside v1. It fails with ErrInvalidHeader when t is
// missing, repeated or not a non-negative integer, when there is no v1 entry,
// or when a v1 entry is not 64 hex digits.
func ParseSignatureHeader(value string) (Signature, error) {
	var (
		sig   Signature
		haveT bool
	)
	for entry := range strings.SplitSeq(value, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		key, val, ok := strings.Cut(entry, "=")
		if !ok {
			return Signature{}, fmt.Errorf("%w: entry without '='", ErrInvalidHeader)
		}
		switch key {
		case "t":
			if haveT {
				return Signature{}, fmt.Errorf("%w: repeated t", ErrInvalidHeader)
			}
			ts, err := parseTimestamp(val)
			if err != nil {
				return Signature{}, fmt.Errorf("%w: t %s", ErrInvalidHeader, err)
			}
			sig.Timestamp = time.Unix(ts, 0)
			haveT = true
		case "v1":
			if len(val) != hex.EncodedLen(sha256.Size) {
				return Signature{}, fmt.Errorf("%w: v1 is not %d hex digits", ErrInvalidHeader, hex.EncodedLen(sha256.Size))
			}
			mac, err := hex.DecodeString(val)
			if err != nil {
				return Signature{}, fmt.Errorf("%w: v1 is not hex", ErrInvalidHeader)
			}
			sig.V1 = append(sig.V1, mac)
		}
	}
	if !haveT {
		return Signature{}, fmt.Errorf("%w: no t", ErrInvalidHeader)
	}
	if len(sig.V1) == 0 {
		return Signature{}, fmt.Errorf("%w: no v1", ErrInvalidHeader)
	}
	return sig, nil
}

// parseStandardSignature parses a webhook-signature value: space-separated
// "<version>,<base64>" entries. Entries of versions other than v1 (such as
// the asymmetric v1a) are ignored, as the specification asks.
func parseStandardSignature(value string) ([][]byte, error) {
	var sigs [][]byte
	for entry := range strings.FieldsSeq(value) {
		version, enc, ok := strings.Cut(entry, ",")
		if !ok {
			return nil, fmt.Errorf("%w: webhook-signature entry without ','", ErrInvalidHeader)
		}
		if version != "v1" {
			continue
		}
		mac, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(mac) != sha256.Size {
			return nil, fmt.Errorf("%w: webhook-signature v1 is not a base64 HMAC-SHA256", ErrInvalidHeader)
		}
		sigs = append(sigs, mac)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: webhook-signature has no v1 entry", ErrInvalidHeader)
	}
	return sigs, nil
}

// parseTimestamp parses unix seconds written as plain decimal digits. Signs,
// spaces, fractions and leading zeros are refused so that one timestamp has
// one spelling: the signed message is rebuilt from the parsed number, and it
// must be the text the sender signed.
func parseTimestamp(s string) (int64, error) {
	switch {
	case s == "":
		return 0, errors.New("is empty")
	case len(s) > maxTimestampDigits:
		return 0, errors.New("is too long")
	case len(s) > 1 && s[0] == '0':
		return 0, errors.New("has a leading zero")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("is not unix seconds")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
