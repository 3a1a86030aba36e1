package integration

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sethvargo/go-limiter"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/ratelimit"
	"github.com/smartlite/crmkit/records"
)

// RateLimitStoreFactory makes the limiter.Store that counts one plan's
// requests: tokens per interval, keyed by API key id. ratelimit.MemoryStore
// (the default) counts per process; redisstore.Factory shares counts between
// replicas.
type RateLimitStoreFactory = func(tokens uint64, interval time.Duration) (limiter.Store, error)

// newLimiter builds the per-plan rate limiter. The plan of a request is its
// key's workspace's plan, read through the Plans the pipeline's record cap
// reads too, so a plan change applies to both at once.
func (s *Service) newLimiter() (*ratelimit.Limiter, error) {
	limits := ratelimit.LimitsOf(s.plans.Catalog())
	// A workspace on a plan without a limit of its own takes starter's, or
	// the first limited plan's when there is no starter.
	def := records.PlanStarter
	if _, ok := limits[def]; !ok {
		for _, p := range s.plans.Catalog() {
			if p.RequestsPerMinute > 0 {
				def = p.Name
				break
			}
		}
	}
	return ratelimit.New(ratelimit.Config{
		OnLimited:   s.metrics.RateLimited,
		Limits:      limits,
		DefaultPlan: def,
		NewStore:    s.cfg.RateLimitStore,
		Clock:       s.clock,
		Logger:      s.log,
		Key: func(r *http.Request) (string, string, bool) {
			p, ok := apikey.PrincipalFrom(r.Context())
			if !ok {
				return "", "", false
			}
			plan, err := s.plans.Of(r.Context(), p.Workspace)
			if err != nil && !errors.Is(err, records.ErrUnknownPlan) {
				// The key was just verified, so its workspace exists; a failed
				// read is an outage, and the default (smallest) plan's limit
				// is the safe one to apply meanwhile.
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "rate limit: reading the workspace's plan failed",
					slog.String("workspace", p.Workspace), slog.String("error", err.Error()))
			}
			// A plan without a limit of its own (or an unreadable one) falls
			// to the limiter's default plan.
			return p.KeyID, plan.Name, true
		},
	})
}

// newWorkspaceLimiter builds the limit on all the keys of a workspace
// together, at its plan's WorkspaceRequestsPerMinute, so that a workspace
// cannot multiply its keys' rate by making keys. It answers nil when no
// plan has such a limit. A plan without one is not limited per workspace.
func (s *Service) newWorkspaceLimiter() (*ratelimit.Limiter, error) {
	limits := map[string]uint64{}
	for _, p := range s.plans.Catalog() {
		if p.WorkspaceRequestsPerMinute > 0 {
			limits[p.Name] = p.WorkspaceRequestsPerMinute
		}
	}
	if len(limits) == 0 {
		return nil, nil
	}
	var def string
	for _, p := range s.plans.Catalog() {
		if _, ok := limits[p.Name]; ok {
			def = p.Name
			break
		}
	}
	return ratelimit.New(ratelimit.Config{
		Scope:       ratelimit.ScopeWorkspace,
		OnLimited:   s.metrics.RateLimited,
		Limits:      limits,
		DefaultPlan: def,
		NewStore:    s.cfg.RateLimitStore,
		Clock:       s.clock,
		Logger:      s.log,
		Key: func(r *http.Request) (string, string, bool) {
			p, ok := apikey.PrincipalFrom(r.Context())
			if !ok {
				return "", "", false
			}
			// The key limiter, just before, read the plan; this is its cache.
			plan, err := s.plans.Of(r.Context(), p.Workspace)
			if err != nil && !errors.Is(err, records.ErrUnknownPlan) {
				return p.Workspace, def, true
			}
			if _, ok := limits[plan.Name]; !ok {
				return "", "", false
			}
			return p.Workspace, plan.Name, true
		},
	})
}
