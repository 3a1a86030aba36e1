package connector

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// RunArgs is the job that works one run.
type RunArgs struct {
	ConnectorID string `json:"connector_id"`
	RunID       string `json:"run_id"`
}

// Kind is the job kind of RunArgs.
func (RunArgs) Kind() string { return "crmkit_connector_run" }

// ScheduledArgs is the job a connector's schedule inserts: it begins a run
// unless one is active.
type ScheduledArgs struct {
	ConnectorID string `json:"connector_id"`
}

// Kind is the job kind of ScheduledArgs.
func (ScheduledArgs) Kind() string { return "crmkit_connector_scheduled" }

// SweepArgs is the periodic job that resumes runs whose worker died.
type SweepArgs struct{}

// Kind is the job kind of SweepArgs.
func (SweepArgs) Kind() string { return "crmkit_connector_sweep" }

// Register adds the run, scheduled-run and sweep workers.
func (s *Service) Register(workers *river.Workers) error {
	if err := river.AddWorkerSafely[RunArgs](workers, &runWorker{s: s}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely[ScheduledArgs](workers, &scheduledWorker{s: s}); err != nil {
		return err
	}
	return river.AddWorkerSafely[SweepArgs](workers, &sweepWorker{s: s})
}

// PeriodicJobs answers the sweep and one job per scheduled connector
// stored now. River runs periodic jobs on its leader only, so each
// scheduled run is inserted once whatever the number of replicas.
func (s *Service) PeriodicJobs(ctx context.Context) []*river.PeriodicJob {
	jobs := []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(SweepEvery),
		func() (river.JobArgs, *river.InsertOpts) {
			return SweepArgs{}, &river.InsertOpts{Queue: s.cfg.Queue, MaxAttempts: 1}
		}, &river.PeriodicJobOpts{ID: "crmkit_connector_sweep", RunOnStart: true})}
	cs, err := s.st.ScheduledConnectors(ctx)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "connector schedules not read; they are added within a minute",
			slog.String("error", err.Error()))
		return jobs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if pj := s.periodic(c); pj != nil {
			jobs = append(jobs, pj)
			s.schedules[scheduleID(c.ID)] = c.Schedule
		}
	}
	return jobs
}

func scheduleID(connectorID string) string { return "crmkit_connector_" + connectorID }

func (s *Service) periodic(c *Connector) *river.PeriodicJob {
	sched, err := ParseSchedule(c.Schedule)
	if err != nil {
		return nil
	}
	id := c.ID
	return river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
		return ScheduledArgs{ConnectorID: id}, &river.InsertOpts{Queue: s.cfg.Queue, MaxAttempts: 1}
	}, &river.PeriodicJobOpts{ID: scheduleID(id)})
}

// RiverConfig adds the connectors' queue to cfg, unless cfg has it.
func (s *Service) RiverConfig(cfg *river.Config) {
	if cfg.Queues == nil {
		cfg.Queues = map[string]river.QueueConfig{}
	}
	if _, ok := cfg.Queues[s.cfg.Queue]; !ok {
		cfg.Queues[s.cfg.Queue] = river.QueueConfig{MaxWorkers: s.cfg.Workers}
	}
}

// Watch keeps this replica's schedules in line with connectors changed on
// other replicas, every ReconcileEvery, until the job client (Config.Client)
// stops. Hosts call it when they start the job client.
func (s *Service) Watch() {
	go func() {
		t := time.NewTicker(ReconcileEvery)
		defer t.Stop()
		var stopped <-chan struct{}
		for {
			select {
			case <-stopped:
				return
			case <-t.C:
			}
			client := s.jobClient()
			if client == nil {
				continue
			}
			stopped = client.Stopped()
			s.reconcile(context.Background())
		}
	}()
}

func (s *Service) jobClient() *river.Client[*sql.Tx] {
	if s.cfg.Client == nil {
		return nil
	}
	return s.cfg.Client()
}

// scheduleChanged brings this replica's schedules in line at once after a
// change made here; other replicas follow within ReconcileEvery.
func (s *Service) scheduleChanged(ctx context.Context) {
	if s.jobClient() != nil {
		s.reconcile(ctx)
	}
}

// reconcile makes the client's periodic jobs those of the stored
// scheduled connectors.
func (s *Service) reconcile(ctx context.Context) {
	client := s.jobClient()
	if client == nil {
		return
	}
	cs, err := s.st.ScheduledConnectors(ctx)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "connector schedules not reconciled", slog.String("error", err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]*Connector, len(cs))
	for _, c := range cs {
		want[scheduleID(c.ID)] = c
	}
	for id, spec := range s.schedules {
		if c, ok := want[id]; !ok || c.Schedule != spec {
			client.PeriodicJobs().RemoveByID(id)
			delete(s.schedules, id)
		}
	}
	for id, c := range want {
		if _, ok := s.schedules[id]; ok {
			continue
		}
		pj := s.periodic(c)
		if pj == nil {
			continue
		}
		if _, err := client.PeriodicJobs().AddSafely(pj); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "connector schedule not added", slog.String("connector_id", c.ID),
				slog.String("error", err.Error()))
			continue
		}
		s.schedules[id] = c.Schedule
	}
}

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	s *Service
}

// Timeout: a run takes as long as its source does; its lease, not a job
// timeout, tells a live run from a dead one.
func (w *runWorker) Timeout(*river.Job[RunArgs]) time.Duration { return -1 }

func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	return w.s.execute(ctx, job.Args.ConnectorID, job.Args.RunID)
}

type scheduledWorker struct {
	river.WorkerDefaults[ScheduledArgs]
	s *Service
}

func (w *scheduledWorker) Work(ctx context.Context, job *river.Job[ScheduledArgs]) error {
	c, err := w.s.st.GetConnector(ctx, "", job.Args.ConnectorID)
	if err != nil {
		return nil // deleted since
	}
	if !c.Enabled || c.Schedule == "" {
		return nil
	}
	_, err = w.s.begin(ctx, c, TriggerSchedule)
	if errors.Is(err, ErrRunActive) {
		w.s.log.LogAttrs(ctx, slog.LevelInfo, "scheduled connector run skipped: the previous run is still active",
			slog.String("connector_id", c.ID))
		return nil
	}
	return err
}

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	s *Service
}

// Work queues a job for every run whose lease ran out: its process died,
// and the new job resumes it from its last committed page.
func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	runs, err := w.s.st.StaleConnectorRuns(ctx, w.s.now())
	if err != nil || len(runs) == 0 {
		return err
	}
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, len(runs))
	for i, r := range runs {
		params[i] = river.InsertManyParams{Args: RunArgs{ConnectorID: r.ConnectorID, RunID: r.ID},
			InsertOpts: &river.InsertOpts{Queue: w.s.cfg.Queue, MaxAttempts: 1,
				UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: w.s.lease}}}
		w.s.log.LogAttrs(ctx, slog.LevelInfo, "connector run resumed after its worker stopped",
			slog.String("connector_id", r.ConnectorID), slog.String("run_id", r.ID))
	}
	_, err = client.InsertMany(ctx, params)
	return err
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
