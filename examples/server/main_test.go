package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testlog"
)

// server is the built reference server running as a child process.
type server struct {
	cmd    *exec.Cmd
	url    string
	stdout *testlog.Buffer
	stderr *testlog.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // what Wait answered, once done is closed
}

func buildServer(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(tb, err, "go build: %s", out)
	return bin
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs bin in dir with args and waits until it listens.
func start(tb testing.TB, bin, dir string, args ...string) *server {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CRMKIT_ADDR=", "CRMKIT_DB=", "CRMKIT_REDIS=", "CRMKIT_ADMIN_KEY_FILE=")
	s := &server{cmd: cmd, stdout: &testlog.Buffer{}, stderr: &testlog.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = s.stdout
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(s.stderr, pw)
	require.NoError(tb, cmd.Start())
	go func() { s.err = cmd.Wait(); _ = pw.Close(); close(s.done) }()
	tb.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case addr := <-found:
		s.url = "http://" + addr
	case <-s.done:
		tb.Fatalf("server exited before listening: %v\n%s", s.err, s.stderr.String())
	case <-time.After(60 * time.Second):
		tb.Fatalf("server did not start listening:\n%s", s.stderr.String())
	}
	return s
}

// output waits until the process's standard output holds what match finds
// and answers it: the output is copied by a goroutine of its own, so it may
// arrive after what the process wrote to standard error.
func (s *server) output(tb testing.TB, match func(string) string) string {
	tb.Helper()
	var got string
	require.Eventually(tb, func() bool {
		got = match(s.stdout.String())
		return got != ""
	}, 30*time.Second, 10*time.Millisecond, "standard output so far: %s", s.stdout.String())
	return got
}

// stop sends SIGTERM and answers the exit code.
func (s *server) stop(tb testing.TB) int {
	tb.Helper()
	require.NoError(tb, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		tb.Fatal("server did not stop on SIGTERM")
	}
	return s.cmd.ProcessState.ExitCode()
}

// rateLimit answers the X-RateLimit-Limit the server gives key.
func (s *server) rateLimit(tb testing.TB, key string) string {
	tb.Helper()
	req, err := http.NewRequest("GET", s.url+"/api/v1/records/opportunity?limit=1", nil)
	require.NoError(tb, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	require.Equal(tb, http.StatusOK, resp.StatusCode)
	return resp.Header.Get("X-RateLimit-Limit")
}

func (s *server) call(tb testing.TB, method, path, key, body string) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	require.NoError(tb, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	var m map[string]any
	if len(b) > 0 {
		require.NoError(tb, json.Unmarshal(b, &m), "body: %s", b)
	}
	return resp.StatusCode, m
}

func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.key")

	// First start: the default database file in the working directory, a
	// workspace and an admin key, printed once and written to the file.
	s := start(t, bin, dir, "-admin-key-file", keyFile)
	info, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	b, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	admin := strings.TrimSpace(string(b))
	require.True(t, strings.HasPrefix(admin, "slk_"))
	_, err = os.Stat(filepath.Join(dir, "crmkit.db"))
	require.NoError(t, err, "the default database file is crmkit.db in the working directory")

	status, body := s.call(t, "GET", "/healthz", "", "")
	require.Equal(t, 200, status)
	require.Equal(t, "ok", body["status"])
	require.Equal(t, "60", s.rateLimit(t, admin), "the first workspace is on the Starter plan: 60 requests a minute")

	status, body = s.call(t, "POST", "/api/v1/keys", admin, `{"name":"Finance Sync","scopes":["READ","WRITE"],"expires_at":null}`)
	require.Equal(t, 201, status, "%v", body)
	finance := body["key"].(string)
	status, body = s.call(t, "POST", "/api/v1/records/opportunity", finance, `{"fields":{"name":"Acme Corp renewal","amount":48000,"stage":"Negotiation"}}`)
	require.Equal(t, 201, status, "%v", body)
	id := body["id"].(string)
	status, body = s.call(t, "PATCH", "/api/v1/records/opportunity/"+id, finance, `{"fields":{"stage":"Closed Won"}}`)
	require.Equal(t, 200, status, "%v", body)
	require.NotEmpty(t, body["fields"].(map[string]any)["closed_at"])
	status, _ = s.call(t, "GET", "/api/v1/records/opportunity", "", "")
	require.Equal(t, 401, status)

	require.Equal(t, 0, s.stop(t))
	// Read once the process is gone: only then has all it wrote to its
	// standard output been copied (Wait returns after the copy).
	require.Equal(t, 1, strings.Count(s.stdout.String(), admin), "the key is printed once")
	logs := s.stderr.String()
	require.Contains(t, logs, "http request")
	require.Contains(t, logs, "route=\"POST /api/v1/keys\"")
	require.NotContains(t, logs, admin, "no key in the log")
	require.NotContains(t, logs, finance, "no key in the log")
	require.Contains(t, logs, "msg=stopped")

	// Second start: the same database, nothing printed, the old key works.
	s = start(t, bin, dir, "-admin-key-file", keyFile)
	status, body = s.call(t, "GET", "/api/v1/records/opportunity/"+id, finance, "")
	require.Equal(t, 200, status, "%v", body)
	b, err = os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, admin, strings.TrimSpace(string(b)), "the key file is left alone after the first start")
	require.Equal(t, 0, s.stop(t))
	require.NotContains(t, s.stdout.String(), "slk_")
}

