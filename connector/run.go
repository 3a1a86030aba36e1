package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// Runs: a worker claims a run (the connector's lease), fetches pages one
// after another, writes each with its checkpoint in one transaction, keeps
// the lease alive while it works, and at the end (full mode) deletes what
// a complete run no longer saw.

// execute works run runID of connector connectorID to its end, or until
// the process stops; a run whose lease another worker holds is left alone.
func (s *Service) execute(ctx context.Context, connectorID, runID string) error {
	token := newToken()
	now := s.now()
	c, run, ok, err := s.st.ClaimConnectorRun(ctx, connectorID, runID, token, now, now.Add(s.lease))
	if err != nil || !ok {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.keepLease(runCtx, cancel, c.ID, token)

	resumed := run.Pages > 0
	if run.StartedAt == nil {
		t := now
		run.StartedAt = &t
	}
	run.Status = RunRunning
	sy, err := s.startSync(c, resumed)
	if err == nil && !resumed {
		run.CursorBefore = sy.From.String()
	}
	if err == nil {
		err = s.pages(runCtx, c, run, token, sy)
	}
	if cause := context.Cause(runCtx); errors.Is(cause, ErrLeaseLost) || errors.Is(err, ErrLeaseLost) {
		// Another worker has the run now, or the connector is gone: it is
		// theirs to finish.
		s.log.LogAttrs(ctx, slog.LevelWarn, "connector run lost its lease",
			slog.String("connector_id", c.ID), slog.String("run_id", run.ID))
		return nil
	}
	if ctx.Err() != nil {
		// The process is stopping: the run resumes from its last committed
		// page once its lease runs out.
		return nil
	}
	var rerr *RunError
	switch {
	case errors.As(err, &rerr):
	case err != nil:
		s.log.LogAttrs(ctx, slog.LevelError, "connector run failed",
			slog.String("connector_id", c.ID), slog.String("run_id", run.ID), slog.String("error", err.Error()))
		rerr = &RunError{Code: "internal", Message: "the run failed on the server's side; see the server's log"}
	}
	if rerr == nil && sy != nil && sy.Done && c.Mode == ModeFull && c.Deletes != DeletesOff {
		if err := s.sweepDeletes(runCtx, c, run); err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "connector deletes failed",
				slog.String("connector_id", c.ID), slog.String("run_id", run.ID), slog.String("error", err.Error()))
			rerr = &RunError{Code: "internal", Message: "deleting the records not seen failed; see the server's log"}
		}
	}
	fin := s.now()
	run.FinishedAt = &fin
	next := ""
	if sy != nil {
		run.CursorAfter = sy.To.String()
		next = sy.Next().String()
	}
	if rerr != nil {
		run.Status, run.Error = RunFailed, rerr
		if sy != nil {
			run.CursorAfter = sy.From.String()
		}
	} else {
		run.Status = RunSucceeded
	}
	if err := s.st.FinishConnectorRun(context.WithoutCancel(ctx), run, token, next); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			return nil
		}
		return err
	}
	s.observe(run)
	return nil
}

// startSync answers where a run starts: a resumed run where its last page
// left it; a new one from the stored checkpoint (or incremental.start),
// except in full mode, which reads everything every time.
func (s *Service) startSync(c *Connector, resumed bool) (*Sync, error) {
	if c.State == "" || (c.Mode == ModeFull && !resumed) {
		if c.Mode == ModeFull {
			return NewSync(Checkpoint{}), nil
		}
		return NewSync(c.start()), nil
	}
	sy, err := ParseSync(c.State)
	if err != nil {
		return nil, &RunError{Code: "internal", Message: err.Error()}
	}
	if !resumed {
		sy.Cursor, sy.Done = "", false
	}
	return sy, nil
}

// pages fetches and writes pages until the source has no more. A failure
// the run's log should show is a *RunError.
func (s *Service) pages(ctx context.Context, c *Connector, run *Run, token string, sy *Sync) error {
	p, m, err := s.prepare(c)
	if err != nil {
		return &RunError{Code: "invalid_connector", Message: err.Error()}
	}
	for !sy.Done {
		page, err := p.Poll(ctx, sy.Request())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fetchError(err)
		}
		pageNo := run.Pages + 1
		seenRun := ""
		if c.Mode == ModeFull {
			seenRun = run.ID
		}
		job := pageJob{c: c, m: m, sync: sy, page: page, pageNo: pageNo}
		job.commit = func(ctx context.Context, seen []RecordKey) error {
			return s.st.CommitConnectorPage(ctx, PageCommit{ConnectorID: c.ID, RunID: run.ID, Token: token,
				State: sy.String(), LeaseUntil: s.now().Add(s.lease), SeenRun: seenRun, Seen: seen})
		}
		res, err := s.writePage(ctx, job)
		if err != nil {
			return err
		}
		if res.stop != nil {
			run.Failures = appendFailures(run.Failures, res.failures)
			return res.stop
		}
		run.Pages = pageNo
		run.Counts.add(res.counts)
		run.Failures = appendFailures(run.Failures, res.failures)
		// A page the pipeline wrote nothing of (all unchanged or skipped)
		// has no hashes to store; its counts go with the next page that
		// has, or with the run's end.
		if len(res.owned) == 0 && len(res.failures) == 0 {
			continue
		}
		if err := s.st.RecordConnectorPage(ctx, run, res.owned); err != nil {
			return err
		}
	}
	return nil
}

