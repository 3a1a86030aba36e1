package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"go/build"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/webhook"
)

// Fixed inputs shared by the tests. The secrets are made for these tests only.
const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_dGVzdC1zZWNyZXQtYi0zMi1ieXRlcy1sb25nISE="
	eventID = "evt_01HZX0000000000000000000"
)

var (
	signedAt = time.Unix(1700000000, 0)
	body     = []byte(`{"id":"evt_01HZX0000000000000000000","type":"record.updated","data":{"record":{"id":"rec_1","version":3}}}`)
)

// refSmartLite is the SmartLite scheme written from its definition alone:
// hex HMAC-SHA256 keyed with the whole secret over "<t>.<body>".
func refSmartLite(secret string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.%s", t, body)
	return hex.EncodeToString(m.Sum(nil))
}

// refStandard is the Standard Webhooks signature written from the
// specification's text: base64-decode the secret after "whsec_", HMAC-SHA256
// over "msg_id.timestamp.payload", standard base64, "v1," prefix.
func refStandard(tb testing.TB, secret, msgID string, t int64, payload []byte) string {
	tb.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(tb, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID + "." + strconv.FormatInt(t, 10) + "." + string(payload)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestStandardWebhooksPublishedVector(t *testing.T) {
	// The example of the Standard Webhooks specification and its reference
	// libraries: reproducing it byte for byte is what says any Standard
	// Webhooks verifier accepts our deliveries.
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		msgID  = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	payload := []byte(`{"test": 2432232314}`)

	got, err := webhook.SignStandard(secret, msgID, ts, payload)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, want, refStandard(t, secret, msgID, ts.Unix(), payload))

	h, err := webhook.Headers([]string{secret}, msgID, ts, payload)
	require.NoError(t, err)
	require.Equal(t, want, h.Get("webhook-signature"))
	require.Equal(t, msgID, h.Get("webhook-id"))
	require.Equal(t, "1614265330", h.Get("webhook-timestamp"))

	std := http.Header{}
	std.Set("webhook-id", msgID)
	std.Set("webhook-timestamp", "1614265330")
	std.Set("webhook-signature", want)
	require.NoError(t, webhook.Verifier{Secrets: []string{secret}, Clock: fixedClock(ts)}.Verify(std, payload))
}

func TestSignMatchesReferences(t *testing.T) {
	secrets := []string{secretA, secretB, "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))}
	bodies := [][]byte{nil, []byte("x"), body, []byte("line\nwith.dots.and\x00nul")}
	for i, secret := range secrets {
		for j, b := range bodies {
			t.Run(fmt.Sprintf("secret%d/body%d", i, j), func(t *testing.T) {
				require.Equal(t, "t=1700000000,v1="+refSmartLite(secret, 1700000000, b), webhook.Sign(secret, signedAt, b))
				got, err := webhook.SignStandard(secret, eventID, signedAt, b)
				require.NoError(t, err)
				require.Equal(t, refStandard(t, secret, eventID, 1700000000, b), got)
			})
		}
	}
}

func TestSignMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH")
	}
	// The recipe of the package documentation, run as written.
	script := `printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret"`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(cmd.Environ(), "t=1700000000", "body="+string(body), "secret="+secretA)
	out, err := cmd.Output()
	require.NoError(t, err)
	_, digest, ok := strings.Cut(strings.TrimSpace(string(out)), "= ")
	require.True(t, ok, "unexpected openssl output %q", out)
	require.Equal(t, webhook.Sign(secretA, signedAt, body), "t=1700000000,v1="+digest)

	if _, err := exec.LookPath("xxd"); err != nil {
		return
	}
	script = `key=$(printf '%s' "${secret#whsec_}" | base64 -d | xxd -p -c 256)
printf '%s.%s.%s' "$id" "$t" "$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64`
	cmd = exec.Command("sh", "-c", script)
	cmd.Env = append(cmd.Environ(), "t=1700000000", "body="+string(body), "secret="+secretA, "id="+eventID)
	out, err = cmd.Output()
	require.NoError(t, err)
	want, err := webhook.SignStandard(secretA, eventID, signedAt, body)
	require.NoError(t, err)
	require.Equal(t, want, "v1,"+strings.TrimSpace(string(out)))
}

