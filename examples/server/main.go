// Command server is crmkit's reference server: the REST API, API keys, rate
// limits and background jobs on one embedded SQLite file, with no setup.
//
//	go run ./examples/server
//
// The first start creates a workspace on the Starter plan and an ADMIN API
// key, prints the key once, and (with -admin-key-file) writes it to a file
// readable by its owner only. Later starts reuse both.
//
// Flags, each with an environment equivalent (the flag wins):
//
//	-addr                    CRMKIT_ADDR                    listen address (default :8080)
//	-db                      CRMKIT_DB                      SQLite file or postgres:// URL (default crmkit.db)
//	-redis                   CRMKIT_REDIS                   Redis address or URL for rate limits shared by replicas
//	-admin-key-file          CRMKIT_ADMIN_KEY_FILE          where to write the first admin key (mode 0600)
//	-allow-private-webhooks  CRMKIT_ALLOW_PRIVATE_WEBHOOKS  let webhooks and connectors reach loopback and private addresses (local testing)
//	-secret-key-file         CRMKIT_SECRET_KEY_FILE         the key that seals secrets in the database (see below)
//
// Webhook signing secrets (and the other secrets the server must give back)
// are sealed in the database with AES-256-GCM under a key-encryption key
// read from -secret-key-file. Without the flag, the server uses
// <database file>.secret-key beside an SQLite database, or
// crmkit.secret-key in the working directory for a postgres:// one, and
// generates it there (mode 0600) on first start. Back it up with the
// database: without it the secrets cannot be read. Replicas on one Postgres
// database must be given the same file; a server whose key did not seal
// the database's secrets refuses to start, naming both key ids. A file
// named by the flag must exist. New SQLite database files are mode 0600.
//
// SIGINT or SIGTERM shuts down cleanly: requests in flight finish, then
// background jobs stop.
//
// GET /healthz is the liveness probe (the database answers); GET /readyz the
// readiness probe (the database answers and this replica's job client runs).
// The admin console (package console) is at /: sign in with an ADMIN key.
// GET /metrics, on the same listener and without a key, is the Prometheus
// exposition of package metrics' series plus Go and process metrics; keep
// it from the public internet at the proxy in front.
//
// Operator commands work on the same database, running servers or not:
//
//	server workspace create --name NAME [--plan starter|pro|enterprise]
//	server workspace list
//	server workspace set-plan --workspace ID --plan PLAN
//	server key create --workspace ID --name NAME --scopes READ,WRITE [--expires-in 720h]
//	server migrate
//	server secrets rotate-key --old-key-file OLD --new-key-file NEW
//
// Each takes -db (env CRMKIT_DB). A plan change reaches running servers
// within their plan cache lifetime (2 s); key create prints the key once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/console"
	"github.com/smartlite/crmkit/integration"
	"github.com/smartlite/crmkit/metrics"
	"github.com/smartlite/crmkit/ratelimit/redisstore"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// options are the server's settings, from flags and the environment.
