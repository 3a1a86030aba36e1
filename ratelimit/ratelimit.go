// Package ratelimit limits requests per API key by the plan of the key's
// workspace, on go-limiter stores (github.com/sethvargo/go-limiter).
//
// Each plan gets its own limiter.Store, created the first time a request on
// that plan arrives, and buckets are keyed by key id (never the key itself).
// The plan is read per request through Config.Key, so moving a workspace to
// another plan applies to its next request without a restart; its count
// starts afresh in the new plan's store.
//
// The default limits are the requests per minute of records.DefaultPlans:
// starter 60, pro 600, enterprise 6000. A plan missing from Config.Limits
// gets Config.DefaultPlan's limit.
//
// Every limited response carries the fields of the IETF httpapi draft
// "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers,
// revisions 08 to 11), with the plan as the policy name:
//
//	RateLimit-Policy: "starter";q=60;w=60
//	RateLimit: "starter";r=59;t=42
//
// where q is the quota, w the window in seconds, r the requests left and t
// the seconds until the window resets; and the widespread
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (epoch
// seconds). Over the limit the answer is 429 with Retry-After in whole
// seconds (at least 1) and a problem body with code "rate_limited".
//
// X-RateLimit-Scope says which limit the X-RateLimit fields describe:
// "key" or "workspace".
//
// A second Limiter with Config.Scope ScopeWorkspace, placed inside the
// key's, limits all the keys of a workspace together (Config.Key then
// answers the workspace id), so making keys does not multiply a plan's
// rate. Its policy is the plan's name with "-workspace" appended, listed
// after the key's in RateLimit-Policy and RateLimit:
//
//	RateLimit-Policy: "starter";q=60;w=60, "starter-workspace";q=120;w=60
//	RateLimit: "starter";r=59;t=42, "starter-workspace";r=80;t=42
//
// and the X-RateLimit fields describe whichever of the two has fewer
// requests left (the one that refused, on a 429), with X-RateLimit-Scope
// naming it. The body of a 429 names the limit too: "limit":"key" or
// "limit":"workspace".
//
// Memory stores are the default and count per process; the redisstore
// subpackage shares counts between replicas.
//
// The middleware goes after apikey.Authenticate, so that Config.Key can read
// the principal. Placed before apikey.RequireScope, it also counts (and
// labels with the headers) answers refused for a missing scope.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-limiter"
	"github.com/sethvargo/go-limiter/memorystore"

	"github.com/smartlite/crmkit/internal/problem"
	"github.com/smartlite/crmkit/records"
)

// LimitsOf answers the requests per minute of each rate-limited plan, for
// Config.Limits. Plans with no RequestsPerMinute are left out, so they fall
// to Config.DefaultPlan's limit.
func LimitsOf(plans []records.Plan) map[string]uint64 {
	m := make(map[string]uint64, len(plans))
	for _, p := range plans {
		if p.RequestsPerMinute > 0 {
			m[p.Name] = p.RequestsPerMinute
		}
	}
	return m
}

// ErrUnavailable: the store could not be asked (a Redis outage, say).
var ErrUnavailable = errors.New("ratelimit: limiter store unavailable")

// Config configures a Limiter.
type Config struct {
	// Limits maps plan names to requests per Window. Default:
	// LimitsOf(records.DefaultPlans()).
	Limits map[string]uint64
	// Window is the period Limits count over. Default one minute.
	Window time.Duration
	// DefaultPlan is the plan whose limit applies to a plan missing from
	// Limits. Default "starter".
	DefaultPlan string
	// NewStore creates the store of one plan. Default: memorystore.
	NewStore func(tokens uint64, interval time.Duration) (limiter.Store, error)
	// Key names the caller of a request and its plan; ok=false lets the
	// request through unlimited (it was not authenticated, and an
	// authentication layer will refuse it). Required. The id is used as
	// the bucket key as is, so it must not be a secret.
	Key func(r *http.Request) (id, plan string, ok bool)
	// FailOpen lets requests through when the store fails. By default they
	// are answered 503 with code "rate_limit_unavailable".
	FailOpen bool
	// Clock gives the time Reset and Retry-After are computed against.
	// Default time.Now.
	Clock func() time.Time
	// Logger receives store failures. Default slog.Default().
	Logger *slog.Logger
	// OnLimited, when set, is told the plan of every request answered 429,
	// for metrics. It must not block.
	OnLimited func(plan string)
	// Scope names what Key's id counts: ScopeKey (the default) or
	// ScopeWorkspace. A workspace limiter goes inside a key limiter (see
	// the package documentation for the headers of the two together).
	Scope string
}

// The scopes of Config.Scope, also the values of the X-RateLimit-Scope
// header and of the problem body's "limit" on a 429.
const (
	ScopeKey       = "key"
	ScopeWorkspace = "workspace"
)

