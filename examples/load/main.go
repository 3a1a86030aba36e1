// Command load measures crmkit end to end over HTTP on loopback, for a
// bounded time, and prints its figures as one JSON object.
//
//	go run ./examples/load -scenario get -duration 10s -concurrency 16
//	go run ./examples/load -scenario get -db postgres://user@127.0.0.1/crm
//	go run ./examples/load -scenario get -url http://127.0.0.1:8080 -admin-key slk_…
//
// Without -url it starts the reference server's stack in-process on a fresh
// SQLite file (or on the database -db names), with one workspace on an
// unmetered plan, so the figures measure crmkit and not the rate limiter.
// With -url it targets a running server, which must be on loopback (the
// command refuses any other address), using an ADMIN key given by
// -admin-key or CRMKIT_ADMIN_KEY; that server's rate limits then apply, and
// 429 answers count as errors.
//
// Each scenario lives in its own file and registers itself in an init
// function; "get" fires authenticated GETs of one record.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/integration"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// scenario is one kind of load. run drives t until ctx ends and answers its
// figures; common ones (requests, rps, p50_ms, p99_ms, errors) come from a
// recorder, and a scenario may add its own.
type scenario struct {
	description string
	run         func(ctx context.Context, t *target, o options) (map[string]any, error)
}

// scenarios are the loads the command can run, each defined in its own file.
var scenarios = map[string]scenario{
	"get":           getScenario,
	"webhooks":      webhooksScenario,
	"webhooks-push": webhooksPushScenario,
	"inbound":       inboundScenario,
	"noisy":         noisyScenario,
}

// options are the command's settings.
type options struct {
	scenario    string
	duration    time.Duration
	concurrency int
	db          string
	url         string
	adminKey    string
	rate        float64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	var help strings.Builder
	for _, n := range names {
		fmt.Fprintf(&help, "\n  %s: %s", n, scenarios[n].description)
	}
	fs.StringVar(&o.scenario, "scenario", "get", "what to load:"+help.String())
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to fire (at most 10m)")
	fs.IntVar(&o.concurrency, "concurrency", 16, "requests in flight at once")
	fs.StringVar(&o.db, "db", "", "database of the in-process server: an SQLite file or postgres:// URL (default: a fresh SQLite file in a temp dir)")
	fs.StringVar(&o.url, "url", "", "target a running server at this loopback URL instead")
	fs.StringVar(&o.adminKey, "admin-key", os.Getenv("CRMKIT_ADMIN_KEY"), "ADMIN key of the -url server (env CRMKIT_ADMIN_KEY)")
	fs.Float64Var(&o.rate, "rate", 0, "for scenarios that pace themselves: operations per second")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sc, ok := scenarios[o.scenario]
	if !ok {
		return fmt.Errorf("unknown scenario %q (have %s)", o.scenario, strings.Join(names, ", "))
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		return errors.New("-duration must be above 0 and at most 10m")
	}
	if o.concurrency < 1 || o.concurrency > 1000 {
		return errors.New("-concurrency must be from 1 to 1000")
	}
	t, err := newTarget(ctx, o)
	if err != nil {
		return err
	}
	defer t.close()
	res, err := sc.run(ctx, t, o)
	if err != nil {
		return err
	}
	res["scenario"] = o.scenario
	res["db"] = t.db
	res["concurrency"] = o.concurrency
	res["duration_s"] = o.duration.Seconds()
	enc := json.NewEncoder(stdout)
	return enc.Encode(res)
}

// target is the server under load and an admin key of its workspace.
type target struct {
	url    string
	admin  string
	db     string
	client *http.Client
	// set for an in-process server
	svc   *integration.Service
	st    *store.Store
	close func()
}

// unmetered is the plan of the in-process workspace: no record cap and a
// rate limit no run reaches.
const unmetered = "unmetered"

