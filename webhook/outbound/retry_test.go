package outbound

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nopStore satisfies Store for tests that never reach the database.
type nopStore struct{ Store }

func newTestService(t *testing.T, cfg Config) *Service {
	t.Helper()
	cfg.Store = nopStore{}
	s, err := New(cfg)
	require.NoError(t, err)
	return s
}

func TestDefaultSchedule(t *testing.T) {
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	require.Equal(t, want, DefaultSchedule)

	s := newTestService(t, Config{Jitter: -1})
	require.Equal(t, want, s.schedule, "no Config.Schedule means the default one")
	require.Equal(t, len(want)+1, s.deliverOpts("ws").MaxAttempts, "a first attempt and one retry after each wait")
	for i, w := range want {
		require.Equal(t, w, s.retryDelay(i+1, 0), "wait after attempt %d", i+1)
	}
	require.Equal(t, 10*time.Hour, s.retryDelay(len(want)+3, 0), "past the schedule, its last wait")
	require.Equal(t, 42*time.Second, s.retryDelay(1, 42*time.Second), "a Retry-After replaces the schedule's wait")

	custom := []time.Duration{time.Second, time.Minute}
	s = newTestService(t, Config{Jitter: -1, Schedule: custom})
	require.Equal(t, custom, s.schedule)
	require.Equal(t, 3, s.deliverOpts("ws").MaxAttempts)
	_, err := New(Config{Store: nopStore{}, Schedule: []time.Duration{time.Second, 0}})
	require.Error(t, err, "every wait must be positive")
}

// TestJitter checks the documented bounds: each wait is lengthened by up
// to Config.Jitter of itself, never shortened, so a Retry-After is never
// undercut.
func TestJitter(t *testing.T) {
	const samples = 500
	tests := []struct {
		name   string
		jitter float64 // Config.Jitter
		want   float64 // the jitter in effect
	}{
		{"default", 0, DefaultJitter},
		{"configured", 0.5, 0.5},
		{"none", -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestService(t, Config{Jitter: tc.jitter})
			require.Equal(t, tc.want, s.jitter)
			s.random = rand.New(rand.NewPCG(1, 2)).Float64
			check := func(attempt int, retryAfter, base time.Duration) {
				t.Helper()
				limit := base + time.Duration(tc.want*float64(base))
				seen := map[time.Duration]bool{}
				lo, hi := limit, base
				for range samples {
					d := s.retryDelay(attempt, retryAfter)
					require.GreaterOrEqual(t, d, base)
					require.LessOrEqual(t, d, limit)
					seen[d] = true
					lo, hi = min(lo, d), max(hi, d)
				}
				if tc.want == 0 {
					require.Len(t, seen, 1, "no jitter: always the wait itself")
					return
				}
				require.Greater(t, len(seen), samples*9/10, "the waits vary")
				span := limit - base
				require.Less(t, lo, base+span/10, "some waits are near the wait itself")
				require.Greater(t, hi, limit-span/10, "some waits are near the upper bound")
			}
			for i, base := range DefaultSchedule {
				check(i+1, 0, base)
			}
			check(1, 90*time.Second, 90*time.Second)

			// The source's extremes give the bounds.
			s.random = func() float64 { return 0 }
			require.Equal(t, 5*time.Minute, s.retryDelay(2, 0))
			s.random = func() float64 { return math.Nextafter(1, 0) }
			require.InDelta(t, float64(5*time.Minute)*(1+tc.want), float64(s.retryDelay(2, 0)), float64(time.Microsecond))
		})
	}
}
