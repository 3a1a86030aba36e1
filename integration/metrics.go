package integration

import (
	"context"
	"database/sql"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/metrics"
)

// QueueDepther is a JobQueue that can count its waiting jobs, for the
// job_queue_depth gauge; *store.Store is one.
type QueueDepther interface {
	QueueDepth(ctx context.Context) ([]metrics.QueueCount, error)
}

// countJobs counts the jobs client finishes, by kind and outcome, from
// River's own event stream. The subscription ends when the client stops.
func (s *Service) countJobs(client *river.Client[*sql.Tx]) {
	events, _ := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed)
	outcomes := map[river.EventKind]string{
		river.EventKindJobCompleted: "completed", river.EventKindJobFailed: "failed",
		river.EventKindJobCancelled: "cancelled", river.EventKindJobSnoozed: "snoozed",
	}
	go func() {
		for ev := range events {
			if ev.Job != nil {
				s.metrics.Job(ev.Job.Kind, outcomes[ev.Kind])
			}
		}
	}()
}
