package outbound

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/smartlite/crmkit/records"
)

// DeliverArgs is the job of one run of attempts of one delivery.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
	// Trigger labels the run's first attempt; its retries are scheduled.
	Trigger string `json:"trigger"`
	// Prior counts the attempts made before this job: a fan-out that made
	// the first attempt itself hands the retries to a job that goes on with
	// the schedule from there.
	Prior int `json:"prior,omitempty"`
	// NotBefore delays the job's first attempt. A job inserted with a future
	// time would wait for River's scheduler (every 5 s); this one is
	// available at once and snoozes until then, so a 100 ms wait is 100 ms.
	NotBefore *time.Time `json:"not_before,omitempty"`
}

// Kind is the job kind of DeliverArgs.
func (DeliverArgs) Kind() string { return "crmkit_webhook_deliver" }

// PruneArgs is the periodic job that applies the delivery log's retention.
type PruneArgs struct{}

// Kind is the job kind of PruneArgs.
func (PruneArgs) Kind() string { return "crmkit_webhook_prune" }

// River settings for prompt delivery. A committed write wakes fan-out at
// once (the store's job clients hear of every job its transactions make
// available, and on Postgres of other processes' too; see the package
// documentation), so the poll of the default queue, where fan-out runs, is
// only the fallback for a lost notification. The cooldown is the least time
// between two fetches of one queue: a write that commits within it of the
// last fetch waits for the rest of it.
const (
	RiverFetchCooldown     = 2 * time.Millisecond
	RiverFetchPollInterval = time.Second
	// RiverDeliveryPollInterval is the poll interval of the delivery queue.
	// New delivery jobs wake it like fan-out's, but a retry due in a few
	// seconds is a job made available for a later time, which only a poll
	// finds; this bounds how late it starts.
	RiverDeliveryPollInterval = 100 * time.Millisecond
	// RiverMaxWorkers is the concurrency of deliveries in one process
	// (attempts mostly wait on the network), split evenly over the
	// delivery queues (see DefaultDeliveryShards).
	RiverMaxWorkers = 100
	// DefaultDeliveryShards is how many River queues deliveries are spread
	// over unless Config.DeliveryShards says otherwise, by a hash of their
	// workspace: Config.Queue ("webhooks") and Queue_1 to Queue_7. Each has
	// its own workers, so the backlog of one workspace (2,000 endpoints,
	// say) fills its own queue, and the deliveries of workspaces on the
	// other queues run beside it rather than behind it. Two workspaces share
	// a queue one time in eight. All of a workspace's deliveries, retries
	// included, go through its one queue, in the order River hands jobs
	// out, as they did through one queue.
	DefaultDeliveryShards = 8
	// inlineMaxPerFanout is how many first attempts one fan-out makes
	// itself; the deliveries of an event to more endpoints than that are
	// stored with their jobs in one write and go through the workspace's
	// delivery queue, so one event to 2,000 endpoints is not 2,000
	// attempts, and as many writes to the log, at once.
	inlineMaxPerFanout = 16
	// RiverFanoutWorkers is the least concurrency RiverConfig gives the
	// default queue, where fan-out jobs run. A fan-out spends most of its
	// time waiting (on the database, and on the first attempt it makes), so
	// throughput follows concurrency: on a 2-core machine, 50 workers drained
	// a backlog at about 470 deliveries/s, 200 at 850-930/s. A worker is a
	// goroutine; database work still queues on the store's connection pool.
	RiverFanoutWorkers = 200
	// OrphanSweepInterval is how often the orphan sweep looks for fan-out and
	// delivery jobs left running by a process that died.
	OrphanSweepInterval = 5 * time.Second
	// inlineMaxLatency is the slowest recent attempt an endpoint may have had
	// for fan-out to make its first attempt itself; slower endpoints get a
	// job straight away, so they cannot tie up the fan-out workers.
	inlineMaxLatency = time.Second
)

