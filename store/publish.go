package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	return s.insertEvents(ctx, tx, tx, events)
}

// Ping checks that the database answers, on a connection of its own (see
// ExpensiveReads), so a busy pool does not make it late.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.heavy.ping(ctx, s.dialect); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}
