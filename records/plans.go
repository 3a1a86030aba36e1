package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The plans crmkit ships with.
const (
	PlanStarter    = "starter"
	PlanPro        = "pro"
	PlanEnterprise = "enterprise"
)

// Plan is a subscription plan: what a workspace on it may hold and how fast
// its API keys may call. It is the one description of a plan; the record cap
// of the pipeline and the rate limit of the API both read it.
type Plan struct {
	Name string `json:"name"`
	// MaxRecords caps the records a workspace may hold; 0 means no cap.
	MaxRecords int64 `json:"max_records"`
	// RequestsPerMinute is what each API key of a workspace on the plan may
	// make. 0 means the plan has no limit of its own and takes the default
	// plan's (starter's, when there is one).
	RequestsPerMinute uint64 `json:"requests_per_minute"`
	// WorkspaceRequestsPerMinute is what all API keys of a workspace on the
	// plan may make together, so that making keys does not multiply
	// RequestsPerMinute. 0 means no limit beyond each key's.
	WorkspaceRequestsPerMinute uint64 `json:"workspace_requests_per_minute"`
	// MaxAPIKeys caps the active (neither revoked nor expired) API keys of a
	// workspace; 0 means no cap. A rotation's new key replaces the old one
	// and does not count against it.
	MaxAPIKeys int `json:"max_api_keys"`
	// MaxWebhookEndpoints caps the outbound webhook endpoints of a
	// workspace, enabled or not; 0 means no cap.
	MaxWebhookEndpoints int `json:"max_webhook_endpoints"`
}

// DefaultPlans answers the subscription plans:
//
//	plan        records    per key/min  per workspace/min  API keys  endpoints
//	starter     10,000     60           120                10        10
//	pro         1,000,000  600          1,200              100       100
//	enterprise  no cap     6,000        12,000             1,000     1,000
//
// A workspace's limit is twice a key's, so two integrations can each use a
// key's full rate, and a third key adds nothing.
func DefaultPlans() []Plan {
	return []Plan{
		{Name: PlanStarter, MaxRecords: 10_000, RequestsPerMinute: 60, WorkspaceRequestsPerMinute: 120,
			MaxAPIKeys: 10, MaxWebhookEndpoints: 10},
		{Name: PlanPro, MaxRecords: 1_000_000, RequestsPerMinute: 600, WorkspaceRequestsPerMinute: 1200,
			MaxAPIKeys: 100, MaxWebhookEndpoints: 100},
		{Name: PlanEnterprise, MaxRecords: 0, RequestsPerMinute: 6000, WorkspaceRequestsPerMinute: 12_000,
			MaxAPIKeys: 1000, MaxWebhookEndpoints: 1000},
	}
}

// PlanLimitError is the error of a create refused because the workspace
// holds what its plan allows of something other than records (those answer
// ErrPlanLimit alone). It wraps ErrPlanLimit.
type PlanLimitError struct {
	// What names what is capped: "api_keys" or "webhook_endpoints".
	What  string
	Plan  string
	Limit int
}

func (e *PlanLimitError) Error() string {
	return fmt.Sprintf("%s: the %s plan allows %d %s", ErrPlanLimit, e.Plan, e.Limit, strings.ReplaceAll(e.What, "_", " "))
}

// Unwrap lets errors.Is(err, ErrPlanLimit) hold.
func (e *PlanLimitError) Unwrap() error { return ErrPlanLimit }

// What PlanLimitError.What names.
const (
	LimitAPIKeys          = "api_keys"
	LimitWebhookEndpoints = "webhook_endpoints"
)

// Within runs create with the cap the workspace's plan sets on what
// (LimitAPIKeys or LimitWebhookEndpoints; 0 for no cap), and turns an
// ErrPlanLimit that create answers into a *PlanLimitError naming what, the
// plan and the cap. create is expected to count and insert in one
// transaction, so concurrent creates cannot pass the cap. On a nil Plans,
// or for a workspace on a plan missing from the catalogue (which may not
// create records, but whose keys and endpoints an admin still manages),
// create runs with no cap.
func (p *Plans) Within(ctx context.Context, workspace, what string, create func(ctx context.Context, max int) error) error {
	if p == nil {
		return create(ctx, 0)
	}
	pl, err := p.Of(ctx, workspace)
	if errors.Is(err, ErrUnknownPlan) {
		return create(ctx, 0)
	}
	if err != nil {
		return err
	}
	var max int
	switch what {
	case LimitAPIKeys:
		max = pl.MaxAPIKeys
	case LimitWebhookEndpoints:
		max = pl.MaxWebhookEndpoints
	default:
		return fmt.Errorf("records: Plans.Within: unknown cap %q", what)
	}
	err = create(ctx, max)
	if max > 0 && errors.Is(err, ErrPlanLimit) {
		return &PlanLimitError{What: what, Plan: pl.Name, Limit: max}
	}
	return err
}

// PlanStore reads and changes the plan a workspace is on.
type PlanStore interface {
	GetWorkspace(ctx context.Context, id string) (*Workspace, error)
	// SetWorkspacePlan moves a workspace to another plan; ErrNotFound when
	// there is no such workspace.
	SetWorkspacePlan(ctx context.Context, id, plan string) error
}

