package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/riverqueue/river"
)

var webhooksScenario = scenario{
	description: "record updates at -rate per second (default 200) to one webhook endpoint on a loopback receiver; " +
		"deliveries/s and commit-to-receipt latency",
	run: func(ctx context.Context, t *target, o options) (map[string]any, error) {
		if o.rate <= 0 {
			o.rate = 200
		}
		return runWebhooks(ctx, t, o, false)
	},
}

var webhooksPushScenario = scenario{
	description: "record updates as fast as -concurrency writers go, to one webhook endpoint on a loopback receiver; " +
		"sustained deliveries/s (in-process, fan-out is paused while the writers build a backlog, then resumed, and " +
		"drain_deliveries_per_s is the rate the backlog is delivered at)",
	run: func(ctx context.Context, t *target, o options) (map[string]any, error) {
		return runWebhooks(ctx, t, o, true)
	},
}

// hookSink is the loopback receiver: it notes when each event arrives and
// how long after its commit.
type hookSink struct {
	mu        sync.Mutex
	seen      map[string]bool
	latencies []time.Duration
	receipts  map[string]time.Time // by record id and version
	arrivals  []time.Time
	dups      int
	first     time.Time
	last      time.Time
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var ev struct {
		CreatedAt time.Time `json:"created_at"`
		Data      struct {
			Record struct {
				ID      string `json:"id"`
				Version int64  `json:"version"`
			} `json:"record"`
		} `json:"data"`
	}
	b, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(b, &ev)
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := r.Header.Get("webhook-id")
	h.mu.Lock()
	if h.seen[id] {
		h.dups++
	} else {
		h.seen[id] = true
		// The event's time is taken inside the write's transaction, before
		// it commits: from it, latency includes the commit itself.
		h.latencies = append(h.latencies, now.Sub(ev.CreatedAt))
		h.receipts[recordVersion(ev.Data.Record.ID, ev.Data.Record.Version)] = now
		h.arrivals = append(h.arrivals, now)
		if h.first.IsZero() {
			h.first = now
		}
		h.last = now
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

type drain struct {
	count int
	span  time.Duration
}

// drained answers how many deliveries arrived after since, and the time from
// the first of them to the last.
func (h *hookSink) drained(since time.Time) drain {
	h.mu.Lock()
	defer h.mu.Unlock()
	var d drain
	var first time.Time
	for _, at := range h.arrivals {
		if at.Before(since) {
			continue
		}
		if d.count == 0 {
			first = at
		}
		d.count++
		d.span = at.Sub(first)
	}
	return d
}

func recordVersion(id string, version int64) string { return id + "/" + strconv.FormatInt(version, 10) }

// ackLatencies answers, for every delivery whose write was acknowledged,
// the time from the acknowledgement (the 200 of the write, which follows
// its commit) to the receipt; a delivery that beat its acknowledgement
// counts as 0.
func (h *hookSink) ackLatencies(acks map[string]time.Time) []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]time.Duration, 0, len(acks))
	for k, ack := range acks {
		if at, ok := h.receipts[k]; ok {
			out = append(out, max(at.Sub(ack), 0))
		}
	}
	slices.Sort(out)
	return out
}

func (h *hookSink) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.latencies)
}

