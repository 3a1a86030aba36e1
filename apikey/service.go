package apikey

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/smartlite/crmkit/records"
)

// Key is a stored API key's metadata. The plaintext is never part of it.
type Key struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"-"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []Scope    `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// activeAt returns nil when k may be used at now, else ErrRevoked or ErrExpired.
// A revoked_at in the future is a rotation's grace period: the key still works.
func (k *Key) activeAt(now time.Time) error {
	if k.RevokedAt != nil && !now.Before(*k.RevokedAt) {
		return ErrRevoked
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return ErrExpired
	}
	return nil
}

// Principal is the caller a verified key stands for. The one Verify answers
// is shared with the verification cache: read it, do not modify it.
type Principal struct {
	KeyID     string
	Workspace string
	Name      string
	Scopes    []Scope
}

// Has reports whether p holds scope s (ADMIN holds them all).
func (p *Principal) Has(s Scope) bool { return p != nil && Grants(p.Scopes, s) }

// CanGrant reports whether p may create a key carrying scopes: it must hold
// each of them itself, so a key can never mint a stronger one. ADMIN holders
// can grant anything.
func (p *Principal) CanGrant(scopes []Scope) bool {
	for _, s := range scopes {
		if !p.Has(s) {
			return false
		}
	}
	return true
}

// ErrInactive: the key is already revoked (or scheduled to be by a rotation)
// or expired, so it cannot be rotated. It wraps records.ErrConflict.
var ErrInactive = fmt.Errorf("apikey: key is revoked, being rotated, or expired: %w", records.ErrConflict)

// Store persists keys. Implementations return errors wrapping
// records.ErrNotFound for a key that does not exist in the workspace asked
// about (another workspace's key does not exist).
type Store interface {
	// CreateAPIKey stores k with the hex SHA-256 of its plaintext.
	CreateAPIKey(ctx context.Context, k *Key, hash string) error
	// CreateAPIKeyWithin stores k unless its workspace already holds max
	// active keys (not revoked, rotated or expired), answering an error
	// wrapping records.ErrPlanLimit then; max 0 means no cap. The count and
	// the insert are one transaction, so concurrent creates cannot pass
	// the cap.
	CreateAPIKeyWithin(ctx context.Context, k *Key, hash string, max int) error
	// APIKeyByHash finds a key of any workspace by its hash.
	APIKeyByHash(ctx context.Context, hash string) (*Key, error)
	// APIKey finds a key by id within a workspace.
	APIKey(ctx context.Context, workspace, id string) (*Key, error)
	// APIKeys lists a workspace's keys by ascending id, those after the id
	// after ("" for the start), at most limit of them.
	APIKeys(ctx context.Context, workspace, after string, limit int) ([]*Key, error)
	// RevokeAPIKey sets revoked_at to at, unless it is already set to an
	// earlier time, and returns the key as stored afterwards.
	RevokeAPIKey(ctx context.Context, workspace, id string, at time.Time) (*Key, error)
	// RotateAPIKey, in one transaction, sets the revoked_at of the key oldID
	// (which must have none, else ErrInactive) to revokeAt and stores next.
	RotateAPIKey(ctx context.Context, workspace, oldID string, revokeAt time.Time, next *Key, hash string) error
	// TouchAPIKey sets last_used_at to at unless it is already later than
	// at minus minGap, so that replicas racing each other write at most once.
	TouchAPIKey(ctx context.Context, id string, at time.Time, minGap time.Duration) error
}

// Config configures a Service.
type Config struct {
	// Store is required.
	Store Store
	// Clock defaults to time.Now.
	Clock func() time.Time
	// CacheTTL bounds how long another replica's revocation takes to apply
	// here. Default 5 s.
	CacheTTL time.Duration
	// CacheSize caps cached keys (found and not found). Default 10000.
	CacheSize int
	// TouchInterval is the least time between two last_used_at writes for a
	// key. Default 1 minute.
	TouchInterval time.Duration
	// Rand is the source of key material. Default crypto/rand.
	Rand io.Reader
	// Logger receives failures of background last_used_at writes. Default
	// slog.Default().
	Logger *slog.Logger
	// Plans, when set, caps each workspace's active keys at its plan's
	// MaxAPIKeys: Create beyond it answers a *records.PlanLimitError
	// (which wraps records.ErrPlanLimit). Rotate replaces a key and is not
	// capped.
	Plans *records.Plans
}

// Service creates, lists, revokes, rotates and verifies keys.
type Service struct {
	store         Store
	clock         func() time.Time
	rand          io.Reader
	log           *slog.Logger
	touchInterval time.Duration
	cache         *cache
	touches       sync.WaitGroup
	plans         *records.Plans
}

// New returns a Service. Config.Store is required.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("apikey: Config.Store is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10000
	}
	if cfg.TouchInterval <= 0 {
		cfg.TouchInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		store:         cfg.Store,
		clock:         cfg.Clock,
		rand:          cfg.Rand,
		log:           cfg.Logger,
		touchInterval: cfg.TouchInterval,
		cache:         newCache(cfg.CacheTTL, cfg.CacheSize),
		plans:         cfg.Plans,
	}, nil
}

const maxNameLen = 200

func nameError(msg string) error {
	return &records.ValidationError{Object: "api_key", Fields: []records.FieldError{{Field: "name", Code: "required", Message: msg}}}
}

// Create issues a key. The plaintext is returned here and never again.
// Invalid input is a *records.ValidationError.
func (s *Service) Create(ctx context.Context, workspace, name string, scopes []Scope, expiresAt *time.Time) (Key, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Key{}, "", nameError("a name is required")
	}
	if utf8.RuneCountInString(name) > maxNameLen {
		return Key{}, "", &records.ValidationError{Object: "api_key", Fields: []records.FieldError{{Field: "name", Code: "max", Message: fmt.Sprintf("at most %d characters", maxNameLen)}}}
	}
	scopes, err := NormalizeScopes(scopes)
	if err != nil {
		return Key{}, "", err
	}
	now := s.clock().UTC()
	if expiresAt != nil {
		if !expiresAt.After(now) {
			return Key{}, "", &records.ValidationError{Object: "api_key", Fields: []records.FieldError{{Field: "expires_at", Code: "min", Message: "must be in the future"}}}
		}
		t := expiresAt.UTC()
		expiresAt = &t
	}
	k, plain, hash, err := s.newKey(workspace, name, scopes, expiresAt, now)
	if err != nil {
		return Key{}, "", err
	}
	err = s.plans.Within(ctx, workspace, records.LimitAPIKeys, func(ctx context.Context, max int) error {
		return s.store.CreateAPIKeyWithin(ctx, k, hash, max)
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("apikey: create: %w", err)
	}
	return *k, plain, nil
}

func (s *Service) newKey(workspace, name string, scopes []Scope, expiresAt *time.Time, now time.Time) (*Key, string, string, error) {
	plain, err := Generate(s.rand)
	if err != nil {
		return nil, "", "", err
	}
	p, err := Parse(plain)
	if err != nil {
		return nil, "", "", fmt.Errorf("apikey: generated key does not parse: %w", err)
	}
	k := &Key{
		ID:        records.NewID("key"),
		Workspace: workspace,
		Name:      name,
		Prefix:    p.Display,
		Scopes:    scopes,
		CreatedAt: now,
		ExpiresAt: expiresAt,
	}
	return k, plain, p.Hash, nil
}

// Get returns one key of a workspace; another workspace's key is
// records.ErrNotFound.
func (s *Service) Get(ctx context.Context, workspace, id string) (Key, error) {
	k, err := s.store.APIKey(ctx, workspace, id)
	if err != nil {
		return Key{}, fmt.Errorf("apikey: get: %w", err)
	}
	return *k, nil
}

// List answers up to limit of a workspace's keys with an id after the
// given one ("" for the first), oldest first.
func (s *Service) List(ctx context.Context, workspace, after string, limit int) ([]Key, error) {
	ks, err := s.store.APIKeys(ctx, workspace, after, limit)
	if err != nil {
		return nil, fmt.Errorf("apikey: list: %w", err)
	}
	keys := make([]Key, len(ks))
	for i, k := range ks {
		keys[i] = *k
	}
	return keys, nil
}

// Revoke ends a key now. It takes effect at once on this replica and within
// Config.CacheTTL on others. Revoking a revoked key is not an error.
func (s *Service) Revoke(ctx context.Context, workspace, id string) (Key, error) {
	k, err := s.store.RevokeAPIKey(ctx, workspace, id, s.clock().UTC())
	if err != nil {
		return Key{}, fmt.Errorf("apikey: revoke: %w", err)
	}
	s.cache.evictID(id)
	return *k, nil
}

// Rotate issues a new key with the old one's name, scopes and expiry, and
// lets the old key live on for grace (0 ends it at once). A key already
// revoked, rotated or expired cannot be rotated: ErrInactive.
func (s *Service) Rotate(ctx context.Context, workspace, id string, grace time.Duration) (Key, string, error) {
	if grace < 0 {
		return Key{}, "", &records.ValidationError{Object: "api_key", Fields: []records.FieldError{{Field: "grace", Code: "min", Message: "must not be negative"}}}
	}
	old, err := s.store.APIKey(ctx, workspace, id)
	if err != nil {
		return Key{}, "", fmt.Errorf("apikey: rotate: %w", err)
	}
	now := s.clock().UTC()
	if old.RevokedAt != nil || old.activeAt(now) != nil {
		return Key{}, "", ErrInactive
	}
	next, plain, hash, err := s.newKey(workspace, old.Name, old.Scopes, old.ExpiresAt, now)
	if err != nil {
		return Key{}, "", err
	}
	if err := s.store.RotateAPIKey(ctx, workspace, id, now.Add(grace), next, hash); err != nil {
		return Key{}, "", fmt.Errorf("apikey: rotate: %w", err)
	}
	s.cache.evictID(id)
	return *next, plain, nil
}

// Verify returns the principal a plaintext key stands for. Any reason to
// refuse the key is an error wrapping ErrInvalidKey; other errors come from
// the store. Neither ever contains the key.
func (s *Service) Verify(ctx context.Context, plaintext string) (*Principal, error) {
	if !sized(plaintext) {
		return nil, ErrMalformed
	}
	d := digestOf(plaintext)
	now := s.clock()
	// Only well-formed keys are ever looked up, so a digest found in the
	// cache is that of a well-formed key: the character and checksum checks
	// are needed only on a miss, before the database is asked.
	e := s.cache.get(d, now)
	if e == nil {
		if err := check(plaintext); err != nil {
			return nil, err
		}
		var err error
		if e, err = s.lookup(ctx, d, now); err != nil {
			return nil, err
		}
	}
	if e.key == nil {
		return nil, ErrUnknownKey
	}
	if err := e.key.activeAt(now); err != nil {
		return nil, err
	}
	s.maybeTouch(e, now)
	// The cached principal itself, not a copy: it is never modified after
	// it is cached, and callers only read it (see Principal).
	return &e.principal, nil
}

func (s *Service) lookup(ctx context.Context, d digest, now time.Time) (*entry, error) {
	return s.cache.load(d, now, func() (*Key, error) {
		k, err := s.store.APIKeyByHash(ctx, d.hex())
		if errors.Is(err, records.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("apikey: look up key: %w", err)
		}
		return k, nil
	})
}

// maybeTouch records use of a key at most once per touchInterval, in the
// background so that a request never waits on the write.
func (s *Service) maybeTouch(e *entry, now time.Time) {
	n := now.UnixNano()
	last := e.lastUsed.Load()
	if n-last < int64(s.touchInterval) || !e.lastUsed.CompareAndSwap(last, n) {
		return
	}
	id, at := e.key.ID, now.UTC()
	s.touches.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.store.TouchAPIKey(ctx, id, at, s.touchInterval); err != nil {
			s.log.Warn("apikey: recording last use failed", "key_id", id, "error", err)
		}
	})
}

// Flush waits for background last_used_at writes started so far. Call it
// before closing the store at shutdown.
func (s *Service) Flush() { s.touches.Wait() }

// entry is one cached lookup. key is nil for a hash that matched nothing.
type entry struct {
	key       *Key
	principal Principal
	fetched   time.Time
	// lastUsed is the unix nanoseconds of the last recorded use, shared by
	// concurrent requests so only one of them writes.
	lastUsed atomic.Int64
}

// cache maps key hashes (never plaintexts) to lookups for a short TTL, with
// one store query per hash in flight at a time.
type cache struct {
	ttl  time.Duration
	size int

	mu       sync.RWMutex
	byHash   map[digest]*entry
	byID     map[string]digest
	inflight map[digest]*call
	// gen grows on every eviction, so a lookup that started before a
	// revocation cannot put the stale key back afterwards.
	gen uint64
}

type call struct {
	done chan struct{}
	e    *entry
	err  error
}

func newCache(ttl time.Duration, size int) *cache {
	return &cache{ttl: ttl, size: size, byHash: map[digest]*entry{}, byID: map[string]digest{}, inflight: map[digest]*call{}}
}

func (c *cache) fresh(e *entry, now time.Time) bool {
	return now.Sub(e.fetched) < c.ttl && !now.Before(e.fetched)
}

func (c *cache) get(d digest, now time.Time) *entry {
	c.mu.RLock()
	e := c.byHash[d]
	c.mu.RUnlock()
	if e != nil && c.fresh(e, now) {
		return e
	}
	return nil
}

func (c *cache) load(hash digest, now time.Time, fetch func() (*Key, error)) (*entry, error) {
	c.mu.Lock()
	if e := c.byHash[hash]; e != nil && c.fresh(e, now) {
		c.mu.Unlock()
		return e, nil
	}
	if cl := c.inflight[hash]; cl != nil {
		c.mu.Unlock()
		<-cl.done
		return cl.e, cl.err
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[hash] = cl
	gen := c.gen
	c.mu.Unlock()

	k, err := fetch()
	if err == nil {
		cl.e = &entry{key: k, fetched: now}
		if k != nil {
			cl.e.principal = Principal{KeyID: k.ID, Workspace: k.Workspace, Name: k.Name, Scopes: k.Scopes}
			if k.LastUsedAt != nil {
				cl.e.lastUsed.Store(k.LastUsedAt.UnixNano())
			}
		}
	}
	cl.err = err

	c.mu.Lock()
	delete(c.inflight, hash)
	if err == nil && gen == c.gen {
		c.put(hash, cl.e, now)
	}
	c.mu.Unlock()
	close(cl.done)
	return cl.e, cl.err
}

// put stores e; c.mu must be held.
func (c *cache) put(hash digest, e *entry, now time.Time) {
	if len(c.byHash) >= c.size {
		for h, old := range c.byHash {
			if !c.fresh(old, now) {
				c.remove(h, old)
			}
		}
		// Still full of fresh entries: drop arbitrary ones (map order is
		// random) rather than grow without bound.
		for h, old := range c.byHash {
			if len(c.byHash) < c.size {
				break
			}
			c.remove(h, old)
		}
	}
	if old := c.byHash[hash]; old != nil {
		c.remove(hash, old)
	}
	c.byHash[hash] = e
	if e.key != nil {
		c.byID[e.key.ID] = hash
	}
}

func (c *cache) remove(hash digest, e *entry) {
	delete(c.byHash, hash)
	if e.key != nil && c.byID[e.key.ID] == hash {
		delete(c.byID, e.key.ID)
	}
}

func (c *cache) evictID(id string) {
	c.mu.Lock()
	c.gen++
	if h, ok := c.byID[id]; ok {
		delete(c.byID, id)
		delete(c.byHash, h)
	}
	c.mu.Unlock()
}
