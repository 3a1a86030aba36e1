// Package redisstore is a limiter.Store (github.com/sethvargo/go-limiter) on
// Redis, so that several replicas share one count per key.
//
// It keeps memorystore's semantics: a bucket holds Tokens, is refilled to
// Tokens at each Interval tick counted from its creation, and Take spends
// one. Each call is one Lua script, so concurrent takes from any number of
// processes are atomic; the time is Redis's own (TIME), so replicas' clocks
// do not matter. Buckets are hashes under Prefix and expire an interval after
// their window ends.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-limiter"
)

var _ limiter.Store = (*Store)(nil)

// Config configures a Store.
type Config struct {
	// Client is required: a *redis.Client, *redis.ClusterClient or
	// *redis.Ring. The store does not close it.
	Client redis.Scripter
	// Tokens per Interval for keys without a Set. Default 1.
	Tokens uint64
	// Interval defaults to one second.
	Interval time.Duration
	// Prefix is put before every key. The default,
	// "ratelimit:<tokens>:<interval ms>:", gives stores with different
	// limits (one per plan) separate buckets.
	Prefix string
}

// Store is a Redis-backed limiter.Store.
type Store struct {
	client   redis.Scripter
	tokens   uint64
	interval time.Duration
	prefix   string
	stopped  atomic.Bool
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redisstore: Config.Client is required")
	}
	if cfg.Tokens == 0 {
		cfg.Tokens = 1
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Interval < time.Microsecond {
		return nil, fmt.Errorf("redisstore: interval %s is below a microsecond", cfg.Interval)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "ratelimit:" + strconv.FormatUint(cfg.Tokens, 10) + ":" + strconv.FormatInt(cfg.Interval.Milliseconds(), 10) + ":"
	}
	return &Store{client: cfg.Client, tokens: cfg.Tokens, interval: cfg.Interval, prefix: cfg.Prefix}, nil
}

// Factory returns a function that makes a Store per (tokens, interval) on
// client, with keys under namespace (which may be empty) followed by the
// default prefix. It fits ratelimit.Config.NewStore.
func Factory(client redis.Scripter, namespace string) func(tokens uint64, interval time.Duration) (limiter.Store, error) {
	return func(tokens uint64, interval time.Duration) (limiter.Store, error) {
		return New(Config{
			Client:   client,
			Tokens:   tokens,
			Interval: interval,
			Prefix:   namespace + "ratelimit:" + strconv.FormatUint(tokens, 10) + ":" + strconv.FormatInt(interval.Milliseconds(), 10) + ":",
		})
	}
}

// Times in the scripts are microseconds: Lua numbers are doubles, which
// hold Unix microseconds exactly (nanoseconds would not fit in 53 bits).
// Numbers are written with %d so Redis never stores them in exponent form.
//
// A bucket is a hash: t tokens, i interval, s start, k last tick, a available.
const common = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function load(key, now, tokens, interval)
  local v = redis.call('HMGET', key, 't', 'i', 's', 'k', 'a')
  if not v[1] then
    return {t = tokens, i = interval, s = now, k = 0, a = tokens}
  end
  local b = {t = tonumber(v[1]), i = tonumber(v[2]), s = tonumber(v[3]), k = tonumber(v[4]), a = tonumber(v[5])}
  if now < b.s then
    b.s = now
    b.k = 0
  end
  local tick = math.floor((now - b.s) / b.i)
  if b.k < tick then
    b.a = b.t
    b.k = tick
  end
  return b
end
local function save(key, b, now)
  redis.call('HSET', key, 't', string.format('%d', b.t), 'i', string.format('%d', b.i),
    's', string.format('%d', b.s), 'k', string.format('%d', b.k), 'a', string.format('%d', b.a))
  local reset = b.s + (b.k + 1) * b.i
  redis.call('PEXPIRE', key, string.format('%d', math.max(1, math.ceil((reset - now + b.i) / 1000))))
  return reset
