package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// Keys is what the console needs of API keys; *apikey.Service satisfies it.
//
// Every call but Verify names a workspace and answers an error wrapping
// records.ErrNotFound for a key that is not one of that workspace's. Invalid
// input is a *records.ValidationError whose fields the console shows next
// to the form's inputs.
type Keys interface {
	// Create issues a key and answers its plaintext, shown once.
	Create(ctx context.Context, workspace, name string, scopes []apikey.Scope, expiresAt *time.Time) (apikey.Key, string, error)
	// Get answers one key's metadata.
	Get(ctx context.Context, workspace, id string) (apikey.Key, error)
	// List answers up to limit keys with an id after the given one (""
	// for the first), oldest first.
	List(ctx context.Context, workspace, after string, limit int) ([]apikey.Key, error)
	// Revoke ends a key now.
	Revoke(ctx context.Context, workspace, id string) (apikey.Key, error)
	// Rotate issues a replacement key, answering its plaintext, and lets the
	// old one work for grace; an inactive key is apikey.ErrInactive.
	Rotate(ctx context.Context, workspace, id string, grace time.Duration) (apikey.Key, string, error)
	// Verify answers the principal of a plaintext key, or an error wrapping
	// apikey.ErrInvalidKey. Sign-in calls it; an error never holds the key.
	Verify(ctx context.Context, plaintext string) (*apikey.Principal, error)
}

// Webhooks is what the console needs of outbound webhooks;
// *outbound.Service satisfies it.
//
// Every call names a workspace (in DeliveryQuery too) and answers an error
// wrapping records.ErrNotFound for an endpoint or delivery that is not that
// workspace's. Invalid input is a *records.ValidationError.
type Webhooks interface {
	// Create registers an endpoint and answers its secret, shown once.
	Create(ctx context.Context, workspace string, in outbound.EndpointInput) (*outbound.Endpoint, string, error)
	// List answers up to limit endpoints with an id after the given one
	// ("" for the first), in id order.
	List(ctx context.Context, workspace, after string, limit int) ([]*outbound.Endpoint, error)
	Get(ctx context.Context, workspace, id string) (*outbound.Endpoint, error)
	// Update changes the settings apply edits.
	Update(ctx context.Context, workspace, id string, apply func(in *outbound.EndpointInput) error) (*outbound.Endpoint, error)
	// RotateSecret issues a new secret, answered once; the old one signs
	// beside it for grace.
	RotateSecret(ctx context.Context, workspace, id string, grace time.Duration) (*outbound.Endpoint, string, error)
	// SendTest sends a sample event now and answers the attempt.
	SendTest(ctx context.Context, workspace, id string) (*outbound.Attempt, error)
	// Deliveries answers up to q.Limit deliveries with their attempts,
	// newest first, older than q.Before when it is set.
	Deliveries(ctx context.Context, q outbound.DeliveryQuery) ([]*outbound.Delivery, error)
	// Delivery answers one delivery with its attempts.
	Delivery(ctx context.Context, workspace, id string) (*outbound.Delivery, error)
	// Redeliver sends a delivery again.
	Redeliver(ctx context.Context, workspace, id string) (*outbound.Delivery, error)
	// Replay sends again the failed deliveries created since the time, of
	// one endpoint when endpointID is set, and answers how many.
	Replay(ctx context.Context, workspace string, since time.Time, endpointID string) (int, error)
}

// DeliveryCounter is an optional interface of Webhooks. Without it, the
// endpoint page's chart of the last 24 hours reads the delivery log newest
// first and counts at most its latest 2,000 deliveries, which is most of
// the page's cost for a busy endpoint; a Webhooks that can count lets the
// chart count them all in one call.
type DeliveryCounter interface {
	// CountDeliveries answers how many of the endpoint's deliveries were
	// created in each hour from since (the start of an hour, UTC) on, by
	// status: counts[hour][status], hour being the start of the hour in
	// UTC. An endpoint that is not the workspace's is records.ErrNotFound.
	CountDeliveries(ctx context.Context, workspace, endpointID string, since time.Time) (counts map[time.Time]map[string]int, err error)
}

