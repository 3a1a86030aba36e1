// Package storetest is the conformance suite of crmkit's storage: the
// cases every implementation of Store must pass, whatever database it runs
// on. The store package runs it on SQLite and on Postgres; a host that
// brings its own storage runs it the same way:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store { return openMine(t) }, storetest.Options{})
//	}
//
// open must answer a fresh, empty store for every case, closed when its test
// ends: cases create workspaces and count what they wrote.
//
// # What it covers
//
// Store is records.Store, apikey.Store and outbound.Store, with the few
// workspace and read calls through which the cases set up their data and
// look at what a write stored. Run checks:
//
//   - workspaces: create, read, plan changes, duplicates;
//   - records: insert, read by id and external id, update with optimistic
//     versions, delete, duplicates of ids, external ids and unique values,
//     listing with filters and cursors, workspace isolation;
//   - transactions: plan reservations (also under concurrent writers),
//     rollback, savepoints, reads inside a transaction, audit entries and
//     events written with their record, and records.RowTx's WriteRow when
//     the store's transactions offer it;
//   - API keys: create, lookup by hash and by id, list pages, revoke,
//     rotate, touch;
//   - webhooks: endpoints (create, read, update, delete, list pages, the
//     fan-out targets of an event), deliveries (create once per event and
//     endpoint, the delivery worker's target, list with filters and
//     cursors), attempts (numbering, the endpoint's health, a first attempt
//     that stores its delivery, disabling), requeues and pruning.
//
// A read that names a workspace never shows another workspace's rows: the
// cases check it for every kind of row. The two lookups that name none,
// APIKeyByHash and DeliveryTarget, find a row by what only its owner holds.
//
// # What a store must do that the interfaces leave open
//
// Times are kept to the microsecond: a write sets the times of the value it
// is given to what a read will answer (UTC, truncated to the microsecond), so
// that the value compares equal to the one read back.
//
// # Options
//
// Some effects show through no method of Store: the background jobs a write
// enqueues, for one. Options carries hooks for them; a case whose hook is
// nil skips the checks that need it and says so in the test log.
//
// # Helpers
//
// Workspace, NewRecord and Insert set up data for other storage tests too,
// such as benchmarks and the store's own job tests.
package storetest
