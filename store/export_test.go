package store

import (
	"github.com/smartlite/crmkit/records"
)

// ListRecordsSQL is listRecordsSQL, for tests that EXPLAIN it.
func ListRecordsSQL(s *Store, q records.ListQuery) (string, []any, error) { return s.listRecordsSQL(q) }

// HoldExpensiveReads takes every turn of expensive reads, as running ones
// would, until release is called.
func HoldExpensiveReads(s *Store) (release func()) {
	n := cap(s.heavy.turns)
	for range n {
		s.heavy.turns <- struct{}{}
	}
	return func() {
		for range n {
			<-s.heavy.turns
		}
	}
}