// AuditLog reads the audit log; *store.Store satisfies it.
type AuditLog interface {
	// ListAudit answers a workspace's audit entries in ascending id order
	// (oldest first), those after the id after, of one record when recordID
	// is set, at most limit of them.
	ListAudit(ctx context.Context, workspace, recordID, after string, limit int) ([]*records.AuditEntry, error)
}

// Identity is who uses the console: the workspace whose data every page
// shows, and the actor acting in it.
type Identity struct {
	Workspace string
	// Actor identifies who acts (an API key id for key sign-in).
	Actor string
	// Name is what the pages call the actor.
	Name string
	// Session, for an Authenticator, is the host's session id (or anything
	// that changes when the person signs in again): CSRF tokens are bound
	// to it. It is never shown.
	Session string
}

// Authenticator lets a host sign people in its own way instead of the
// console's sign-in with an ADMIN key.
type Authenticator interface {
	// Authenticate answers who makes r, with ok false when r carries no
	// signed-in identity. An error is a failure to find out (a store
	// down), answered 500.
	Authenticate(r *http.Request) (id Identity, ok bool, err error)
}

// Defaults of Config.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
)

// Config configures the console. Keys is required; every feature field that
// is nil is left out of the pages and the navigation.
type Config struct {
	// Keys manages API keys (the API Keys pages) and, unless Authenticator
	// is set, verifies the ADMIN key people sign in with. Required.
	Keys Keys
	// Webhooks drives the Webhooks pages and the delivery log.
	Webhooks Webhooks
	// Audit drives the audit log page.
	Audit AuditLog
	// Inbound drives the Inbound pages: sources with their mapping editor
	// and preview, and the inbound log with retries.
	Inbound Inbound
	// Connectors drives the Connectors pages: preview, run now and the run
	// log.
	Connectors Connectors
	// Imports drives the Imports pages: upload, column mapping, preview,
	// progress and results.
	Imports Imports

	// Authenticator, when set, replaces sign-in with an API key: the host
	// decides who is signed in, and the console has no sign-in or sign-out
	// page of its own.
	Authenticator Authenticator
	// SignInURL is where people who are not signed in are sent when
	// Authenticator is set; empty answers 401 instead.
	SignInURL string
	// Sessions keeps sign-in sessions. Default: in this process's memory,
	// so with several replicas either route each person to one replica or
	// pass a shared implementation.
	Sessions SessionStore
	// IdleTimeout ends a session unused for this long. Default 30 minutes.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in however busy. Default
	// 12 hours.
	MaxAge time.Duration
	// SecureCookie sets Secure on cookies of plain-HTTP requests too, for a
	// console behind a proxy that ends TLS. Requests over TLS always get it.
	SecureCookie bool

	// BasePath is the path the handler is mounted under, without a trailing
	// slash ("" for the root, "/admin" with http.StripPrefix("/admin", h)).
	// Links and cookies use it.
	BasePath string
	// APIURL is the scheme and host (and path prefix, if any) other
	// systems reach the REST API at, such as "https://crm.example.com",
	// for the addresses the pages give senders to post to. Default: the
	// scheme and host the console's own request came to, which is right
	// when the API is mounted beside the console and no proxy in front
	// changes the host.
	APIURL string
	// Title names the product in page titles. Default "SmartLite CRM".
	Title string
	// Logger receives sign-ins, sign-outs and failures; never a key, secret
	// or token. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time of sessions, of the chart and of default form
	// values. Default time.Now.
	Clock func() time.Time
}

// handler is the console.
type handler struct {
	cfg      Config
	keys     Keys
	webhooks Webhooks
	audit    AuditLog
	inbound  Inbound
	conns    Connectors
	imports  Imports
	uploads  *importUploads
	auth     Authenticator
	sessions SessionStore
	log      *slog.Logger
	clock    func() time.Time
	base     string
	idle     time.Duration
	maxAge   time.Duration
	// csrfKey binds the CSRF tokens of host-authenticated identities.
	csrfKey []byte
	pages   *pages
	static  http.Handler
	mux     *http.ServeMux
	root    http.Handler
}

