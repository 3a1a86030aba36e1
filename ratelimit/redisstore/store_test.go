package redisstore_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-limiter"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/ratelimit/redisstore"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: testdb.RedisAddr(tb), PoolSize: 32})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func newStore(tb testing.TB, c redis.Scripter, tokens uint64, interval time.Duration) *redisstore.Store {
	tb.Helper()
	s, err := redisstore.New(redisstore.Config{Client: c, Tokens: tokens, Interval: interval, Prefix: testdb.RedisPrefix(tb)})
	require.NoError(tb, err)
	return s
}

func TestTake(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, newClient(t), 3, time.Hour)
	before := time.Now()
	for i, want := range []struct {
		remaining uint64
		ok        bool
	}{{2, true}, {1, true}, {0, true}, {0, false}, {0, false}} {
		tokens, remaining, reset, ok, err := s.Take(ctx, "key_a")
		require.NoError(t, err)
		require.Equal(t, uint64(3), tokens, "take %d", i)
		require.Equal(t, want.remaining, remaining, "take %d", i)
		require.Equal(t, want.ok, ok, "take %d", i)
		resetAt := time.Unix(0, int64(reset))
		require.WithinDuration(t, before.Add(time.Hour), resetAt, 5*time.Second)
	}
	// Another key is untouched.
	_, remaining, _, ok, err := s.Take(ctx, "key_b")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint64(2), remaining)
}

// The window refills at the tick, as memorystore's does.
func TestRefill(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, newClient(t), 1, 50*time.Millisecond)
	_, _, _, ok, err := s.Take(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	_, _, reset, ok, err := s.Take(ctx, "k")
	require.NoError(t, err)
	if !ok {
		// Wait past the reset Redis gave, whatever the machine's speed.
		time.Sleep(time.Until(time.Unix(0, int64(reset))) + 5*time.Millisecond)
		_, _, _, ok, err = s.Take(ctx, "k")
		require.NoError(t, err)
		require.True(t, ok)
	}
}

func TestGetSetBurst(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, newClient(t), 5, time.Hour)

	tokens, remaining, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Zero(t, tokens)
	require.Zero(t, remaining)

	_, _, _, _, err = s.Take(ctx, "k")
	require.NoError(t, err)
	tokens, remaining, err = s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, uint64(5), tokens)
	require.Equal(t, uint64(4), remaining)

	require.NoError(t, s.Burst(ctx, "k", 10))
	_, remaining, err = s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, uint64(14), remaining)

	require.NoError(t, s.Burst(ctx, "fresh", 2))
	tokens, remaining, err = s.Get(ctx, "fresh")
	require.NoError(t, err)
	require.Equal(t, uint64(5), tokens)
	require.Equal(t, uint64(7), remaining)

	require.NoError(t, s.Set(ctx, "k", 2, time.Hour))
	for i, wantOK := range []bool{true, true, false} {
		tokens, _, _, ok, err := s.Take(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, uint64(2), tokens)
		require.Equal(t, wantOK, ok, "take %d", i)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, newClient(t), 5, time.Hour)
	require.NoError(t, s.Close(ctx))
	_, _, _, _, err := s.Take(ctx, "k")
	require.ErrorIs(t, err, limiter.ErrStopped)
	_, _, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, limiter.ErrStopped)
	require.ErrorIs(t, s.Set(ctx, "k", 1, time.Second), limiter.ErrStopped)
	require.ErrorIs(t, s.Burst(ctx, "k", 1), limiter.ErrStopped)
}

// Takes from many goroutines over two clients (two replicas) never give
// out more than the limit.
func TestConcurrentTakes(t *testing.T) {
	ctx := context.Background()
	prefix := testdb.RedisPrefix(t)
	var stores []*redisstore.Store
	for range 2 {
		s, err := redisstore.New(redisstore.Config{Client: newClient(t), Tokens: 60, Interval: time.Hour, Prefix: prefix})
		require.NoError(t, err)
		stores = append(stores, s)
	}
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			_, _, _, ok, err := stores[i%2].Take(ctx, "key_hot")
			require.NoError(t, err)
			if ok {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 60, granted)
}

func TestKeysExpire(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	prefix := testdb.RedisPrefix(t)
	s, err := redisstore.New(redisstore.Config{Client: c, Tokens: 5, Interval: time.Minute, Prefix: prefix})
	require.NoError(t, err)
	_, _, _, _, err = s.Take(ctx, "k")
	require.NoError(t, err)
	ttl, err := c.PTTL(ctx, prefix+"k").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Minute)
	require.LessOrEqual(t, ttl, 2*time.Minute)
}

func TestNew(t *testing.T) {
	_, err := redisstore.New(redisstore.Config{})
	require.Error(t, err)
}
