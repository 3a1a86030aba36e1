package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testlog"
	"github.com/smartlite/crmkit/webhook"
)

const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_dGVzdC1zZWNyZXQtYi0zMi1ieXRlcy1sb25nISE="
)

var delivery = []byte(`{"id":"evt_01","type":"record.updated","created_at":"2024-01-01T00:00:00Z","workspace_id":"ws_1",
"data":{"object":"opportunity","record":{"id":"rec_1","version":3,"fields":{"stage":"Closed Won"}},"source":"api","actor":{"kind":"api_key","id":"key_1"}}}`)

func post(tb testing.TB, url string, secrets []string, signedAt time.Time, body []byte) int {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(tb, err)
	if len(secrets) > 0 {
		h, err := webhook.Headers(secrets, "evt_01", signedAt, body)
		require.NoError(tb, err)
		for k, v := range h {
			req.Header[k] = v
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	require.NoError(tb, resp.Body.Close())
	return resp.StatusCode
}

func TestHandler(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var out testlog.Buffer
	srv := httptest.NewServer(newHandler(webhook.Verifier{
		Secrets: []string{testSecret},
		Clock:   func() time.Time { return now },
	}, &out))
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		secrets []string
		at      time.Time
		body    []byte
		want    int
		printed string
	}{
		{"verified", []string{testSecret}, now, delivery, http.StatusNoContent,
			`evt_01 record.updated {"id":"rec_1","version":3,"fields":{"stage":"Closed Won"}}` + "\n"},
		{"rotation", []string{otherSecret, testSecret}, now, delivery, http.StatusNoContent,
			`evt_01 record.updated {"id":"rec_1","version":3,"fields":{"stage":"Closed Won"}}` + "\n"},
		{"wrong secret", []string{otherSecret}, now, delivery, http.StatusBadRequest, ""},
		{"unsigned", nil, now, delivery, http.StatusBadRequest, ""},
		{"stale", []string{testSecret}, now.Add(-time.Hour), delivery, http.StatusBadRequest, ""},
		{"signed but not an event", []string{testSecret}, now, []byte(`[1,2]`), http.StatusBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := out.String()
			require.Equal(t, tc.want, post(t, srv.URL+"/hooks", tc.secrets, tc.at, tc.body))
			require.Equal(t, tc.printed, strings.TrimPrefix(out.String(), before))
		})
	}

	// A tampered body with a valid header for the original.
	req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(bytes.Replace(delivery, []byte("Closed Won"), []byte("Closed Lost"), 1)))
	require.NoError(t, err)
	h, err := webhook.Headers([]string{testSecret}, "evt_01", now, delivery)
	require.NoError(t, err)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.NotContains(t, out.String(), "Closed Lost")
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600))

	tests := []struct {
		name string
		args []string
		env  string
	}{
		{"secret file", []string{"-secret-file", secretFile}, ""},
		{"environment", nil, otherSecret + "," + testSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var stdout, stderr testlog.Buffer
			addrc := make(chan net.Addr, 1)
			done := make(chan error, 1)
			getenv := func(k string) string {
				if k == "WEBHOOK_SECRET" {
					return tc.env
				}
				return ""
			}
			go func() {
				done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, tc.args...), getenv, &stdout, &stderr,
					func(a net.Addr) { addrc <- a })
			}()
			var addr net.Addr
			select {
			case addr = <-addrc:
			case err := <-done:
				t.Fatalf("run ended early: %v", err)
			}
			url := "http://" + addr.String() + "/"

			require.Equal(t, http.StatusNoContent, post(t, url, []string{testSecret}, time.Now(), delivery))
			require.Equal(t, http.StatusBadRequest, post(t, url, []string{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, time.Now(), delivery))
			cancel()
			require.NoError(t, <-done)

			require.Equal(t, `evt_01 record.updated {"id":"rec_1","version":3,"fields":{"stage":"Closed Won"}}`+"\n", stdout.String())
			for _, s := range []string{testSecret, otherSecret, strings.TrimPrefix(testSecret, "whsec_")} {
				require.NotContains(t, stdout.String()+stderr.String(), s, "the secret must never be printed")
			}
		})
	}
}

func TestRunWithoutSecret(t *testing.T) {
	var stderr testlog.Buffer
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(string) string { return "" }, &stderr, &stderr, nil)
	require.ErrorContains(t, err, "no secret")

	err = run(context.Background(), []string{"-secret-file", filepath.Join(t.TempDir(), "missing")}, func(string) string { return testSecret }, &stderr, &stderr, nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), testSecret)
}