func newTarget(ctx context.Context, o options) (*target, error) {
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        o.concurrency * 2,
			MaxIdleConnsPerHost: o.concurrency * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
	if o.url != "" {
		if err := requireLoopback(ctx, o.url); err != nil {
			return nil, err
		}
		if o.adminKey == "" {
			return nil, errors.New("-url needs the server's ADMIN key in -admin-key or CRMKIT_ADMIN_KEY")
		}
		return &target{url: strings.TrimRight(o.url, "/"), admin: o.adminKey, db: "remote", client: client, close: func() {}}, nil
	}

	dsn, cleanup := o.db, func() {}
	if dsn == "" {
		dir, err := os.MkdirTemp("", "crmkit-load-")
		if err != nil {
			return nil, err
		}
		dsn, cleanup = filepath.Join(dir, "load.db"), func() { _ = os.RemoveAll(dir) }
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		cleanup()
		return nil, err
	}
	svc, err := integration.New(integration.Config{
		Store:  st,
		Logger: slog.New(slog.DiscardHandler),
		Plans:  append(records.DefaultPlans(), records.Plan{Name: unmetered, RequestsPerMinute: 1 << 50}),
		// The webhook scenarios' receiver is on loopback, like everything
		// this command loads.
		AllowPrivateWebhooks: true,
	})
	if err != nil {
		_ = st.Close()
		cleanup()
		return nil, err
	}
	ws := &records.Workspace{Name: "Load", Plan: unmetered}
	if err := st.CreateWorkspace(ctx, ws); err != nil {
		_ = st.Close()
		cleanup()
		return nil, err
	}
	_, admin, err := svc.Keys().Create(ctx, ws.ID, "Load admin", []apikey.Scope{apikey.ScopeAdmin}, nil)
	if err != nil {
		_ = st.Close()
		cleanup()
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		_ = st.Close()
		cleanup()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = svc.Stop(ctx)
		_ = st.Close()
		cleanup()
		return nil, err
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &target{
		url: "http://" + ln.Addr().String(), admin: admin, db: st.Dialect(), client: client, svc: svc, st: st,
		close: func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			_ = svc.Stop(sctx)
			_ = st.Close()
			cleanup()
		},
	}, nil
}

// requireLoopback refuses a target that is not on this machine: the command
// generates real load and must never be pointed at someone else's server.
func requireLoopback(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url: scheme must be http or https, not %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("-url: no host")
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("-url: resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("-url: %s resolves to %s, which is not a loopback address; this command only loads servers on this machine", host, a)
		}
	}
	return nil
}

// call sends one JSON request with key and decodes a JSON answer into out
// (when not nil).
func (t *target) call(ctx context.Context, method, path, key string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, t.url+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

// newKey creates a key with scopes through the API, as an integration would
// be given one.
func (t *target) newKey(ctx context.Context, name string, scopes ...string) (string, error) {
	var k struct {
		Key string `json:"key"`
	}
	_, err := t.call(ctx, "POST", "/api/v1/keys", t.admin, map[string]any{"name": name, "scopes": scopes}, &k)
	return k.Key, err
}

// recorder collects latencies of successful operations and counts errors,
// from many goroutines.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	errors    int
	firstErr  error
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.latencies = append(r.latencies, d)
}

// figures answers the common figures over elapsed.
func (r *recorder) figures(elapsed time.Duration) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	n := len(lat) + r.errors
	res := map[string]any{
		"requests": n,
		"rps":      round(float64(n) / elapsed.Seconds()),
		"p50_ms":   round(ms(percentile(lat, 0.50))),
		"p99_ms":   round(ms(percentile(lat, 0.99))),
		"errors":   r.errors,
	}
	if r.firstErr != nil {
		res["first_error"] = r.firstErr.Error()
	}
	return res
}

// percentile answers the q-th quantile of sorted by the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// hammer runs op from o.concurrency goroutines until the duration has passed
// or ctx ends, and answers the figures.
func hammer(ctx context.Context, o options, op func(ctx context.Context) error) map[string]any {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		rec recorder
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range o.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx)
				if ctx.Err() != nil {
					return // cut off by the end of the run: not a result
				}
				rec.add(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	return rec.figures(time.Since(start))
}
