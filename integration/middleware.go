package integration

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// loggedWriter remembers what the access log reports about a response.
type loggedWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	keyID  string
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request: method, route pattern (never the raw
// path, which can hold ids of other systems, and never the query, which can
// hold anything), status, duration and the key id when a key was verified.
// Neither the key nor any header is logged.
func (s *Service) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggedWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		if lw.status == 0 {
			lw.status = http.StatusOK
		}
		level := slog.LevelInfo
		if lw.status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.Int("status", lw.status),
			slog.Int64("bytes", lw.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("key_id", lw.keyID),
		)
	})
}

// noteKey tells the access log which key a request carried; it runs right
// after Authenticate, so even a 403 or 429 is logged with the key id.
func noteKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lw, ok := w.(*loggedWriter); ok {
			lw.keyID = keyIDOf(r)
		}
		next.ServeHTTP(w, r)
	})
}

// planCache keeps workspaces' plans for about a TTL, so the rate limiter
// does not read the database on every request, and a plan change still
// applies within the TTL on every replica without a restart.
//
// Freshness is counted in epochs rather than by reading the clock: a timer
// ends the current epoch one TTL after it is armed, and an entry is fresh
// while the epoch it was read in lasts. That keeps time.Now (about 100 ns
// on a virtual machine) off the path of every authenticated request, and
// arms no timer while nothing is cached.
type planCache struct {
	get func(ctx context.Context, id string) (string, error)
	ttl time.Duration

	epoch atomic.Uint64
	armed atomic.Bool

	mu sync.RWMutex
	m  map[string]planEntry
}

type planEntry struct {
	plan  string
	epoch uint64
}

func newPlanCache(st Store, ttl time.Duration) *planCache {
	return &planCache{
		get: func(ctx context.Context, id string) (string, error) {
			ws, err := st.GetWorkspace(ctx, id)
			if err != nil {
				return "", err
			}
			return ws.Plan, nil
		},
		ttl: ttl, m: map[string]planEntry{},
	}
}

// plan answers the workspace's plan, from the cache while it is fresh.
func (c *planCache) plan(ctx context.Context, workspace string) (string, error) {
	cur := c.epoch.Load()
	c.mu.RLock()
	e, ok := c.m[workspace]
	c.mu.RUnlock()
	if ok && e.epoch == cur {
		return e.plan, nil
	}
	p, err := c.get(ctx, workspace)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) > 100_000 {
		clear(c.m)
	}
	c.m[workspace] = planEntry{plan: p, epoch: cur}
	c.mu.Unlock()
	c.arm()
	return p, nil
}

// arm makes sure the current epoch ends within a TTL.
func (c *planCache) arm() {
	if c.armed.CompareAndSwap(false, true) {
		time.AfterFunc(c.ttl, func() {
			c.epoch.Add(1)
			c.armed.Store(false)
		})
	}
}

func (c *planCache) invalidate(workspace string) {
	c.mu.Lock()
	delete(c.m, workspace)
	c.mu.Unlock()
}