end
`

// take: KEYS[1] bucket; ARGV tokens, interval. Returns tokens, remaining,
// reset (µs), ok.
var takeScript = redis.NewScript(common + `
local n = now()
local b = load(KEYS[1], n, tonumber(ARGV[1]), tonumber(ARGV[2]))
local ok = 0
if b.a > 0 then
  b.a = b.a - 1
  ok = 1
end
local reset = save(KEYS[1], b, n)
return {b.t, b.a, reset, ok}
`)

// get: KEYS[1] bucket. Returns tokens, remaining, or 0, 0 for no bucket.
var getScript = redis.NewScript(common + `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0}
end
local b = load(KEYS[1], now(), 0, 1)
return {b.t, b.a}
`)

// set: KEYS[1] bucket; ARGV tokens, interval. A fresh full bucket.
var setScript = redis.NewScript(common + `
local n = now()
local t = tonumber(ARGV[1])
save(KEYS[1], {t = t, i = tonumber(ARGV[2]), s = n, k = 0, a = t}, n)
return 1
`)

// burst: KEYS[1] bucket; ARGV tokens, default tokens, default interval.
var burstScript = redis.NewScript(common + `
local n = now()
local b = load(KEYS[1], n, tonumber(ARGV[2]), tonumber(ARGV[3]))
b.a = b.a + tonumber(ARGV[1])
save(KEYS[1], b, n)
return 1
`)

func micros(d time.Duration) int64 { return int64(d / time.Microsecond) }

// Take spends one token of key, as limiter.Store describes. reset is Unix
// nanoseconds.
func (s *Store) Take(ctx context.Context, key string) (tokens, remaining, reset uint64, ok bool, err error) {
	if s.stopped.Load() {
		return 0, 0, 0, false, limiter.ErrStopped
	}
	v, err := takeScript.Run(ctx, s.client, []string{s.prefix + key}, s.tokens, micros(s.interval)).Int64Slice()
	if err != nil {
		return 0, 0, 0, false, fmt.Errorf("redisstore: take: %w", err)
	}
	if len(v) != 4 {
		return 0, 0, 0, false, fmt.Errorf("redisstore: take: unexpected reply of %d values", len(v))
	}
	return uint64(v[0]), uint64(v[1]), uint64(v[2]) * uint64(time.Microsecond), v[3] == 1, nil
}

// Get reports key's limit and remaining tokens without spending any; 0, 0
// for a key never seen.
func (s *Store) Get(ctx context.Context, key string) (tokens, remaining uint64, err error) {
	if s.stopped.Load() {
		return 0, 0, limiter.ErrStopped
	}
	v, err := getScript.Run(ctx, s.client, []string{s.prefix + key}).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("redisstore: get: %w", err)
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("redisstore: get: unexpected reply of %d values", len(v))
	}
	return uint64(v[0]), uint64(v[1]), nil
}

// Set gives key its own limit, starting with a full bucket.
func (s *Store) Set(ctx context.Context, key string, tokens uint64, interval time.Duration) error {
	if s.stopped.Load() {
		return limiter.ErrStopped
	}
	if interval < time.Microsecond {
		return fmt.Errorf("redisstore: interval %s is below a microsecond", interval)
	}
	if err := setScript.Run(ctx, s.client, []string{s.prefix + key}, tokens, micros(interval)).Err(); err != nil {
		return fmt.Errorf("redisstore: set: %w", err)
	}
	return nil
}

// Burst adds tokens to key's current window (creating the bucket with the
// store's default limit plus tokens when there is none).
func (s *Store) Burst(ctx context.Context, key string, tokens uint64) error {
	if s.stopped.Load() {
		return limiter.ErrStopped
	}
	if err := burstScript.Run(ctx, s.client, []string{s.prefix + key}, tokens, s.tokens, micros(s.interval)).Err(); err != nil {
		return fmt.Errorf("redisstore: burst: %w", err)
	}
	return nil
}

// Close stops the store; it does not close the Redis client, which the
// caller owns. Later calls return limiter.ErrStopped.
func (s *Store) Close(ctx context.Context) error {
	s.stopped.Store(true)
	return nil
}