func appendFailures(all, more []Failure) []Failure {
	for _, f := range more {
		if len(all) >= MaxFailures {
			break
		}
		all = append(all, f)
	}
	return all
}

// prepare makes the connector's poller and compiles its mapping.
func (s *Service) prepare(c *Connector) (Poller, *mapping.Mapping, error) {
	def, err := c.definition()
	if err != nil {
		return nil, nil, err
	}
	p, err := s.registry.Poller(c.Kind, def)
	if err != nil {
		return nil, nil, err
	}
	m, err := mapping.Compile(c.Mapping, s.objects)
	if err != nil {
		return nil, nil, err
	}
	return p, m, nil
}

// fetchError is the log's account of a page that could not be fetched.
func fetchError(err error) *RunError {
	re := &RunError{Code: "fetch_failed", Message: err.Error()}
	var se *StatusError
	if errors.As(err, &se) {
		re.StatusCode, re.Body = se.StatusCode, se.Body
	}
	if errors.Is(err, ErrBlockedAddress) {
		re.Code = "blocked_address"
	}
	return re
}

// keepLease extends the run's lease a few times per lease period until ctx
// ends; when the lease is lost it cancels the run.
func (s *Service) keepLease(ctx context.Context, cancel context.CancelCauseFunc, connectorID, token string) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.st.ExtendConnectorLease(ctx, connectorID, token, s.now().Add(s.lease))
		if errors.Is(err, ErrLeaseLost) {
			cancel(ErrLeaseLost)
			return
		}
	}
}

// sweepDeletes deletes (or flags) the connector's records a complete full
// run did not see, unless there are more of them than MaxDeleteRatio
// allows: then it deletes nothing and notes why.
func (s *Service) sweepDeletes(ctx context.Context, c *Connector, run *Run) error {
	unseen, total, err := s.st.UnseenConnectorRecords(ctx, c.Workspace, c.ID, run.ID)
	if err != nil || len(unseen) == 0 {
		return err
	}
	if float64(len(unseen)) > c.MaxDeleteRatio*float64(total) {
		run.Notes = append(run.Notes, fmt.Sprintf("deleted nothing: %d of the connector's %d records were not seen, more than max_delete_ratio %g allows",
			len(unseen), total, c.MaxDeleteRatio))
		return nil
	}
	actor := records.Actor{Kind: "connector", ID: c.ID}
	const chunk = 500
	for start := 0; start < len(unseen); start += chunk {
		part := unseen[start:min(start+chunk, len(unseen))]
		items := make([]records.BatchItem, len(part))
		for i, o := range part {
			w := records.Write{Workspace: c.Workspace, Object: o.Object, ID: o.RecordID, ExpectedVersion: o.RecordVersion,
				Source: records.SourceConnector, Actor: actor}
			if c.Deletes == DeletesFlag {
				w.Fields = records.Fields{FlagField: s.now().UTC().Format(records.DateTimeLayout)}
				items[i] = records.BatchItem{Op: records.OpUpdate, Write: w}
			} else {
				items[i] = records.BatchItem{Op: records.OpDelete, Write: w}
			}
		}
		results, err := s.pipe.Batch(ctx, items, records.BatchOptions{})
		if err != nil {
			return err
		}
		var gone []RecordKey
		for i, r := range results {
			if r.Err != nil {
				run.Notes = append(run.Notes, fmt.Sprintf("%s %s (%s) not %s: %v", part[i].Object, part[i].RecordID,
					part[i].ExternalID, map[bool]string{true: "flagged", false: "deleted"}[c.Deletes == DeletesFlag], r.Err))
				continue
			}
			run.Deleted++
			if c.Deletes == DeletesDelete {
				gone = append(gone, part[i].RecordKey)
			}
		}
		if len(gone) > 0 {
			if err := s.st.ForgetConnectorRecords(ctx, c.ID, gone); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) observe(run *Run) {
	if s.cfg.Observe == nil {
		return
	}
	s.cfg.Observe(run.Status, map[string]int64{"created": run.Created, "updated": run.Updated, "unchanged": run.Unchanged,
		"deleted": run.Deleted, "failed": run.Failed, "skipped": run.Skipped})
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Error makes a RunError an error.
func (e *RunError) Error() string { return e.Code + ": " + e.Message }
