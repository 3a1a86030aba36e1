// Command receiver is a minimal webhook receiver: it verifies the signature of
// every delivery with package webhook's middleware and prints the event id,
// type and record of each verified delivery to stdout, one line each.
// Deliveries with a missing or bad signature are answered 400 and not printed.
//
//	WEBHOOK_SECRET=whsec_… go run ./examples/receiver -addr 127.0.0.1:9000
//	go run ./examples/receiver -secret-file secret.txt
//
// The secret file holds one or more secrets separated by whitespace or
// commas (WEBHOOK_SECRET likewise), so a receiver can hold the old and the
// new secret through a rotation. The secret is never printed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smartlite/crmkit/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx ends, and calls listening (when not nil)
// with the bound address once the listener is open.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, listening func(net.Addr)) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "address to listen on")
	secretFile := fs.String("secret-file", "", "file holding the endpoint secret(s); default: $WEBHOOK_SECRET")
	tolerance := fs.Duration("tolerance", webhook.DefaultTolerance, "how far a signature's timestamp may lie from this clock")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secrets, err := loadSecrets(*secretFile, getenv)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newHandler(webhook.Verifier{Secrets: secrets, Tolerance: *tolerance}, stdout),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(stderr, "receiver: listening on http://%s with %d secret(s)\n", ln.Addr(), len(secrets))
	if listening != nil {
		listening(ln.Addr())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loadSecrets reads the secrets from path, or from WEBHOOK_SECRET when path
// is empty. Error messages name where the secret came from, never its value.
func loadSecrets(path string, getenv func(string) string) ([]string, error) {
	raw, source := getenv("WEBHOOK_SECRET"), "WEBHOOK_SECRET"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading the secret file: %w", err)
		}
		raw, source = string(b), path
	}
	secrets := strings.FieldsFunc(raw, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(secrets) == 0 {
		return nil, fmt.Errorf("no secret: set WEBHOOK_SECRET or pass -secret-file (%s is empty)", source)
	}
	return secrets, nil
}

// newHandler verifies each delivery and prints "<event id> <type> <record>"
// to out.
func newHandler(v webhook.Verifier, out io.Writer) http.Handler {
	var mu sync.Mutex // one line per delivery, never interleaved
	show := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var event struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Data struct {
				Record json.RawMessage `json:"record"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&event); err != nil || event.ID == "" || event.Type == "" {
			http.Error(w, "the body is not a webhook event", http.StatusBadRequest)
			return
		}
		record := []byte("null")
		if len(event.Data.Record) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, event.Data.Record); err == nil {
				record = buf.Bytes()
			}
		}
		mu.Lock()
		fmt.Fprintf(out, "%s %s %s\n", event.ID, event.Type, record)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux := http.NewServeMux()
	mux.Handle("POST /", webhook.Middleware(v)(show))
	return mux
}
