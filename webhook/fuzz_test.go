package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

const fuzzSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func FuzzParseSignatureHeader(f *testing.F) {
	for _, s := range []string{
		"t=1700000000,v1=20f5ea0f91e11a7329f2766786ce1b1ce12209eb1cc5021c100e6831a6d0d129",
		"t=1700000000,v1=20f5ea0f91e11a7329f2766786ce1b1ce12209eb1cc5021c100e6831a6d0d129,v1=20f5ea0f91e11a7329f2766786ce1b1ce12209eb1cc5021c100e6831a6d0d128",
		" t=0 ,, v0=x, v1=20F5EA0F91E11A7329F2766786CE1B1CE12209EB1CC5021C100E6831A6D0D129 ",
		"t=1,t=2",
		"t=-1,v1=",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,AAAA",
		"",
		"=,=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignatureHeader(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("ParseSignatureHeader error %v is not ErrInvalidHeader", err)
			}
		} else {
			if len(sig.V1) == 0 || sig.Timestamp.Unix() < 0 {
				t.Fatalf("accepted %q as %+v", s, sig)
			}
			again, err := ParseSignatureHeader(sig.String())
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", sig.String(), s, err)
			}
			if !again.Timestamp.Equal(sig.Timestamp) || len(again.V1) != len(sig.V1) {
				t.Fatalf("round trip of %q changed it: %+v != %+v", s, again, sig)
			}
			for i := range sig.V1 {
				if !bytes.Equal(again.V1[i], sig.V1[i]) {
					t.Fatalf("round trip of %q changed v1 #%d", s, i)
				}
			}
		}

		sigs, err := parseStandardSignature(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("parseStandardSignature error %v is not ErrInvalidHeader", err)
			}
			return
		}
		for _, m := range sigs {
			if len(m) != 32 {
				t.Fatalf("accepted a %d-byte signature from %q", len(m), s)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"id":"evt_01","type":"record.updated"}`)
	good, err := Headers([]string{fuzzSecret}, "evt_01", time.Unix(1700000000, 0), body)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.Get(HeaderSignature), "", "", "", body, int64(1700000000))
	f.Add("", "evt_01", "1700000000", good.Get(HeaderWebhookSignature), body, int64(1700000000))
	f.Add("t=1700000000,v1=00", "evt_01", "1700000000", "v1,AAAA", []byte{}, int64(0))
	f.Add("", "", "", "", []byte(nil), int64(-1))
	f.Add("", "a.b", "17", "v1a,x v1,", []byte("."), int64(1<<62))

	sentinels := []error{ErrMissingSignature, ErrInvalidHeader, ErrTimestampOutOfRange, ErrInvalidSignature}
	f.Fuzz(func(t *testing.T, sl, id, ts, std string, body []byte, now int64) {
		clock := func() time.Time { return time.Unix(now, 0) }
		v := Verifier{Secrets: []string{fuzzSecret}, Clock: clock}

		// Arbitrary headers: only the sentinels, and success only when the
		// header really holds the signature of this body.
		h := http.Header{}
		set := func(k, val string) {
			if val != "" {
				h[http.CanonicalHeaderKey(k)] = []string{val}
			}
		}
		set(HeaderSignature, sl)
		set(HeaderWebhookID, id)
		set(HeaderWebhookTimestamp, ts)
		set(HeaderWebhookSignature, std)
		err := v.Verify(h, body)
		switch {
		case err == nil:
			if !holdsSignature(h, body) {
				t.Fatalf("verified a header that does not hold the body's signature: %v", h)
			}
		case !isOneOf(err, sentinels):
			t.Fatalf("Verify returned %v, not one of the sentinels", err)
		case strings.Contains(err.Error(), fuzzSecret):
			t.Fatalf("error %q contains the secret", err)
		}

		// Our own signature of the body always verifies at signing time,
		// and stops verifying once the body changes.
		if id == "" {
			id = "evt_x"
		}
		signed, err := Headers([]string{fuzzSecret}, id, time.Unix(now, 0), body)
		if err != nil {
			t.Fatalf("Headers: %v", err)
		}
		if now < 0 || now > 999999999999 {
			// Outside what the timestamp parser accepts; both must refuse.
			if err := v.Verify(signed, body); !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("out-of-range timestamp %d: %v", now, err)
			}
			return
		}
		if err := v.Verify(signed, body); err != nil {
			t.Fatalf("own signature does not verify: %v", err)
		}
		stdOnly := signed.Clone()
		stdOnly.Del(HeaderSignature)
		if err := v.Verify(stdOnly, body); err != nil {
			t.Fatalf("own Standard Webhooks signature does not verify: %v", err)
		}
		changed := append(append([]byte(nil), body...), '!')
		if err := v.Verify(signed, changed); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("changed body: %v", err)
		}
		if err := v.Verify(stdOnly, changed); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("changed body, Standard Webhooks: %v", err)
		}
	})
}

// holdsSignature reports whether h carries the correct signature of body
// under fuzzSecret in the scheme Verify would use, computed independently of
// Verify's comparison.
func holdsSignature(h http.Header, body []byte) bool {
	if sl := h.Get(HeaderSignature); sl != "" {
		sig, err := ParseSignatureHeader(sl)
		if err != nil {
			return false
		}
		want := Sign(fuzzSecret, sig.Timestamp, body)
		_, mac, _ := strings.Cut(want, "v1=")
		for _, v := range sig.V1 {
			if hex.EncodeToString(v) == mac {
				return true
			}
		}
		return false
	}
	ts, err := parseTimestamp(h.Get(HeaderWebhookTimestamp))
	if err != nil {
		return false
	}
	want, err := SignStandard(fuzzSecret, h.Get(HeaderWebhookID), time.Unix(ts, 0), body)
	if err != nil {
		return false
	}
	wantMAC, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(want, "v1,"))
	for entry := range strings.FieldsSeq(h.Get(HeaderWebhookSignature)) {
		version, enc, _ := strings.Cut(entry, ",")
		// The decoder tolerates non-zero padding bits, so several spellings
		// carry the same MAC; compare the bytes.
		if got, err := base64.StdEncoding.DecodeString(enc); err == nil && version == "v1" && bytes.Equal(got, wantMAC) {
			return true
		}
	}
	return false
}

func isOneOf(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
