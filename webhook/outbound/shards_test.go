package outbound

import (
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

// TestDeliveryShards: deliveries are spread over queues of their own by
// workspace, each queue with its own workers, so one workspace's backlog
// waits in one queue; a workspace always lands on the same queue.
func TestDeliveryShards(t *testing.T) {
	s := newTestService(t, Config{})
	cfg := &river.Config{}
	s.RiverConfig(cfg)
	workers := 0
	for i := range DefaultDeliveryShards {
		q, ok := cfg.Queues[s.shard(i)]
		require.True(t, ok, "queue %s", s.shard(i))
		workers += q.MaxWorkers
	}
	require.GreaterOrEqual(t, workers, RiverMaxWorkers)
	require.Contains(t, cfg.Queues, DefaultQueue, "jobs queued before there were shards still run")

	counts := map[string]int{}
	for range 4000 {
		ws := records.NewID("ws")
		q := s.queueOf(ws)
		require.Equal(t, q, s.queueOf(ws))
		require.Equal(t, q, s.deliverOpts(ws).Queue)
		counts[q]++
	}
	require.Len(t, counts, DefaultDeliveryShards)
	for q, n := range counts {
		require.Less(t, n, 2*4000/DefaultDeliveryShards, "queue %s has %d of 4000 workspaces", q, n)
	}

	one := newTestService(t, Config{DeliveryShards: 1})
	require.Equal(t, DefaultQueue, one.queueOf(records.NewID("ws")))
}