func TestHeaders(t *testing.T) {
	h, err := webhook.Headers([]string{secretA, secretB}, eventID, signedAt, body)
	require.NoError(t, err)
	require.Equal(t, "t=1700000000,v1="+refSmartLite(secretA, 1700000000, body)+",v1="+refSmartLite(secretB, 1700000000, body),
		h.Get("X-SmartLite-Signature"))
	require.Equal(t, eventID, h.Get("webhook-id"))
	require.Equal(t, "1700000000", h.Get("webhook-timestamp"))
	require.Equal(t, refStandard(t, secretA, eventID, 1700000000, body)+" "+refStandard(t, secretB, eventID, 1700000000, body),
		h.Get("webhook-signature"))

	got, err := webhook.HMACSigner{}.Sign([]string{secretA, secretB}, eventID, signedAt, body)
	require.NoError(t, err)
	require.Equal(t, h, got)

	for name, tc := range map[string]struct {
		secrets []string
		id      string
	}{
		"no secrets":        {nil, eventID},
		"empty secret":      {[]string{secretA, ""}, eventID},
		"not base64":        {[]string{"whsec_not*base64"}, eventID},
		"empty after whsec": {[]string{"whsec_"}, eventID},
		"no id":             {[]string{secretA}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := webhook.Headers(tc.secrets, tc.id, signedAt, body)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "not*base64")
		})
	}
}

func TestNewSecret(t *testing.T) {
	s, err := webhook.NewSecret()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s, "whsec_"))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	require.NoError(t, err)
	require.Len(t, raw, 32)
	other, err := webhook.NewSecret()
	require.NoError(t, err)
	require.NotEqual(t, s, other)
}

// headerOf builds a request header from name/value pairs.
func headerOf(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func smartLiteHeader(secrets []string, t time.Time, b []byte) http.Header {
	v := "t=" + strconv.FormatInt(t.Unix(), 10)
	for _, s := range secrets {
		v += ",v1=" + refSmartLite(s, t.Unix(), b)
	}
	return headerOf("X-SmartLite-Signature", v)
}

func standardHeader(tb testing.TB, secrets []string, id string, t time.Time, b []byte) http.Header {
	tb.Helper()
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = refStandard(tb, s, id, t.Unix(), b)
	}
	return headerOf("webhook-id", id, "webhook-timestamp", strconv.FormatInt(t.Unix(), 10), "webhook-signature", strings.Join(sigs, " "))
}