// RiverConfig fills in cfg what prompt delivery needs, keeping any value
// already set: the cooldown and fallback poll intervals, the delivery queue, and at
// least RiverFanoutWorkers on the default queue, where the store enqueues
// fan-out jobs. Register the workers
// and the periodic jobs separately.
//
// It leaves JobTimeout and RescueStuckJobsAfter alone: outbound's jobs set
// their own timeouts, and do not wait for River's rescuer when a process
// dies (see the orphan sweep in the package documentation), so the host is
// free to keep the rescue time long enough for its own long-running jobs.
func (s *Service) RiverConfig(cfg *river.Config) {
	if cfg.FetchCooldown == 0 {
		cfg.FetchCooldown = min(RiverFetchCooldown, s.pollEvery)
	}
	if cfg.FetchPollInterval == 0 {
		// River refuses a poll shorter than the cooldown.
		cfg.FetchPollInterval = max(s.pollEvery, cfg.FetchCooldown)
	}
	if cfg.Queues == nil {
		cfg.Queues = map[string]river.QueueConfig{}
	}
	// Fan-out shares the default queue with whatever else the host runs
	// there; it gets at least RiverFanoutWorkers so events do not queue
	// behind a host's small default.
	if q := cfg.Queues[river.QueueDefault]; q.MaxWorkers < RiverFanoutWorkers {
		q.MaxWorkers = RiverFanoutWorkers
		cfg.Queues[river.QueueDefault] = q
	}
	// Each shard polls as many times less often as there are shards, so
	// together they poll as often as one delivery queue did. A retry then
	// starts up to 800 ms late with eight (the first waits 5 s).
	poll := max(min(RiverDeliveryPollInterval, cfg.FetchPollInterval)*time.Duration(s.shards), cfg.FetchCooldown)
	for i := range s.shards {
		if _, ok := cfg.Queues[s.shard(i)]; !ok {
			cfg.Queues[s.shard(i)] = river.QueueConfig{MaxWorkers: (RiverMaxWorkers + s.shards - 1) / s.shards,
				FetchCooldown: cfg.FetchCooldown, FetchPollInterval: poll}
		}
	}
}

// shard names the i-th delivery queue: the configured queue itself for
// the first, so that jobs queued before there were shards still run.
func (s *Service) shard(i int) string {
	if i == 0 {
		return s.queue
	}
	return s.queue + "_" + strconv.Itoa(i)
}

// queueOf answers the delivery queue of a workspace.
func (s *Service) queueOf(workspace string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(workspace))
	return s.shard(int(h.Sum32() % uint32(s.shards)))
}

// Register adds the fan-out, delivery and prune workers to workers.
func (s *Service) Register(workers *river.Workers) error {
	if err := river.AddWorkerSafely[records.FanoutArgs](workers, &fanoutWorker{s: s}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely[DeliverArgs](workers, &deliverWorker{s: s}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely[OrphanArgs](workers, &orphanWorker{s: s}); err != nil {
		return err
	}
	return river.AddWorkerSafely[PruneArgs](workers, &pruneWorker{s: s})
}

// PeriodicJobs answers the jobs the host's River client runs on a schedule:
// the delivery log's prune and the orphan sweep. River enqueues periodic
// jobs on its elected leader only, so several replicas run each once.
func (s *Service) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(s.pruneEvery),
			func() (river.JobArgs, *river.InsertOpts) { return PruneArgs{}, &river.InsertOpts{Queue: s.queue} },
			&river.PeriodicJobOpts{ID: "crmkit_webhook_prune", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(OrphanSweepInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return OrphanArgs{}, &river.InsertOpts{Queue: s.queue, MaxAttempts: 1}
			},
			&river.PeriodicJobOpts{ID: "crmkit_webhook_orphans", RunOnStart: true}),
	}
}

func (s *Service) deliverOpts(workspace string) *river.InsertOpts {
	return &river.InsertOpts{Queue: s.queueOf(workspace), MaxAttempts: len(s.schedule) + 1}
}

// enqueue answers an EnqueueFunc that inserts one delivery job per delivery
// with client, in the store's transaction.
func (s *Service) enqueue(client *river.Client[*sql.Tx], trigger string) EnqueueFunc {
	return func(ctx context.Context, tx *sql.Tx, ds []*Delivery) error {
		params := make([]river.InsertManyParams, len(ds))
		for i, d := range ds {
			params[i] = river.InsertManyParams{Args: DeliverArgs{DeliveryID: d.ID, Trigger: trigger}, InsertOpts: s.deliverOpts(d.Workspace)}
		}
		// The fast variant skips returning the rows, which nothing here reads.
		_, err := client.InsertManyFastTx(ctx, tx, params)
		return err
	}
}

