package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/records"
)

// PublishTx stores events and enqueues one records.FanoutArgs job per event
// inside tx, a transaction the caller began on this store's database (see
// SQLDB). It is for hosts whose own code writes records: the events exist,
// and their webhooks fire, if and only if tx commits. Events get an id and
// a time when they have none, exactly as InsertEvents gives them.
func (s *Store) PublishTx(ctx context.Context, tx *sql.Tx, events ...*records.Event) error {
	if tx == nil {
		return errors.New("store: PublishTx: nil transaction")
	}
	return s.insertEventsOn(ctx, tx, tx, events)
}

// insertEventsOn writes events through conn and enqueues their fan-out jobs
// on sqlTx, which must be the transaction conn runs in.
func (s *Store) insertEventsOn(ctx context.Context, conn bun.IConn, sqlTx *sql.Tx, events []*records.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([]eventRow, len(events))
	jobs := make([]river.InsertManyParams, len(events))
	for i, e := range events {
		if e.ID == "" {
			e.ID = records.NewID("evt")
		}
		e.CreatedAt = storedTime(e.CreatedAt)
		if e.RecordID == "" && e.Record != nil {
			e.RecordID = e.Record.ID
		}
		payload, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("store: event payload: %w", err)
		}
		rows[i] = eventRow{
			ID: e.ID, WorkspaceID: e.Workspace, Type: e.Type, Object: e.Object, RecordID: e.RecordID,
			Payload: string(payload), CreatedAt: e.CreatedAt,
		}
		jobs[i] = river.InsertManyParams{Args: records.FanoutArgs{EventID: e.ID, Workspace: e.Workspace}}
	}
	if _, err := s.db.NewInsert().Conn(conn).Model(&rows).Exec(ctx); err != nil {
		return mapWriteErr("insert events", err)
	}
	if _, err := s.JobClient().InsertManyTx(ctx, sqlTx, jobs); err != nil {
		return fmt.Errorf("store: enqueue event fanout: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqldb.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}