// New returns the console as an http.Handler. Mount it at BasePath.
func New(cfg Config) (http.Handler, error) {
	if cfg.Keys == nil {
		return nil, errors.New("console: Config.Keys is required")
	}
	base := strings.TrimRight(cfg.BasePath, "/")
	if base != "" && !strings.HasPrefix(base, "/") {
		return nil, errors.New(`console: Config.BasePath must start with "/"`)
	}
	h := &handler{
		cfg: cfg, keys: cfg.Keys, webhooks: cfg.Webhooks, audit: cfg.Audit, auth: cfg.Authenticator,
		inbound: cfg.Inbound, conns: cfg.Connectors, imports: cfg.Imports,
		sessions: cfg.Sessions, log: cfg.Logger, clock: cfg.Clock, base: base,
		idle: cfg.IdleTimeout, maxAge: cfg.MaxAge,
	}
	if h.sessions == nil {
		h.sessions = NewMemorySessions()
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.idle <= 0 {
		h.idle = DefaultIdleTimeout
	}
	if h.maxAge <= 0 {
		h.maxAge = DefaultMaxAge
	}
	if h.cfg.Title == "" {
		h.cfg.Title = "SmartLite CRM"
	}
	h.csrfKey = make([]byte, 32)
	if _, err := rand.Read(h.csrfKey); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	h.static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
	h.routes()
	return h, nil
}

// feature is one section of the console: a navigation entry and its pages.
// Each is present only when its service is configured.
type feature struct {
	name string // the navigation label
	path string // the section's first page, under the base path
}

// features answers the configured sections in navigation order.
func (h *handler) features() []feature {
	f := []feature{{name: "API Keys", path: "/keys"}}
	if h.webhooks != nil {
		f = append(f, feature{name: "Webhooks", path: "/webhooks"})
	}
	if h.inbound != nil {
		f = append(f, feature{name: "Inbound", path: "/inbound"})
	}
	if h.conns != nil {
		f = append(f, feature{name: "Connectors", path: "/connectors"})
	}
	if h.imports != nil {
		f = append(f, feature{name: "Imports", path: "/imports"})
	}
	if h.audit != nil {
		f = append(f, feature{name: "Audit log", path: "/audit"})
	}
	return f
}

func (h *handler) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", h.static)
	m.HandleFunc("GET /{$}", h.signedIn(func(w http.ResponseWriter, r *http.Request, _ *request) error {
		http.Redirect(w, r, h.base+"/keys", http.StatusSeeOther)
		return nil
	}))
	if h.auth == nil {
		m.HandleFunc("GET /sign-in", h.signInForm)
		m.HandleFunc("POST /sign-in", h.signIn)
		m.HandleFunc("POST /sign-out", h.signedIn(h.signOut))
	}
	h.keyRoutes(m)
	if h.webhooks != nil {
		h.webhookRoutes(m)
	}
	if h.inbound != nil {
		h.inboundRoutes(m)
	}
	if h.conns != nil {
		h.connectorRoutes(m)
	}
	if h.imports != nil {
		h.importRoutes(m)
	}
	if h.audit != nil {
		m.HandleFunc("GET /audit", h.signedIn(h.auditPage))
	}
	h.mux = m
	// Browsers say where a request comes from; a cross-site POST is turned
	// away before it reaches the CSRF token check, which is kept for
	// browsers that do not say.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	h.root = cop.Handler(m)
}

// maxFormBytes bounds a form body; the console's forms are small.
const maxFormBytes = 64 << 10

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if r.Body != nil {
		limit := int64(maxFormBytes)
		if h.imports != nil && r.Method == http.MethodPost && r.URL.Path == importUploadPath {
			limit = h.uploadBodyBytes()
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	h.root.ServeHTTP(w, r)
}

// paged cuts a list read with one item more than limit down to limit, and
// answers the cursor of the next page: the id of the last item kept, ""
// when there was no more.
func paged[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, id(items[limit-1])
}
