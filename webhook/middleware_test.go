package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/webhook"
)

func TestMiddleware(t *testing.T) {
	var got []byte
	var gotLen int64
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		got, gotLen = b, r.ContentLength
		w.WriteHeader(http.StatusNoContent)
	})
	v := webhook.Verifier{Secrets: []string{secretA}, Clock: fixedClock(signedAt), MaxBodyBytes: 4096}
	srv := httptest.NewServer(webhook.Middleware(v)(next))
	t.Cleanup(srv.Close)
	misconfigured := httptest.NewServer(webhook.Middleware(webhook.Verifier{Clock: fixedClock(signedAt)})(next))
	t.Cleanup(misconfigured.Close)

	signed, err := webhook.Headers([]string{secretA}, eventID, signedAt, body)
	require.NoError(t, err)
	big := bytes.Repeat([]byte("a"), 4097)
	bigSigned, err := webhook.Headers([]string{secretA}, eventID, signedAt, big)
	require.NoError(t, err)

	tests := []struct {
		name       string
		url        string
		header     http.Header
		body       []byte
		wantStatus int
		wantCode   string
	}{
		{"verified", srv.URL, signed, body, http.StatusNoContent, ""},
		{"smartlite only", srv.URL, smartLiteHeader([]string{secretA}, signedAt, body), body, http.StatusNoContent, ""},
		{"standard only", srv.URL, standardHeader(t, []string{secretA}, eventID, signedAt, body), body, http.StatusNoContent, ""},
		{"unsigned", srv.URL, http.Header{}, body, http.StatusBadRequest, "missing_signature"},
		{"tampered", srv.URL, signed, append([]byte(" "), body...), http.StatusBadRequest, "invalid_signature"},
		{"malformed", srv.URL, headerOf("X-SmartLite-Signature", "t=x"), body, http.StatusBadRequest, "invalid_header"},
		{"stale", srv.URL, smartLiteHeader([]string{secretA}, signedAt.Add(-time.Hour), body), body, http.StatusBadRequest, "timestamp_out_of_range"},
		{"too large", srv.URL, bigSigned, big, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"no secrets", misconfigured.URL, signed, body, http.StatusInternalServerError, "receiver_misconfigured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			req, err := http.NewRequest(http.MethodPost, tc.url, bytes.NewReader(tc.body))
			require.NoError(t, err)
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.wantStatus, resp.StatusCode)
			if tc.wantCode == "" {
				require.Equal(t, tc.body, got, "the next handler must see the verified bytes")
				require.Equal(t, int64(len(tc.body)), gotLen)
				return
			}
			require.Nil(t, got, "a rejected request must not reach the next handler")
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
			var problem struct {
				Status int    `json:"status"`
				Code   string `json:"code"`
				Detail string `json:"detail"`
			}
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(raw, &problem))
			require.Equal(t, tc.wantStatus, problem.Status)
			require.Equal(t, tc.wantCode, problem.Code)
			require.NotContains(t, string(raw), secretA)
			for _, s := range tc.header.Values("X-SmartLite-Signature") {
				if _, sig, ok := strings.Cut(s, "v1="); ok && len(sig) > 8 {
					require.NotContains(t, string(raw), sig)
				}
			}
		})
	}
}