func TestVerify(t *testing.T) {
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-2] = '4'
	hexSig := refSmartLite(secretA, 1700000000, body)
	stdSig := refStandard(t, secretA, eventID, 1700000000, body)
	both, err := webhook.Headers([]string{secretA}, eventID, signedAt, body)
	require.NoError(t, err)

	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		secrets []string
		now     time.Time
		tol     time.Duration
		want    error
	}{
		{name: "smartlite ok", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}},
		{name: "standard ok", header: standardHeader(t, []string{secretA}, eventID, signedAt, body), secrets: []string{secretA}},
		{name: "both schemes ok", header: both, secrets: []string{secretA}},
		{name: "empty body ok", header: smartLiteHeader([]string{secretA}, signedAt, nil), body: []byte{}, secrets: []string{secretA}},

		// Rotation: the sender signs with old and new, the receiver knows one.
		{name: "smartlite rotation receiver has old", header: smartLiteHeader([]string{secretA, secretB}, signedAt, body), secrets: []string{secretA}},
		{name: "smartlite rotation receiver has new", header: smartLiteHeader([]string{secretA, secretB}, signedAt, body), secrets: []string{secretB}},
		{name: "standard rotation receiver has old", header: standardHeader(t, []string{secretA, secretB}, eventID, signedAt, body), secrets: []string{secretA}},
		{name: "standard rotation receiver has new", header: standardHeader(t, []string{secretA, secretB}, eventID, signedAt, body), secrets: []string{secretB}},
		// Rotation on the receiver: it knows both, the sender signs with one.
		{name: "smartlite receiver holds both", header: smartLiteHeader([]string{secretB}, signedAt, body), secrets: []string{secretA, secretB}},
		{name: "standard receiver holds both", header: standardHeader(t, []string{secretB}, eventID, signedAt, body), secrets: []string{secretA, secretB}},
		{name: "empty receiver secret ignored", header: smartLiteHeader([]string{secretB}, signedAt, body), secrets: []string{"", secretB}},
		{name: "plain secret verifies smartlite", header: smartLiteHeader([]string{"not base64 at all"}, signedAt, body), secrets: []string{"not base64 at all"}},
		{name: "non-base64 secret skipped for standard", header: standardHeader(t, []string{secretB}, eventID, signedAt, body), secrets: []string{"plain", secretB}},

		// Tolerance, both directions, with the boundary inclusive.
		{name: "smartlite 5m late ok", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(5 * time.Minute)},
		{name: "smartlite 5m early ok", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(-5 * time.Minute)},
		{name: "smartlite too old", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(5*time.Minute + time.Second), want: webhook.ErrTimestampOutOfRange},
		{name: "smartlite too new", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(-5*time.Minute - time.Second), want: webhook.ErrTimestampOutOfRange},
		{name: "standard too old", header: standardHeader(t, []string{secretA}, eventID, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(time.Hour), want: webhook.ErrTimestampOutOfRange},
		{name: "standard too new", header: standardHeader(t, []string{secretA}, eventID, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(-time.Hour), want: webhook.ErrTimestampOutOfRange},
		{name: "custom tolerance", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(31 * time.Second), tol: 30 * time.Second, want: webhook.ErrTimestampOutOfRange},
		{name: "custom tolerance wide", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(time.Hour), tol: 2 * time.Hour},
		{name: "bad signature beats stale timestamp", header: smartLiteHeader([]string{secretB}, signedAt, body), secrets: []string{secretA}, now: signedAt.Add(time.Hour), want: webhook.ErrInvalidSignature},

		// Forgeries.
		{name: "smartlite tampered body", header: smartLiteHeader([]string{secretA}, signedAt, body), body: tampered, secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "standard tampered body", header: standardHeader(t, []string{secretA}, eventID, signedAt, body), body: tampered, secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "smartlite wrong secret", header: smartLiteHeader([]string{secretB}, signedAt, body), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "standard wrong secret", header: standardHeader(t, []string{secretB}, eventID, signedAt, body), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "smartlite timestamp moved", header: headerOf("X-SmartLite-Signature", "t=1700000001,v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "standard timestamp moved", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000001", "webhook-signature", stdSig), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "standard id changed", header: headerOf("webhook-id", "evt_other", "webhook-timestamp", "1700000000", "webhook-signature", stdSig), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "standard sig in smartlite header", header: headerOf("X-SmartLite-Signature", "t=1700000000,v1="+hex.EncodeToString(mustB64(t, strings.TrimPrefix(stdSig, "v1,")))), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "smartlite decides over valid standard", header: mergeHeaders(standardHeader(t, []string{secretA}, eventID, signedAt, body), smartLiteHeader([]string{secretB}, signedAt, body)), secrets: []string{secretA}, want: webhook.ErrInvalidSignature},
		{name: "other version ignored", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000000", "webhook-signature", "v1a,AAAA "+stdSig), secrets: []string{secretA}},
		{name: "unknown smartlite key ignored", header: headerOf("X-SmartLite-Signature", "t=1700000000,v0=abc,v1="+hexSig), secrets: []string{secretA}},

		// Missing and malformed headers.
		{name: "no headers", header: http.Header{}, secrets: []string{secretA}, want: webhook.ErrMissingSignature},
		{name: "only webhook-id", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000000"), secrets: []string{secretA}, want: webhook.ErrMissingSignature},
		{name: "smartlite no t", header: headerOf("X-SmartLite-Signature", "v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite no v1", header: headerOf("X-SmartLite-Signature", "t=1700000000"), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite two t", header: headerOf("X-SmartLite-Signature", "t=1700000000,t=1700000000,v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite t not number", header: headerOf("X-SmartLite-Signature", "t=soon,v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite t negative", header: headerOf("X-SmartLite-Signature", "t=-1,v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite t leading zero", header: headerOf("X-SmartLite-Signature", "t=01700000000,v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite t huge", header: headerOf("X-SmartLite-Signature", "t=99999999999999999999,v1="+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite v1 not hex", header: headerOf("X-SmartLite-Signature", "t=1700000000,v1="+strings.Repeat("zz", 32)), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite v1 short", header: headerOf("X-SmartLite-Signature", "t=1700000000,v1="+hexSig[:62]), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "smartlite entry without =", header: headerOf("X-SmartLite-Signature", "t=1700000000,"+hexSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "standard no id", header: headerOf("webhook-timestamp", "1700000000", "webhook-signature", stdSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "standard no timestamp", header: headerOf("webhook-id", eventID, "webhook-signature", stdSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "standard timestamp fraction", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000000.5", "webhook-signature", stdSig), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "standard no comma", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000000", "webhook-signature", strings.TrimPrefix(stdSig, "v1,")), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "standard not base64", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000000", "webhook-signature", "v1,***"), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},
		{name: "standard only other versions", header: headerOf("webhook-id", eventID, "webhook-timestamp", "1700000000", "webhook-signature", "v1a,AAAA"), secrets: []string{secretA}, want: webhook.ErrInvalidHeader},

		// Receiver configuration.
		{name: "no secrets", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: nil, want: webhook.ErrInvalidSecret},
		{name: "only empty secrets", header: smartLiteHeader([]string{secretA}, signedAt, body), secrets: []string{""}, want: webhook.ErrInvalidSecret},
		{name: "no standard-capable secret", header: standardHeader(t, []string{secretA}, eventID, signedAt, body), secrets: []string{"plain"}, want: webhook.ErrInvalidSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = signedAt
			}
			b := tc.body
			if b == nil {
				b = body
			}
			v := webhook.Verifier{Secrets: tc.secrets, Clock: fixedClock(now), Tolerance: tc.tol}
			err := v.Verify(tc.header, b)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			for _, s := range append(tc.secrets, secretA, secretB, hexSig, stdSig, strings.TrimPrefix(stdSig, "v1,")) {
				if s != "" {
					require.NotContains(t, err.Error(), s, "error message leaks a secret or signature")
				}
			}
		})
	}
}