// runWebhooks registers an endpoint for record.updated pointing at a
// loopback receiver, updates records through the API either at o.rate per
// second or (push) as fast as o.concurrency writers manage, waits for the
// deliveries to drain, and answers the figures. The server must allow
// private webhook targets (in-process it does; a -url server needs
// -allow-private-webhooks).
func runWebhooks(ctx context.Context, t *target, o options, push bool) (map[string]any, error) {
	sink := &hookSink{seen: map[string]bool{}, receipts: map[string]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()

	key, err := t.newKey(ctx, "Load webhooks", "READ", "WRITE")
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	var endpoint struct {
		ID string `json:"id"`
	}
	if _, err := t.call(ctx, "POST", "/api/v1/webhooks", t.admin, map[string]any{
		"url": "http://" + ln.Addr().String() + "/hook", "events": []string{"record.updated"}, "description": "load test",
	}, &endpoint); err != nil {
		return nil, fmt.Errorf("create endpoint (a -url server needs -allow-private-webhooks): %w", err)
	}
	defer func() {
		_, _ = t.call(context.Background(), "DELETE", "/api/v1/webhooks/"+endpoint.ID, t.admin, nil, nil)
	}()

	// Updates spread over a few records, so they do not all queue on one
	// row's lock.
	ids := make([]string, max(o.concurrency, 8))
	for i := range ids {
		var rec struct {
			ID string `json:"id"`
		}
		if _, err := t.call(ctx, "POST", "/api/v1/records/opportunity", key, map[string]any{"fields": map[string]any{
			"name": "Webhook load " + strconv.Itoa(i), "amount": 1000, "stage": "Prospecting"}}, &rec); err != nil {
			return nil, fmt.Errorf("create record: %w", err)
		}
		ids[i] = rec.ID
	}

	var (
		mu      sync.Mutex
		acks    = map[string]time.Time{}
		n       int
		written int
		failed  int
		first   error
	)
	update := func(ctx context.Context) error {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		var rec struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		}
		_, err := t.call(ctx, "PATCH", "/api/v1/records/opportunity/"+ids[i%len(ids)], key,
			map[string]any{"fields": map[string]any{"amount": i}}, &rec)
		acked := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			acks[recordVersion(rec.ID, rec.Version)] = acked
		}
		if err != nil {
			if ctx.Err() == nil {
				failed++
				if first == nil {
					first = err
				}
			}
			return err
		}
		written++
		return nil
	}

	// Pushed in-process, the HTTP writes are slower than delivery, so they
	// alone would measure the write path; a backlog built while fan-out is
	// paused measures delivery.
	jobs := (*river.Client[*sql.Tx])(nil)
	if push && t.svc != nil {
		jobs = t.svc.JobClient()
	}
	if jobs != nil {
		if err := jobs.QueuePause(ctx, river.QueueDefault, nil); err != nil {
			return nil, fmt.Errorf("pause fan-out: %w", err)
		}
	}
	start := time.Now()
	var writes map[string]any
	if push {
		writes = hammer(ctx, o, update)
	} else {
		writes, err = paced(ctx, o, update)
		if err != nil {
			return nil, err
		}
	}
	writeTime := time.Since(start)
	var resumed time.Time
	if jobs != nil {
		if err := jobs.QueueResume(ctx, river.QueueDefault, nil); err != nil {
			return nil, fmt.Errorf("resume fan-out: %w", err)
		}
		resumed = time.Now()
	}

	// Drain: wait for every acknowledged write's delivery, for at most half
	// a minute after the last one stops arriving.
	mu.Lock()
	want := written
	mu.Unlock()
	lastCount, lastChange := -1, time.Now()
	for sink.count() < want && time.Since(lastChange) < 30*time.Second && ctx.Err() == nil {
		if c := sink.count(); c != lastCount {
			lastCount, lastChange = c, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}

	sink.mu.Lock()
	lat := slices.Clone(sink.latencies)
	dups, firstAt, lastAt := sink.dups, sink.first, sink.last
	sink.mu.Unlock()
	slices.Sort(lat)
	mu.Lock()
	ackLat := sink.ackLatencies(acks)
	mu.Unlock()
	span := lastAt.Sub(firstAt)
	res := map[string]any{
		"mode":             map[bool]string{false: "fixed_rate", true: "push"}[push],
		"updates":          want,
		"update_errors":    failed,
		"updates_per_s":    round(float64(want) / writeTime.Seconds()),
		"deliveries":       len(lat),
		"duplicates":       dups,
		"lost":             max(0, want-len(lat)),
		"deliveries_per_s": round(float64(len(lat)) / max(span, writeTime).Seconds()),
		"p50_ms":           round(ms(percentile(lat, 0.50))),
		"p90_ms":           round(ms(percentile(lat, 0.90))),
		"p99_ms":           round(ms(percentile(lat, 0.99))),
		"max_ms":           round(ms(percentile(lat, 1))),
		"ack_p50_ms":       round(ms(percentile(ackLat, 0.50))),
		"ack_p99_ms":       round(ms(percentile(ackLat, 0.99))),
		"write_p50_ms":     writes["p50_ms"],
		"write_p99_ms":     writes["p99_ms"],
	}
	if !push {
		res["rate"] = o.rate
	}
	if jobs != nil {
		// Latencies of a backlog say how long it waited, not how fast it
		// goes; the drain rate is the figure.
		for _, k := range []string{"p50_ms", "p90_ms", "p99_ms", "max_ms", "ack_p50_ms", "ack_p99_ms"} {
			delete(res, k)
		}
		if n := sink.drained(resumed); n.count > 1 {
			res["drain_deliveries_per_s"] = round(float64(n.count-1) / n.span.Seconds())
		}
	}
	if first != nil {
		res["first_error"] = first.Error()
	}
	if len(lat) == 0 {
		return res, errors.New("no delivery arrived")
	}
	return res, nil
}

// paced starts op o.rate times a second for the run's duration, each in its
// own goroutine so a slow one does not hold up the schedule, with at most
// o.concurrency in flight (a start that finds them all busy waits).
func paced(ctx context.Context, o options, op func(ctx context.Context) error) (map[string]any, error) {
	interval := time.Duration(float64(time.Second) / o.rate)
	if interval <= 0 {
		return nil, errors.New("-rate is too high")
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		rec recorder
		wg  sync.WaitGroup
	)
	slots := make(chan struct{}, o.concurrency)
	start := time.Now()
	for i := 0; ; i++ {
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			t0 := time.Now()
			// The write finishes even when the run's time is up, so every
			// update started is one whose delivery is awaited.
			err := op(context.WithoutCancel(ctx))
			rec.add(time.Since(t0), err)
		})
	}
	wg.Wait()
	return rec.figures(time.Since(start)), nil
}
