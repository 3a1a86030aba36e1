// Package records holds crmkit's record model (Record, Object, Event,
// AuditEntry), the storage contract a record pipeline needs (Store, Tx), and
// the default record pipeline, Pipeline: the one path every write takes,
// whether it comes from a person in a form, a REST call, a bulk job, an
// Excel row, an inbound webhook or a connector poll.
//
// This package imports nothing else of crmkit. The store package implements
// Store and Tx on Postgres and SQLite.
//
// # Objects
//
// An Object is a named schema of typed fields. DefaultObjects answers
// opportunity, account, contact and lead, each with an "external_id" string
// field that upserts match on; hosts add their own objects to the list they
// pass in Config.Objects, and they work the same way.
//
// Each object is compiled once, by NewPipeline (or NewValidator, which works
// without a database), into per-field rules: a coercion for the field's type,
// then a go-playground/validator tag run with Validate.Var. Writes never
// parse a schema. What each type accepts and stores:
//
//   - string, text, email, url, picklist: JSON strings, trimmed of spaces.
//     Strings are at most 255 characters and texts 32768 unless the field
//     sets Min/Max (lengths); emails use validator's email check (at most
//     254 characters); urls must be absolute http or https URLs (validator's
//     http_url, so javascript: links cannot get in) of at most 2048
//     characters; picklists must be one of their options (validator's
//     oneof, exact and case-sensitive).
//   - number, integer: numbers, or text holding a number (CSV and Excel
//     cells are text); stored as JSON numbers. Integers must be whole and
//     within ±2^53. Min and Max bound the value.
//   - boolean: true or false, or the text "true"/"false" (also "1"/"0").
//   - date: "2006-01-02". datetime: RFC 3339, stored in UTC with as many
//     fractional digits as needed ("2025-06-30T10:00:00Z").
//   - reference: a record id ("rec_" and 26 characters). Only the shape is
//     checked, not that the record exists: an import may bring a contact
//     before its account.
//
// A nil value and an empty (or all-space) string both mean "no value": on
// create the field is left out, on update it is cleared. Stored records hold
// only fields that have a value.
//
// Validation names every failing field at once in a *ValidationError (which
// wraps ErrValidation), each with a machine code and a readable message:
// "unknown_field" for a name the object does not have, "required",
// "invalid_type", "min", "max", "email", "url", "one_of", "date",
// "datetime", "reference", and "read_only" for a read-only field (such as
// an opportunity's closed_at) that a caller tried to change. Sending back a
// read-only field's current value is not a change, so a client may send the
// record it read. Required fields must all be present on create; on update a
// write may not clear one, but fields made required after a record was
// written do not block other edits of that record.
//
// # The write order
//
// Every write (Create, Update, Upsert, Delete, and every row of Batch) runs
// these steps, in this order:
//
//  1. Read the current record (update, upsert, delete), outside any
//     transaction, and check ExpectedVersion when given.
//  2. Normalise the input: coerce and trim values as above.
//  3. Validate: unknown fields, read-only fields, types, tags, required.
//  4. Before rules, in configuration order. What they change is normalised
//     and validated again, and the changes are recomputed, so rule-made
//     changes are part of the same write.
//  5. Plan limit: the workspace's plan (Config.Plans, which caches
//     Store.GetWorkspace) gives the record cap.
//  6. In one Store.InTx transaction: Tx.ReserveRecords (+1 on create, -1 on
//     delete), which checks and bumps the workspace's count in one statement
//     so the cap holds exactly under concurrent writers; the record itself
//     (Tx.InsertRecord, or Tx.UpdateRecord / Tx.DeleteRecord guarded by the
//     version read in step 1); the After rules, with RuleContext.Tx; the
//     audit entry (actor, source, before and after of every changed field)
//     and the event, with Tx.InsertAudit and Tx.InsertEvents, which also
//     enqueues the event's fan-out job. When the Tx is a RowTx (the store
//     package's is on Postgres), a create or update writes its reservation, record,
//     audit entry and event with one RowTx.WriteRow before the After rules,
//     which on Postgres is one statement, and the fan-out job is enqueued
//     with RowTx.EnqueueFanout; what commits is the same.
//  7. Commit. If any step fails nothing of the write remains: no record, no
//     audit entry, no event, no job.
//
// An update that changes nothing (after the Before rules) writes nothing,
// emits nothing, and answers the record as it is. An update without an
// ExpectedVersion that loses a race with another writer is tried again on
// the new state (up to thirty times, with a random pause growing to 64 ms); with an
// ExpectedVersion it fails with ErrConflict. An upsert that finds no record
// and then loses the insert to a concurrent upsert of the same external id
// is tried again as an update. Delete answers the record's last state, which
// is also the record of its record.deleted event.
//
// Reading happens before the transaction opens, never inside it: on SQLite
// the transaction holds the database's only connection.
//
// # Rules
//
// A Rule reacts to writes of one object: On lists its triggers
// (TriggerCreated, TriggerUpdated, TriggerDeleted), When is its condition,
// Do its action. A RuleContext gives the rule the record before the write
// (nil on create), the proposed fields after it, the changes between them,
// the source, the actor and the time of the write.
//
// Conditions can be levels (FieldEquals: the field holds this value) or
// edges (FieldChangedTo: the field changed to this value in this write).
// ClosedWonRule, which the reference server ships, is an edge: when an
// opportunity's stage changes to Closed Won, closed_at is set to the time of
// the write; editing the won deal later does not move it.
//
// Before rules (the zero Phase) may change RuleContext.Fields or reject the
// write by returning an error. After rules run inside the transaction once
// the record is written and may use RuleContext.Tx; an error rolls the write
// back. An error from a rule is answered wrapped, naming the rule, so
// errors.Is and errors.As still reach what the rule returned. A Before
// rule's error that wraps none of this package's sentinels is a veto and is
// also a *ValidationError with one FieldError of code "rule" and no field,
// so an API answers it as 422, not as a server error.
//
// # Plans
//
// A workspace's plan caps how many records it may hold and how many
// requests a minute its API keys may make: one Plan value carries both.
// DefaultPlans answers starter (10,000 records, 60 requests a minute), pro
// (1,000,000; 600) and enterprise (no cap; 6,000). A workspace on a plan
// the catalogue does not hold cannot create records (ErrPlanLimit). The
// count moves inside each write's transaction, so the cap holds exactly on
// every path and under any number of writers; a workspace above its cap
// (after a downgrade) can still update and delete.
//
// Plans answers which plan a workspace is on through a short cache. One
// Plans serves both the pipeline and the rate limiter; Plans.Set changes a
// workspace's plan and both see it on the next write or request, while
// other replicas see it within the cache lifetime (2 s by default).
//
// # Batches
//
// Batch runs many writes in one transaction for bulk jobs and imports. Each
// row takes exactly the steps above, with its own validation, rules, limit
// check, audit entry and event; single writes are batches of one, so the
// two cannot drift apart. The batch's audit entries and events (and their
// jobs) are inserted with one call each, except those a RowTx wrote with
// their rows; their jobs are still enqueued with one call. Rows see what
// earlier rows of the same batch write: a batch may create a record and then
// update it.
//
// In all-or-none mode (BatchOptions.AllOrNone) any failing row fails the
// batch and nothing is written; every row is validated first, so the answer
// names every invalid row. In partial mode a failing row leaves its
// neighbours alone: the batch runs without savepoints until a row fails,
// then that pass is rolled back and run again with the failed row settled
// and each later row in its own savepoint (Tx.Savepoint). On Postgres a
// savepoint costs two round trips and hundreds of them slow the whole
// transaction, so batches without failures should not pay for them. After
// rules of a partial batch's rows may therefore run twice, once in the
// rolled-back pass; their effects belong in the transaction. DryRun runs
// everything, rules and plan limits included, and rolls back.
//
// A batch reserves the plan places of all its creates in a workspace with
// one Tx.ReserveRecords, and gives back in one call what failed rows did not
// use and what its deletes freed. When the creates would pass the cap, or
// there is only one, the rows of that workspace reserve one by one instead,
// in row order, so exactly the rows past the cap fail with ErrPlanLimit.
//
// # Errors
//
// Every error this package answers wraps one of the sentinels, to be tested
// with errors.Is: ErrNotFound (an unknown object, workspace or record, and
// any record of another workspace), ErrConflict (a stale ExpectedVersion),
// ErrDuplicate (an external id or unique value another record holds),
// ErrPlanLimit, ErrValidation (always a *ValidationError, for errors.As),
// and ErrBatchAborted for rows of an all-or-none batch that were not written
// because another row failed. Errors from rules keep what the rule returned
// reachable (see Rules).
package records
