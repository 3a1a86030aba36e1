// Package metrics holds crmkit's Prometheus collectors
// (github.com/prometheus/client_golang). A host makes one Metrics, hands it
// to integration.Config.Metrics, and registers it on its own registry:
//
//	m := metrics.New()
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m)
//	svc, _ := integration.New(integration.Config{Store: st, Metrics: m})
//	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The series, all prefixed crmkit_:
//
//	http_requests_total{route,method,status}           every request, by route pattern (never the raw path)
//	http_request_duration_seconds{route,method}        histogram
//	rate_limited_requests_total{plan}                  requests answered 429
//	webhook_deliveries_total{outcome}                  attempts: succeeded, retrying, failed
//	webhook_delivery_latency_seconds                   histogram: event commit to a successful delivery
//	jobs_total{kind,outcome}                           background jobs River finished: completed, failed, cancelled, snoozed
//	job_queue_depth{kind,state}                        jobs waiting (available, scheduled, retryable, running), read at scrape time
//	inbound_events_total{status}                       inbound webhook events: received, processed, failed, duplicate
//	connector_runs_total{status}, connector_rows_total{action}
//	bulk_rows_total{status}                            rows of bulk jobs and imports: succeeded, failed
//
// A nil *Metrics records nothing, so code paths call it unconditionally.
package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueDepth answers how many jobs wait, by kind and state, for the
// job_queue_depth gauge; it is called at every scrape.
type QueueDepth func(ctx context.Context) ([]QueueCount, error)

// QueueCount is one kind and state's number of jobs.
type QueueCount struct {
	Kind, State string
	Count       int64
}

// Metrics is the set of crmkit's collectors. It implements
// prometheus.Collector, so one Register call adds them all.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	rateLimited     *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliveryLatency prometheus.Histogram
	jobs            *prometheus.CounterVec
	inbound         *prometheus.CounterVec
	connectorRuns   *prometheus.CounterVec
	connectorRows   *prometheus.CounterVec
	bulkRows        *prometheus.CounterVec
	queueDesc       *prometheus.Desc

	depth QueueDepth
	log   *slog.Logger
}

// New makes the collectors.
func New() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_http_requests_total",
			Help: "HTTP requests by route pattern, method and status."}, []string{"route", "method", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crmkit_http_request_duration_seconds",
			Help: "HTTP request duration by route pattern and method.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)},
			[]string{"route", "method"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_rate_limited_requests_total",
			Help: "Requests answered 429 by the rate limit, by plan."}, []string{"plan"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_webhook_deliveries_total",
			Help: "Outbound webhook delivery attempts by outcome: succeeded, retrying, failed (no more attempts)."}, []string{"outcome"}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "crmkit_webhook_delivery_latency_seconds",
			Help:    "Time from an event's commit to its successful delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_jobs_total",
			Help: "Background jobs River finished working, by kind and outcome."}, []string{"kind", "outcome"}),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_inbound_events_total",
			Help: "Inbound webhook events by status: received, processed, failed, duplicate."}, []string{"status"}),
		connectorRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_connector_runs_total",
			Help: "Pull connector runs finished, by status."}, []string{"status"}),
		connectorRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_connector_rows_total",
			Help: "Records pulled by connectors, by action: created, updated, unchanged, deleted, failed."}, []string{"action"}),
		bulkRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmkit_bulk_rows_total",
			Help: "Rows of bulk jobs and imports processed, by status."}, []string{"status"}),
		queueDesc: prometheus.NewDesc("crmkit_job_queue_depth", "Jobs waiting or running, by kind and state.", []string{"kind", "state"}, nil),
		log:       slog.Default(),
	}
}

// SetQueueDepth sets what the job_queue_depth gauge reads at each scrape.
func (m *Metrics) SetQueueDepth(f QueueDepth) {
	if m != nil {
		m.depth = f
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
	ch <- m.queueDesc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	if m.depth == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := m.depth(ctx)
	if err != nil {
		m.log.Warn("metrics: reading the job queue depth failed", "error", err)
		return
	}
	for _, c := range counts {
		ch <- prometheus.MustNewConstMetric(m.queueDesc, prometheus.GaugeValue, float64(c.Count), c.Kind, c.State)
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.requestDuration, m.rateLimited, m.deliveries, m.deliveryLatency,
		m.jobs, m.inbound, m.connectorRuns, m.connectorRows, m.bulkRows}
}

// Request counts one HTTP request of route (the mux pattern, "" for none).
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// RateLimited counts a request refused by the rate limit of plan.
func (m *Metrics) RateLimited(plan string) {
	if m != nil {
		m.rateLimited.WithLabelValues(plan).Inc()
	}
}

// Delivery counts a delivery attempt's outcome; a success also observes the
// time since its event committed.
func (m *Metrics) Delivery(outcome string, sinceCommit time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(outcome).Inc()
	if outcome == "succeeded" && sinceCommit > 0 {
		m.deliveryLatency.Observe(sinceCommit.Seconds())
	}
}

// Job counts a background job River finished.
func (m *Metrics) Job(kind, outcome string) {
	if m != nil {
		m.jobs.WithLabelValues(kind, outcome).Inc()
	}
}

// InboundEvent counts an inbound webhook event reaching status.
func (m *Metrics) InboundEvent(status string) {
	if m != nil {
		m.inbound.WithLabelValues(status).Inc()
	}
}

// ConnectorRun counts a finished connector run and its rows by action.
func (m *Metrics) ConnectorRun(status string, rows map[string]int64) {
	if m == nil {
		return
	}
	m.connectorRuns.WithLabelValues(status).Inc()
	for action, n := range rows {
		m.connectorRows.WithLabelValues(action).Add(float64(n))
	}
}

// BulkRows counts rows of a bulk job or import processed with status.
func (m *Metrics) BulkRows(status string, n int64) {
	if m != nil && n > 0 {
		m.bulkRows.WithLabelValues(status).Add(float64(n))
	}
}
