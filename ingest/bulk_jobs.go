package ingest

import (
	"context"
	"maps"
	"time"

	"github.com/riverqueue/river"
)

// InsertOpts puts bulk jobs on their own queue, so a long job does not hold
// up webhook delivery.
func (RunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueBulk, MaxAttempts: 10}
}

// sweepArgs is the periodic job that finds jobs whose worker died (the
// lease lapsed) and queues them again.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "crmkit_bulk_sweep" }

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	b *Bulk
}

func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	return w.b.Run(ctx, job.Args.JobID)
}

// Timeout is none: a job of many rows runs as long as it needs, renewing
// its lease as it goes.
func (w *runWorker) Timeout(*river.Job[RunArgs]) time.Duration { return -1 }

// NextRetry runs a job whose run failed (the database busy or gone for a
// moment) again soon: after 1, 4, 9, … seconds, at most a minute, instead
// of River's default, which waits 81 seconds before the third attempt.
// Someone is watching the job's progress.
func (w *runWorker) NextRetry(job *river.Job[RunArgs]) time.Time {
	n := time.Duration(max(job.Attempt, 1))
	return time.Now().Add(min(n*n*time.Second, time.Minute))
}

type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	b *Bulk
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	return w.b.Sweep(ctx)
}

// Register adds the bulk job workers to workers.
func (b *Bulk) Register(workers *river.Workers) error {
	if err := river.AddWorkerSafely[RunArgs](workers, &runWorker{b: b}); err != nil {
		return err
	}
	return river.AddWorkerSafely[sweepArgs](workers, &sweepWorker{b: b})
}

// PeriodicJobs answers the sweep of jobs whose worker died, run once per
// lease and when the job client starts.
func (b *Bulk) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(b.cfg.Lease),
		func() (river.JobArgs, *river.InsertOpts) { return sweepArgs{}, &river.InsertOpts{Queue: QueueBulk} },
		&river.PeriodicJobOpts{RunOnStart: true})}
}

// RiverConfig adds the bulk queue, with two workers, unless cfg has it.
func (b *Bulk) RiverConfig(cfg *river.Config) {
	if _, ok := cfg.Queues[QueueBulk]; ok {
		return
	}
	cfg.Queues = maps.Clone(cfg.Queues)
	if cfg.Queues == nil {
		cfg.Queues = map[string]river.QueueConfig{}
	}
	cfg.Queues[QueueBulk] = river.QueueConfig{MaxWorkers: 2}
}

// Sweep queues again every queued or running job whose lease lapsed: its
// worker died with the process. The job resumes after its last committed
// batch.
func (b *Bulk) Sweep(ctx context.Context) error {
	ids, err := b.st.StaleBulkJobs(ctx, b.now().Add(-b.cfg.Lease), 100)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := b.st.UpdateBulkJob(ctx, "", id, func(j *Job) (bool, error) {
			return j.State == StateQueued || j.State == StateRunning, nil
		}); err != nil {
			return err
		}
	}
	return nil
}