// ErrUnknownPlan: a plan name that is not in the catalogue.
var ErrUnknownPlan = errors.New("unknown plan")

// Plans is the catalogue of plans and the cached answer to "which plan is
// this workspace on". One Plans serves the pipeline's record cap and the
// API's rate limit, so a plan change made through Set applies to both at
// once on this process, and within the cache lifetime on other processes.
// It is safe for concurrent use.
//
// Freshness is counted in epochs rather than by reading the clock: a timer
// ends the current epoch one TTL after it is armed, and an entry is fresh
// while the epoch it was read in lasts. That keeps time.Now off the path of
// every authenticated request, and arms no timer while nothing is cached.
type Plans struct {
	st      PlanStore
	catalog map[string]Plan
	order   []Plan
	ttl     time.Duration

	epoch atomic.Uint64
	armed atomic.Bool

	mu sync.RWMutex
	m  map[string]planEntry
}

type planEntry struct {
	plan  Plan
	epoch uint64
}

// DefaultPlanCacheTTL is how long a workspace's plan is cached when
// NewPlans is given no TTL.
const DefaultPlanCacheTTL = 2 * time.Second

// NewPlans makes the plan lookup over st. catalog nil means DefaultPlans();
// ttl 0 means DefaultPlanCacheTTL, a negative ttl reads the store every time.
func NewPlans(st PlanStore, catalog []Plan, ttl time.Duration) (*Plans, error) {
	if st == nil {
		return nil, errors.New("records: NewPlans: nil store")
	}
	if catalog == nil {
		catalog = DefaultPlans()
	}
	if ttl == 0 {
		ttl = DefaultPlanCacheTTL
	}
	p := &Plans{st: st, catalog: make(map[string]Plan, len(catalog)), ttl: ttl, m: map[string]planEntry{}}
	for _, pl := range catalog {
		if pl.Name == "" {
			return nil, errors.New("records: a plan has no name")
		}
		if pl.MaxRecords < 0 || pl.MaxAPIKeys < 0 || pl.MaxWebhookEndpoints < 0 {
			return nil, fmt.Errorf("records: plan %s: a negative cap", pl.Name)
		}
		if _, dup := p.catalog[pl.Name]; dup {
			return nil, fmt.Errorf("records: plan %s is listed twice", pl.Name)
		}
		p.catalog[pl.Name] = pl
		p.order = append(p.order, pl)
	}
	return p, nil
}

// Catalog answers every plan, in the order NewPlans was given them.
func (p *Plans) Catalog() []Plan { return slices.Clone(p.order) }

// Lookup answers the plan of that name.
func (p *Plans) Lookup(name string) (Plan, bool) {
	pl, ok := p.catalog[name]
	return pl, ok
}

// Of answers the plan workspace is on, from the cache while it is fresh.
// A workspace on a plan missing from the catalogue answers an error wrapping
// ErrUnknownPlan and ErrPlanLimit (it may not create records); one that does
// not exist answers the store's error.
func (p *Plans) Of(ctx context.Context, workspace string) (Plan, error) {
	cur := p.epoch.Load()
	if p.ttl > 0 {
		p.mu.RLock()
		e, ok := p.m[workspace]
		p.mu.RUnlock()
		if ok && e.epoch == cur {
			return e.plan, nil
		}
	}
	ws, err := p.st.GetWorkspace(ctx, workspace)
	if err != nil {
		return Plan{}, fmt.Errorf("records: workspace %s: %w", workspace, err)
	}
	pl, ok := p.catalog[ws.Plan]
	if !ok {
		return Plan{Name: ws.Plan}, fmt.Errorf("records: workspace %s is on plan %q: %w: %w", workspace, ws.Plan, ErrUnknownPlan, ErrPlanLimit)
	}
	if p.ttl > 0 {
		p.mu.Lock()
		if len(p.m) > 100_000 {
			clear(p.m)
		}
		p.m[workspace] = planEntry{plan: pl, epoch: cur}
		p.mu.Unlock()
		p.arm()
	}
	return pl, nil
}

// Set moves workspace to the named plan. The change applies to this
// process's next request and write at once; other processes see it within
// their cache lifetime.
func (p *Plans) Set(ctx context.Context, workspace, name string) error {
	if _, ok := p.catalog[name]; !ok {
		return &ValidationError{Fields: []FieldError{{Field: "plan", Code: "one_of",
			Message: fmt.Sprintf("plan %q is not one of the configured plans", name)}}}
	}
	if err := p.st.SetWorkspacePlan(ctx, workspace, name); err != nil {
		return err
	}
	p.Forget(workspace)
	return nil
}

// Forget drops the cached plan of workspace, for a plan changed by other
// means (an operator command on the same database, say).
func (p *Plans) Forget(workspace string) {
	p.mu.Lock()
	delete(p.m, workspace)
	p.mu.Unlock()
}

// arm makes sure the current epoch ends within a TTL.
func (p *Plans) arm() {
	if p.armed.CompareAndSwap(false, true) {
		time.AfterFunc(p.ttl, func() {
			p.epoch.Add(1)
			p.armed.Store(false)
		})
	}
}