type options struct {
	addr                 string
	db                   string
	redis                string
	adminKeyFile         string
	allowPrivateWebhooks bool
	secretKeyFile        string
	publicURL            string
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var o options
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", env("CRMKIT_ADDR", ":8080"), "listen address (env CRMKIT_ADDR)")
	fs.StringVar(&o.db, "db", env("CRMKIT_DB", "crmkit.db"), "SQLite file, or a postgres:// URL (env CRMKIT_DB)")
	fs.StringVar(&o.redis, "redis", env("CRMKIT_REDIS", ""), "Redis address or redis:// URL; rate limits are then shared by every replica using it (env CRMKIT_REDIS)")
	fs.StringVar(&o.adminKeyFile, "admin-key-file", env("CRMKIT_ADMIN_KEY_FILE", ""), "on first start, also write the admin key to this file, mode 0600 (env CRMKIT_ADMIN_KEY_FILE)")
	allow, _ := strconv.ParseBool(env("CRMKIT_ALLOW_PRIVATE_WEBHOOKS", "false"))
	fs.BoolVar(&o.allowPrivateWebhooks, "allow-private-webhooks", allow, "let webhook endpoints and connectors reach loopback, private and link-local addresses; for local testing only (env CRMKIT_ALLOW_PRIVATE_WEBHOOKS)")
	fs.StringVar(&o.publicURL, "public-url", env("CRMKIT_PUBLIC_URL", ""), "the URL other systems reach this server at behind a proxy, such as https://crm.example.com: the console gives it to inbound senders; default: the host each console request came to (env CRMKIT_PUBLIC_URL)")
	fs.StringVar(&o.secretKeyFile, "secret-key-file", env("CRMKIT_SECRET_KEY_FILE", ""), "file holding the key that seals webhook and connector secrets in the database; default: beside an SQLite database, generated on first start (env CRMKIT_SECRET_KEY_FILE)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: server [flags]   (serve the API)\n       server COMMAND ...  (operate on the database)\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\n%s\n%s", servedUsage, operatorUsage)
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if isOperatorCommand(args) {
		return operate(ctx, args, getenv, stdout, stderr)
	}
	opts, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, opts, log, stdout); err != nil {
		log.Error("server stopped", "error", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, opts options, log *slog.Logger, stdout io.Writer) error {
	secretKey, err := serverSecretKey(opts.secretKeyFile, opts.db, log)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, opts.db, store.WithSecretKey(secretKey))
	if err != nil {
		return err
	}
	defer st.Close()

	limitStore, closeRedis, err := rateLimitStore(ctx, opts.redis)
	if err != nil {
		return err
	}
	defer closeRedis()
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := integration.New(integration.Config{
		Store:                st,
		Logger:               log,
		Metrics:              m,
		RateLimitStore:       limitStore,
		AllowPrivateWebhooks: opts.allowPrivateWebhooks,
	})
	if err != nil {
		return err
	}
	if err := bootstrap(ctx, st, svc.Keys(), opts.adminKeyFile, stdout); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	conCfg := console.Config{Keys: svc.Keys(), Webhooks: svc.Webhooks(), Audit: st, Logger: log,
		Inbound: svc.Inbound(), Connectors: svc.Connectors(), APIURL: opts.publicURL}
	// A nil *ingest.Importer in the interface would not read as nil.
	if im := svc.Importer(); im != nil {
		conCfg.Imports = im
	}
	con, err := console.New(conCfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/api/", svc.Handler())
	mux.Handle("/healthz", svc.Handler())
	mux.Handle("/readyz", svc.Handler())
	mux.Handle("/", con)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if err := svc.Start(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "db", st.Dialect(), "shared_rate_limits", opts.redis != "")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		_ = svc.Stop(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Shutdown stops accepting and waits for requests in flight; only then
	// do the jobs stop, so a request's enqueued work is not cut short.
	err = srv.Shutdown(shutdownCtx)
	if stopErr := svc.Stop(shutdownCtx); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// defaultWorkspace is the id of the workspace the server makes on its first
// start. A fixed id makes the first start idempotent: two replicas starting
// at once on one database create it once.
const defaultWorkspace = "ws_default"

// bootstrap creates the default workspace and its first ADMIN key when the
// database has none, prints the key once and writes it to keyFile.
func bootstrap(ctx context.Context, st *store.Store, keys *apikey.Service, keyFile string, stdout io.Writer) error {
	_, err := st.GetWorkspace(ctx, defaultWorkspace)
	switch {
	case errors.Is(err, records.ErrNotFound):
		err = st.CreateWorkspace(ctx, &records.Workspace{ID: defaultWorkspace, Name: "Default", Plan: "starter"})
		if errors.Is(err, records.ErrDuplicate) {
			return nil // another replica won the first start
		}
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		// A start that crashed between the workspace and its key would leave
		// nobody able to call the API; issue the key then too.
		existing, err := st.APIKeys(ctx, defaultWorkspace, "", 1)
		if err != nil || len(existing) > 0 {
			return err
		}
	}
	k, plain, err := keys.Create(ctx, defaultWorkspace, "Admin", []apikey.Scope{apikey.ScopeAdmin}, nil)
	if err != nil {
		return err
	}
	if keyFile != "" {
		if err := writeKeyFile(keyFile, plain); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "Created workspace %q (plan starter) and its admin API key %s.\n", defaultWorkspace, k.ID)
	fmt.Fprintf(stdout, "The key is shown only this once; keep it safe:\n\n    %s\n\n", plain)
	if keyFile != "" {
		fmt.Fprintf(stdout, "It was also written to %s (mode 0600).\n", keyFile)
	}
	return nil
}

// writeKeyFile writes the key readable and writable by the owner only, also
// when the file existed before with wider permissions.
func writeKeyFile(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("admin key file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("admin key file: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("admin key file: %w", err)
	}
	return f.Close()
}

// rateLimitStore answers the Redis-backed store factory when addr is set,
// and nil (per-process memory) otherwise. addr is host:port or a redis://
// URL.
func rateLimitStore(ctx context.Context, addr string) (integration.RateLimitStoreFactory, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	var opts *redis.Options
	if strings.Contains(addr, "://") {
		o, err := redis.ParseURL(addr)
		if err != nil {
			return nil, nil, fmt.Errorf("redis: %w", err)
		}
		opts = o
	} else {
		opts = &redis.Options{Addr: addr}
	}
	client := redis.NewClient(opts)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	return redisstore.Factory(client, "crmkit:"), func() { _ = client.Close() }, nil
}