func TestServerEnvironment(t *testing.T) {
	env := map[string]string{
		"CRMKIT_ADDR":                   "127.0.0.1:9999",
		"CRMKIT_DB":                     "/tmp/x.db",
		"CRMKIT_REDIS":                  "localhost:6379",
		"CRMKIT_ADMIN_KEY_FILE":         "/tmp/key",
		"CRMKIT_ALLOW_PRIVATE_WEBHOOKS": "true",
		"CRMKIT_SECRET_KEY_FILE":        "/tmp/secret",
		"CRMKIT_PUBLIC_URL":             "https://crm.example.com",
	}
	o, err := parseOptions(nil, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, options{addr: "127.0.0.1:9999", db: "/tmp/x.db", redis: "localhost:6379", adminKeyFile: "/tmp/key", allowPrivateWebhooks: true,
		secretKeyFile: "/tmp/secret", publicURL: "https://crm.example.com"}, o)

	o, err = parseOptions([]string{"-addr", ":1", "-db", "postgres://db/crm"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ":1", o.addr, "a flag wins over the environment")
	require.Equal(t, "postgres://db/crm", o.db)

	o, err = parseOptions(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, options{addr: ":8080", db: "crmkit.db"}, o)

	_, err = parseOptions([]string{"stray"}, func(string) string { return "" }, io.Discard)
	require.Error(t, err)
}

// TestServerShutdownFinishesInFlight: on SIGTERM or SIGINT the server stops
// taking new connections, finishes the request it is in the middle of, and
// exits 0.
func TestServerShutdownFinishesInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}} {
		sig := tc.sig
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "admin.key")
			s := start(t, bin, dir, "-admin-key-file", keyFile)
			b, err := os.ReadFile(keyFile)
			require.NoError(t, err)
			admin := strings.TrimSpace(string(b))

			// The body is streamed through a pipe, and sent only after the
			// server's 100 Continue, which it answers when the handler first
			// reads the body: from then on the request is in the handler.
			body := `{"fields":{"name":"Acme Corp renewal","amount":48000,"stage":"Negotiation"}}`
			half := len(body) / 2
			pr, pw := io.Pipe()
			continued := make(chan struct{})
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { close(continued) }})
			req, err := http.NewRequestWithContext(ctx, "POST", s.url+"/api/v1/records/opportunity", pr)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Expect", "100-continue")
			client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute, DisableKeepAlives: true}}
			type result struct {
				status int
				body   []byte
				err    error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := client.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				done <- result{status: resp.StatusCode, body: b, err: err}
			}()
			select {
			case <-continued:
			case r := <-done:
				t.Fatalf("the request ended before its body was sent: %d %s %v", r.status, r.body, r.err)
			case <-time.After(60 * time.Second):
				t.Fatal("no 100 Continue from the server")
			}
			_, err = pw.Write([]byte(body[:half]))
			require.NoError(t, err)

			require.NoError(t, s.cmd.Process.Signal(sig))
			// New connections are refused from the moment the shutdown
			// begins, while the request above is still waiting for its body.
			fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			require.Eventually(t, func() bool {
				resp, err := fresh.Get(s.url + "/healthz")
				if err != nil {
					return true
				}
				_ = resp.Body.Close()
				return false
			}, 60*time.Second, 20*time.Millisecond, "new requests are still served after %v", sig)
			// The log reaches the test through a pipe, so it may lag behind
			// the refusals.
			require.Eventually(t, func() bool { return strings.Contains(s.stderr.String(), `msg="shutting down"`) },
				60*time.Second, 10*time.Millisecond)
			select {
			case r := <-done:
				t.Fatalf("the request in flight ended before its body was sent: %d %s %v", r.status, r.body, r.err)
			case <-s.done:
				t.Fatalf("the server exited with a request in flight: %v", s.err)
			default:
			}

			_, err = pw.Write([]byte(body[half:]))
			require.NoError(t, err)
			require.NoError(t, pw.Close())
			var r result
			select {
			case r = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("the request in flight was not answered")
			}
			require.NoError(t, r.err)
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			var created map[string]any
			require.NoError(t, json.Unmarshal(r.body, &created))
			require.Equal(t, "Acme Corp renewal", created["fields"].(map[string]any)["name"])

			select {
			case <-s.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("the server did not exit after %v", sig)
			}
			require.Equal(t, 0, s.cmd.ProcessState.ExitCode(), "stderr:\n%s", s.stderr.String())
			require.Contains(t, s.stderr.String(), "msg=stopped")
		})
	}
}

// TestServerHelp: -h names every flag, what the listener serves (the API
// and its OpenAPI document, the event feed, the console, metrics and the
// probes) and every operator command, and exits 0 without opening a
// database.
func TestServerHelp(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	help := stderr.String()
	for _, want := range []string{
		"-addr", "-db", "-redis", "-admin-key-file", "-allow-private-webhooks", "-secret-key-file", "-public-url",
		"/api/v1/openapi.json", "GET /api/v1/events", "admin console", "GET /metrics", "GET /healthz", "GET /readyz",
		"workspace create", "workspace list", "workspace set-plan", "key create", "migrate", "secrets rotate-key",
	} {
		require.Contains(t, help, want)
	}
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, files, "no database was made")
}