func TestVerifyDefaultClock(t *testing.T) {
	now := time.Now()
	require.NoError(t, webhook.Verify(smartLiteHeader([]string{secretA}, now, body), body, []string{secretA}))
	require.ErrorIs(t, webhook.Verify(smartLiteHeader([]string{secretA}, now.Add(-time.Hour), body), body, []string{secretA}),
		webhook.ErrTimestampOutOfRange)
}

func TestParseSignatureHeader(t *testing.T) {
	a := refSmartLite(secretA, 1700000000, body)
	b := refSmartLite(secretB, 1700000000, body)
	for _, tc := range []struct {
		in   string
		want string // the canonical form, "" for an error
	}{
		{"t=1700000000,v1=" + a, "t=1700000000,v1=" + a},
		{"t=1700000000,v1=" + a + ",v1=" + b, "t=1700000000,v1=" + a + ",v1=" + b},
		{" t=1700000000 , v1=" + a + " ", "t=1700000000,v1=" + a},
		{"v1=" + a + ",t=1700000000", "t=1700000000,v1=" + a},
		{"t=1700000000,,v1=" + a, "t=1700000000,v1=" + a},
		{"t=0,v1=" + a, "t=0,v1=" + a},
		{"t=1700000000,v1=" + strings.ToUpper(a), "t=1700000000,v1=" + a},
		{"t=1700000000,v2=x,v1=" + a, "t=1700000000,v1=" + a},
		{"", ""},
		{"t=1700000000", ""},
		{"v1=" + a, ""},
		{"t=,v1=" + a, ""},
		{"t=+1,v1=" + a, ""},
		{"t=1 7,v1=" + a, ""},
		{"t=1700000000,v1=", ""},
		{"t=1700000000,v1=" + a + "00", ""},
		{"t=1700000000;v1=" + a, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			sig, err := webhook.ParseSignatureHeader(tc.in)
			if tc.want == "" {
				require.ErrorIs(t, err, webhook.ErrInvalidHeader)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, sig.String())
		})
	}
}

func TestImportsStandardLibraryOnly(t *testing.T) {
	// Receivers import this package to verify signatures; it must pull in
	// nothing beyond the standard library.
	pkg, err := build.ImportDir(".", 0)
	require.NoError(t, err)
	require.NotEmpty(t, pkg.Imports)
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		require.NotContains(t, first, ".", "package webhook imports %s, which is not in the standard library", imp)
	}
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	require.NoError(tb, err)
	return b
}

func mergeHeaders(hs ...http.Header) http.Header {
	out := http.Header{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}

// signer is the shape integration re-exports as its Signer interface.
type signer interface {
	Sign(secrets []string, id string, t time.Time, body []byte) (http.Header, error)
}

var _ signer = webhook.HMACSigner{}