type fanoutWorker struct {
	river.WorkerDefaults[records.FanoutArgs]
	s *Service
}

func (w *fanoutWorker) Timeout(*river.Job[records.FanoutArgs]) time.Duration {
	return w.s.fanoutTimeout()
}

func (w *fanoutWorker) Work(ctx context.Context, job *river.Job[records.FanoutArgs]) error {
	return w.s.fanout(ctx, job.Args.Workspace, job.Args.EventID)
}

// fanoutTimeout bounds a fan-out, which may make first attempts itself.
func (s *Service) fanoutTimeout() time.Duration { return s.timeout + 10*time.Second }

// fanout makes one delivery for every enabled endpoint of the event's
// workspace that wants the event. Deliveries are unique per (event,
// endpoint), so a fan-out that runs again makes none twice.
//
// To spare each delivery a trip through the queue, fan-out makes the first
// attempt to healthy, quick endpoints itself, and stores the delivery with
// that attempt (and, when it failed, the job of its retry) in one write. Until
// then the fan-out job, still running, is what stands for the delivery:
// should the process die first, the job is retried (or swept up as an
// orphan) and the attempt made again. Other endpoints' deliveries are stored
// with their jobs at once, and delivered by the delivery queue.
func (s *Service) fanout(ctx context.Context, workspace, eventID string) error {
	ev, eps, err := s.store.FanoutTargets(ctx, workspace, eventID)
	if errors.Is(err, records.ErrNotFound) {
		// The event is written in the transaction that enqueued this job, so
		// it can only be gone if something removed it since; nothing to send.
		s.log.LogAttrs(ctx, slog.LevelWarn, "webhook fan-out: event not found", slog.String("event_id", eventID))
		return nil
	}
	if err != nil || len(eps) == 0 {
		return err
	}
	now := s.now()
	var inline, queued []*Delivery
	endpoints := map[string]*Endpoint{}
	for _, e := range eps {
		if !e.Matches(ev) {
			continue
		}
		d := &Delivery{ID: records.NewID("dlv"), Workspace: ev.Workspace, EndpointID: e.ID,
			EventID: ev.ID, EventType: ev.Type, Status: StatusPending, CreatedAt: now, NextAttemptAt: &now}
		endpoints[e.ID] = e
		if len(inline) < inlineMaxPerFanout && s.inlineOK(e) {
			inline = append(inline, d)
		} else {
			queued = append(queued, d)
		}
	}
	if len(inline)+len(queued) == 0 {
		return nil
	}
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	if len(queued) > 0 {
		if _, err := s.store.CreateDeliveries(ctx, queued, s.enqueue(client, TriggerScheduled)); err != nil {
			return err
		}
	}
	errs := make([]error, len(inline))
	var wg sync.WaitGroup
	for i, d := range inline {
		wg.Go(func() {
			_, err := s.finish(ctx, d, endpoints[d.EndpointID], ev, TriggerScheduled, 1, len(s.schedule)+1, client, true)
			if errors.Is(err, records.ErrDuplicate) {
				err = nil // an earlier run of this fan-out stored it
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// inlineOK tells whether fan-out may make the first attempt to e itself:
// the endpoint is not failing, and its last attempt from this process (if
// any) was quick.
func (s *Service) inlineOK(e *Endpoint) bool {
	if e == nil || e.FailingSince != nil {
		return false
	}
	v, ok := s.latency.Load(e.ID)
	return !ok || v.(time.Duration) < inlineMaxLatency
}

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	s *Service
}

// Timeout leaves the attempt's own timeout room to expire first, so a slow
// receiver is logged as a timeout rather than the job being cancelled.
func (w *deliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration { return w.s.deliverTimeout() }

func (s *Service) deliverTimeout() time.Duration { return s.timeout + 5*time.Second }

// NextRetry answers the time the failed attempt chose.
func (w *deliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	if v, ok := w.s.retryAt.LoadAndDelete(job.ID); ok {
		return v.(time.Time)
	}
	return time.Now().Add(w.s.retryDelay(job.Attempt+job.Args.Prior, 0))
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	if nb := job.Args.NotBefore; nb != nil && job.Attempt == 1 {
		if wait := time.Until(*nb); wait > 0 {
			return river.JobSnooze(wait)
		}
	}
	trigger := job.Args.Trigger
	if job.Attempt > 1 || trigger == "" {
		trigger = TriggerScheduled
	}
	prior := job.Args.Prior
	retry, err := w.s.deliver(ctx, job.Args.DeliveryID, trigger, job.Attempt+prior, job.MaxAttempts+prior)
	if err != nil || retry == 0 {
		return err
	}
	w.s.retryAt.Store(job.ID, time.Now().Add(retry))
	return errAttemptFailed
}

// errAttemptFailed tells River the attempt failed and is to be retried; the
// delivery log holds the details.
var errAttemptFailed = errors.New("webhook delivery attempt failed; see the delivery log")

// retryDelay is the wait after the attempt-th attempt failed: the receiver's
// Retry-After when it gave one, else the schedule's, plus jitter. Jitter only
// ever lengthens the wait, so a Retry-After is never undercut.
func (s *Service) retryDelay(attempt int, retryAfter time.Duration) time.Duration {
	d := retryAfter
	if d <= 0 {
		i := min(max(attempt-1, 0), len(s.schedule)-1)
		d = s.schedule[i]
	}
	if s.jitter > 0 {
		d += time.Duration(s.random() * s.jitter * float64(d))
	}
	return d
}

// deliver makes one attempt of a delivery and records it. It answers the
// wait before the next attempt, or 0 when there is to be none.
func (s *Service) deliver(ctx context.Context, id, trigger string, attempt, maxAttempts int) (time.Duration, error) {
	d, e, ev, err := s.store.DeliveryTarget(ctx, id)
	if errors.Is(err, records.ErrNotFound) {
		return 0, nil // the endpoint, and with it the delivery, was deleted
	}
	if err != nil {
		return 0, err
	}
	if d.Status == StatusSucceeded && trigger == TriggerScheduled {
		// A process died between recording the success and completing the
		// job; the job came back, the delivery is done.
		return 0, nil
	}
	if !e.Enabled {
		return 0, s.store.SetDeliveryStatus(ctx, d.Workspace, d.ID, StatusFailed)
	}
	return s.finish(ctx, d, e, ev, trigger, attempt, maxAttempts, nil, false)
}

// finish makes the attempt-th attempt of a delivery and records it, with its
// effects on the endpoint. Called by a delivery job (inline nil), it answers
// the wait before River's retry, or 0 for none. Called by fan-out (inline
// the client, isNew: the delivery is stored with this attempt), it queues
// the retry itself, in the transaction that logs the attempt, and answers 0.
func (s *Service) finish(ctx context.Context, d *Delivery, e *Endpoint, ev *records.Event, trigger string, attempt, maxAttempts int, inline *river.Client[*sql.Tx], isNew bool) (time.Duration, error) {
	a, err := s.attempt(ctx, e, ev, d.ID, trigger)
	if err != nil {
		return 0, err
	}
	s.latency.Store(e.ID, time.Duration(a.DurationMS)*time.Millisecond)
	rec := &AttemptRecord{Workspace: d.Workspace, DeliveryID: d.ID, EndpointID: e.ID, Attempt: a, WasFailing: e.FailingSince != nil}
	if isNew {
		rec.New = d
	}
	var retry time.Duration
	switch {
	case a.Error == "":
		rec.Status = StatusSucceeded
	case a.StatusCode == 410:
		rec.Status = StatusFailed
		rec.DisableReason = "the endpoint answered 410 Gone"
	case e.FailingSince != nil && a.At.Sub(*e.FailingSince) >= s.disableAfter:
		rec.Status = StatusFailed
		rec.DisableReason = fmt.Sprintf("failing without a success since %s", e.FailingSince.UTC().Format(time.RFC3339))
	case attempt >= maxAttempts:
		rec.Status = StatusFailed
	default:
		rec.Status = StatusPending
		retry = s.retryDelay(attempt, retryAfter(a))
		next := a.At.Add(retry)
		rec.NextAttemptAt = &next
		if inline != nil {
			opts := s.deliverOpts(d.Workspace)
			opts.MaxAttempts = maxAttempts - attempt
			notBefore := time.Now().Add(retry)
			args := DeliverArgs{DeliveryID: d.ID, Trigger: TriggerScheduled, Prior: attempt, NotBefore: &notBefore}
			rec.Enqueue = func(ctx context.Context, tx *sql.Tx, _ []*Delivery) error {
				_, err := inline.InsertManyFastTx(ctx, tx, []river.InsertManyParams{{Args: args, InsertOpts: opts}})
				return err
			}
			retry = 0
		}
	}
	if err := s.store.RecordAttempt(ctx, rec); err != nil {
		return 0, err
	}
	if s.observe != nil {
		var since time.Duration
		if rec.Status == StatusSucceeded {
			since = s.clock().Sub(ev.CreatedAt)
		}
		s.observe(rec.Status, since)
	}
	if rec.DisableReason != "" {
		// The event type is what log pipelines alert on.
		s.log.LogAttrs(ctx, slog.LevelWarn, "webhook endpoint disabled",
			slog.String("event", "webhook.endpoint_disabled"),
			slog.String("workspace_id", e.Workspace), slog.String("endpoint_id", e.ID),
			slog.String("reason", rec.DisableReason))
	}
	return retry, nil
}

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	s *Service
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	_, err := w.s.Prune(ctx)
	return err
}

// OrphanArgs is the periodic job that sweeps up orphaned fan-out and
// delivery jobs.
type OrphanArgs struct{}

// Kind is the job kind of OrphanArgs.
func (OrphanArgs) Kind() string { return "crmkit_webhook_orphans" }

type orphanWorker struct {
	river.WorkerDefaults[OrphanArgs]
	s *Service
}

// orphanAfter is how long a fan-out or delivery job may have been running
// before it can only be the job of a process that died: well past the
// timeouts that make a live job return.
func (s *Service) orphanAfter() time.Duration {
	return max(s.deliverTimeout(), s.fanoutTimeout()) + 10*time.Second
}

// Work finds fan-out and delivery jobs left running longer than any live job
// runs, queues a fresh job for the same work, and then cancels the orphan.
// River's own rescuer would retry them too, but only after
// RescueStuckJobsAfter, which a host keeps long for the sake of its
// long-running jobs; this gets a killed process's deliveries going again
// within half a minute. In that order, a crash between the two steps leaves a
// duplicate (deliveries are at least once), never a loss.
func (w *orphanWorker) Work(ctx context.Context, _ *river.Job[OrphanArgs]) error {
	s := w.s
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	res, err := client.JobList(ctx, river.NewJobListParams().
		Kinds(records.FanoutArgs{}.Kind(), DeliverArgs{}.Kind()).
		States(rivertype.JobStateRunning).First(1000))
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-s.orphanAfter())
	for _, job := range res.Jobs {
		if job.AttemptedAt == nil || job.AttemptedAt.After(cutoff) {
			continue
		}
		var params river.InsertManyParams
		switch job.Kind {
		case DeliverArgs{}.Kind():
			var args DeliverArgs
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				return err
			}
			args.Trigger = TriggerScheduled
			// The orphan's own queue: its workspace's, or the one it was
			// queued on before there were shards.
			opts := s.deliverOpts("")
			opts.Queue = job.Queue
			params = river.InsertManyParams{Args: args, InsertOpts: opts}
		default:
			var args records.FanoutArgs
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				return err
			}
			params = river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{Queue: job.Queue}}
		}
		if _, err := client.InsertMany(ctx, []river.InsertManyParams{params}); err != nil {
			return err
		}
		if _, err := client.JobCancel(ctx, job.ID); err != nil {
			return err
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "webhook job orphaned by a stopped process queued again",
			slog.Int64("job_id", job.ID), slog.String("kind", job.Kind), slog.Time("attempted_at", *job.AttemptedAt))
	}
	return nil
}
