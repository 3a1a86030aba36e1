package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/ratelimit"
	"github.com/smartlite/crmkit/ratelimit/redisstore"
	"github.com/smartlite/crmkit/records"
)

// Two replicas (two Limiters, two servers) sharing one Redis let one key
// through 60 times in total, not 60 each.
func TestRedisSharedAcrossReplicas(t *testing.T) {
	addr := testdb.RedisAddr(t)
	ns := testdb.RedisPrefix(t)
	var urls []string
	for range 2 {
		client := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 32})
		t.Cleanup(func() { _ = client.Close() })
		l := newLimiter(t, ratelimit.Config{NewStore: redisstore.Factory(client, ns)})
		srv := httptest.NewServer(l.Middleware(okHandler))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}

	results := hammer(t, 200, urls, "key_shared", records.PlanStarter)
	require.Equal(t, 60, tally(t, results, "starter", 60))

	// A plan change reaches both replicas' next requests.
	r := do(t, http.DefaultClient, urls[1], "key_shared", records.PlanPro)
	require.Equal(t, 200, r.status)
	checkHeaders(t, r.header, "pro", 600)
	require.Equal(t, "599", r.header.Get("X-RateLimit-Remaining"))
	r = do(t, http.DefaultClient, urls[0], "key_shared", records.PlanPro)
	require.Equal(t, "598", r.header.Get("X-RateLimit-Remaining"))
}