// Limiter limits requests per key by plan. Close it to release its stores.
type Limiter struct {
	cfg Config

	// plans is read by every request without a lock. Writers, holding mu,
	// replace the map rather than change it: a plan's first request and
	// Close, a handful of writes in a Limiter's life.
	plans  atomic.Pointer[map[string]*plan]
	mu     sync.Mutex
	closed bool
}

type plan struct {
	name   string
	store  limiter.Store
	limit  string // decimal tokens, for headers
	policy string // RateLimit-Policy value
	quoted string // the sf-string of the plan name
}

// New returns a Limiter. Config.Key is required.
func New(cfg Config) (*Limiter, error) {
	if cfg.Key == nil {
		return nil, errors.New("ratelimit: Config.Key is required")
	}
	if cfg.Limits == nil {
		cfg.Limits = LimitsOf(records.DefaultPlans())
	}
	for name, n := range cfg.Limits {
		if n == 0 {
			return nil, fmt.Errorf("ratelimit: plan %q has a limit of 0", name)
		}
		if !validPlanName(name) {
			return nil, fmt.Errorf("ratelimit: plan name %q must be printable ASCII without quotes or backslashes", name)
		}
	}
	if cfg.DefaultPlan == "" {
		cfg.DefaultPlan = records.PlanStarter
	}
	if _, ok := cfg.Limits[cfg.DefaultPlan]; !ok {
		return nil, fmt.Errorf("ratelimit: default plan %q has no limit", cfg.DefaultPlan)
	}
	switch cfg.Scope {
	case "":
		cfg.Scope = ScopeKey
	case ScopeKey, ScopeWorkspace:
	default:
		return nil, fmt.Errorf("ratelimit: unknown scope %q", cfg.Scope)
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Window%time.Second != 0 {
		return nil, fmt.Errorf("ratelimit: window %s is not whole seconds", cfg.Window)
	}
	if cfg.NewStore == nil {
		cfg.NewStore = MemoryStore
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	limits := make(map[string]uint64, len(cfg.Limits))
	for k, v := range cfg.Limits {
		limits[k] = v
	}
	cfg.Limits = limits
	l := &Limiter{cfg: cfg}
	l.plans.Store(&map[string]*plan{})
	return l, nil
}

// MemoryStore is the default Config.NewStore: an in-process memorystore.
func MemoryStore(tokens uint64, interval time.Duration) (limiter.Store, error) {
	return memorystore.New(&memorystore.Config{Tokens: tokens, Interval: interval})
}

func validPlanName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// plan answers the plan's store, creating it on first use.
func (l *Limiter) plan(name string) (*plan, error) {
	if _, ok := l.cfg.Limits[name]; !ok {
		name = l.cfg.DefaultPlan
	}
	if p := (*l.plans.Load())[name]; p != nil {
		return p, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := (*l.plans.Load())[name]; p != nil {
		return p, nil
	}
	if l.closed {
		return nil, limiter.ErrStopped
	}
	tokens := l.cfg.Limits[name]
	st, err := l.cfg.NewStore(tokens, l.cfg.Window)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: store for plan %q: %w", name, err)
	}
	limit := strconv.FormatUint(tokens, 10)
	quoted := `"` + name + `"`
	if l.cfg.Scope != ScopeKey {
		quoted = `"` + name + "-" + l.cfg.Scope + `"`
	}
	p := &plan{
		name:   name,
		store:  st,
		limit:  limit,
		quoted: quoted,
		policy: quoted + ";q=" + limit + ";w=" + strconv.FormatInt(int64(l.cfg.Window/time.Second), 10),
	}
	plans := maps.Clone(*l.plans.Load())
	plans[name] = p
	l.plans.Store(&plans)
	return p, nil
}

// Result is the outcome of one Take.
type Result struct {
	Plan      string
	Limit     uint64
	Remaining uint64
	// Reset is when the window ends and tokens return.
	Reset time.Time
	OK    bool
}

// Take spends one request of key id on plan.
func (l *Limiter) Take(ctx context.Context, id, planName string) (Result, error) {
	p, err := l.plan(planName)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	res, err := l.take(ctx, p, id)
	return res, err
}

func (l *Limiter) take(ctx context.Context, p *plan, id string) (Result, error) {
	tokens, remaining, reset, ok, err := p.store.Take(ctx, id)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return Result{Plan: p.name, Limit: tokens, Remaining: remaining, Reset: time.Unix(0, int64(reset)), OK: ok}, nil
}

// Middleware is l.Middleware, as a function to pass where middleware
// constructors are expected.
func Middleware(l *Limiter) func(http.Handler) http.Handler { return l.Middleware }

// Middleware limits requests to next by Config.Key.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, planName, ok := l.cfg.Key(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		p, err := l.plan(planName)
		var res Result
		if err == nil {
			res, err = l.take(r.Context(), p, id)
		}
		if err != nil {
			l.cfg.Logger.ErrorContext(r.Context(), "ratelimit: store failed", "plan", planName, "key_id", id, "error", err)
			if l.cfg.FailOpen {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Retry-After", "1")
			problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable, Code: "rate_limit_unavailable", Detail: "the rate limiter cannot be reached; retry shortly"})
			return
		}
		now := l.cfg.Clock()
		secs := ceilSeconds(res.Reset.Sub(now))
		if l.cfg.Scope != ScopeKey {
			if l.addHeaders(w.Header(), p, res, secs) {
				next.ServeHTTP(w, r)
			} else {
				l.refuse(w, p, secs)
			}
			return
		}
		// This runs on every request, so it allocates twice rather than a
		// dozen times: the header names are written in their canonical form
		// straight into the map (Header.Set would allocate a canonical copy
		// of each mixed-case name), the values computed per request are cut
		// from one string (the remaining count once, inside RateLimit's),
		// and the five values share one backing array.
		var buf [128]byte
		b := append(buf[:0], p.quoted...)
		b = append(b, ";r="...)
		startRemaining := len(b)
		b = strconv.AppendUint(b, res.Remaining, 10)
		endRemaining := len(b)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, secs, 10)
		endRateLimit := len(b)
		b = strconv.AppendInt(b, ceilUnix(res.Reset), 10)
		all := string(b)
		vals := make([]string, 5)
		vals[0] = p.policy
		vals[1] = all[:endRateLimit]
		vals[2] = p.limit
		vals[3] = all[startRemaining:endRemaining]
		vals[4] = all[endRateLimit:]
		h := w.Header()
		h[hdrPolicy] = vals[0:1:1]
		h[hdrRateLimit] = vals[1:2:2]
		h[hdrLimit] = vals[2:3:3]
		h[hdrRemaining] = vals[3:4:4]
		h[hdrReset] = vals[4:5:5]
		h[hdrScope] = scopeKey
		if !res.OK {
			l.refuse(w, p, secs)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var scopeKey = []string{ScopeKey}

// refuse answers 429 for plan p, whose window ends in secs seconds.
func (l *Limiter) refuse(w http.ResponseWriter, p *plan, secs int64) {
	if l.cfg.OnLimited != nil {
		l.cfg.OnLimited(p.name)
	}
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	per := ""
	if l.cfg.Scope == ScopeWorkspace {
		per = " per workspace, across its keys"
	}
	problem.Write(w, problem.Details{
		Status: http.StatusTooManyRequests,
		Code:   "rate_limited",
		Limit:  l.cfg.Scope,
		Detail: "the " + p.name + " plan allows " + p.limit + " requests per " + windowText(l.cfg.Window) + per + "; retry after the time in Retry-After",
	})
}

// addHeaders adds the headers of a limiter that is not the key's to those a
// key limiter already set: its policy and its RateLimit item are listed
// after the key's, and the X-RateLimit fields (which hold one limit) and
// X-RateLimit-Scope change to this limit's when it has fewer requests left,
// or refuses. It answers whether the request may go on.
func (l *Limiter) addHeaders(h http.Header, p *plan, res Result, secs int64) bool {
	item := p.quoted + ";r=" + strconv.FormatUint(res.Remaining, 10) + ";t=" + strconv.FormatInt(secs, 10)
	h[hdrPolicy] = append(h[hdrPolicy], p.policy)
	h[hdrRateLimit] = append(h[hdrRateLimit], item)
	prev, err := strconv.ParseUint(h.Get(hdrRemaining), 10, 64)
	if err != nil || !res.OK || res.Remaining < prev {
		h[hdrLimit] = []string{p.limit}
		h[hdrRemaining] = []string{strconv.FormatUint(res.Remaining, 10)}
		h[hdrReset] = []string{strconv.FormatInt(ceilUnix(res.Reset), 10)}
		h[hdrScope] = []string{l.cfg.Scope}
	}
	return res.OK
}

// The canonical forms (http.CanonicalHeaderKey) of the headers every
// limited response carries.
const (
	hdrPolicy    = "Ratelimit-Policy"
	hdrRateLimit = "Ratelimit"
	hdrLimit     = "X-Ratelimit-Limit"
	hdrRemaining = "X-Ratelimit-Remaining"
	hdrReset     = "X-Ratelimit-Reset"
	hdrScope     = "X-Ratelimit-Scope"
)

func windowText(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Second:
		return "second"
	case time.Hour:
		return "hour"
	}
	return d.String()
}

// ceilSeconds rounds d up to whole seconds, never below 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// Close closes every plan's store. Requests after Close are answered as a
// store failure.
func (l *Limiter) Close(ctx context.Context) error {
	l.mu.Lock()
	plans := *l.plans.Swap(&map[string]*plan{})
	l.closed = true
	l.mu.Unlock()
	var errs []error
	for _, p := range plans {
		if err := p.store.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
