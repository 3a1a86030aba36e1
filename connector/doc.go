// Package connector pulls records from external systems: the Poller
// interface every source implements, the HTTP JSON poller, the incremental
// checkpoint, and the schedules connectors run on.
//
// # Pollers
//
// A Poller fetches one page of external records per call: the page after a
// cursor, the cursor of the next page, and whether there is one. Records are
// raw JSON documents (json.RawMessage), so that ids such as Shopify's
// 820982911946154508, which a float64 cannot hold, keep their digits until
// the mapping reads them. A failure worth trying again is a *RetryableError
// carrying the wait the source asked for (Retry-After); any other error
// fails the run.
//
// The HTTP JSON poller is one implementation (KindHTTP). A host registers
// its own kinds, a database or a vendor SDK, in a Registry, with a Factory
// that builds a kind's Poller from the connector's definition; wrapping it in
// Retrying gives it the same backoff as the HTTP poller.
//
// # The HTTP JSON poller
//
// HTTPPoller GETs Source.URL with Source.Headers (typically Authorization;
// their values appear in no error, and are blotted out of logged bodies that
// echo them). The records are the array at Source.RecordsPath, a dot path
// into the answer ("data", "result.items"; a member of digits indexes an
// array); "" means the answer is the array. A missing or null member is a
// page without records.
//
// Pagination.Kind says how pages follow:
//
//   - cursor: the next cursor is the string or number at next_path in the
//     answer, sent back as cursor_param. A missing, empty or repeated cursor
//     ends the run.
//   - page: page_param counts pages from 1.
//   - offset: offset_param counts the records read so far, from 0, so a
//     source that caps the page size below page_size loses nothing.
//   - link: the next page is the Link header's rel="next" target (RFC 8288),
//     resolved against the URL of the page; it must stay on the source's
//     origin (scheme, host and port), since the configured headers are
//     credentials for that origin. The first request carries the query
//     parameters below; later ones are the links as given.
//   - none (or empty): one page.
//
// size_param, when set, carries page_size on every request. Whatever the
// kind, a page without records ends the run; page and offset pagination go
// on until one comes, since a short page does not prove the last.
// incremental.param carries the checkpoint's value (Request.Since) on every
// request of a run.
//
// A 2xx answer is read up to HTTPConfig.MaxPageBytes (32 MiB by default;
// a larger page fails the run) and must be JSON; its Content-Type is not
// checked, and only quoted in the error when the body does not parse. A 429,
// a 5xx or a network failure is tried again after an exponential wait with
// jitter, or after Retry-After (seconds or an HTTP date) when the source
// gives one, up to Backoff.Attempts tries; then the run fails with the last
// status and the first 4 KiB of its body (a *StatusError). Other answers,
// 4xx among them, fail at once the same way. Messages show URLs without
// their query, which may hold an API key.
//
// # Addresses
//
// The source's URL, every redirect and every connection are checked against
// the same policy as webhook endpoints (package internal/netguard): loopback,
// private, link-local, shared, multicast, unspecified, reserved and cloud
// metadata addresses are refused, unless HTTPConfig.AllowPrivate is set for
// local testing (metadata, multicast, unspecified and reserved stay refused
// even then). HTTPConfig.Check vets a URL at registration, resolving its
// host; the dialer checks the address actually connected to, which defeats
// DNS rebinding; proxies from the environment are not used. A refusal wraps
// ErrBlockedAddress and its message names AllowPrivate (OptInHint).
//
// Redirects are followed, at most 5, to http or https URLs on allowed
// addresses only; a redirect to another origin goes without the configured
// headers. A refused redirect fails the page at once.
//
// # Incremental sync
//
// A Checkpoint is the greatest value of the incremental field synced, with
// the external ids of the records at exactly that value. A run starts a Sync
// at the stored checkpoint (or incremental.start), asks from its value
// inclusive, and for each record calls Keep, which skips the records the
// checkpoint covers (older values, and the known ids at its value) and moves
// the run's new checkpoint past the others. Values compare as instants when
// they parse as RFC 3339 times, else as numbers (exactly), else as strings.
// So records sharing one updated_at across a page or run boundary are
// neither lost nor written twice. A Sync is stored (String, ParseSync) with
// each page's writes: a run killed mid-way resumes at its cursor, and a
// completed run's Next starts the following one from the new checkpoint.
//
// # Schedules
//
// ParseSchedule reads "every <duration>" or a cron expression (UTC unless it
// begins with CRON_TZ=) into a Schedule, which River's periodic jobs take as
// a river.PeriodicSchedule. Service registers one periodic job per enabled
// connector with a schedule when the job client starts, adds and removes
// them as connectors change on this replica at once and on others within
// ReconcileEvery; River inserts periodic jobs on its leader only, so each
// scheduled run is inserted once however many replicas run. A scheduled
// run that finds the previous one still active is skipped.
//
// # Runs
//
// Service (New) holds connectors' definitions in a Store, runs them as
// River jobs and writes through the record pipeline (records.Pipeline, or a
// host's own). A run takes the connector under a lease: BeginConnectorRun
// refuses a second run while one is queued or running (ErrRunActive), the
// worker renews the lease while it works, and every page's commit and the
// run's finish require the worker's token, so a worker that lost its lease
// writes nothing more. A run whose worker died is queued again by a sweep
// on the leader once its lease (Config.Lease, 30 s) has run out, and resumes
// after its last committed page.
//
// Each page is written as one all-or-none batch: one upsert per target of
// each upstream record, with ref() to an earlier target of the same record
// as a batch ref, and the page's checkpoint stored by the batch's Commit in
// the same transaction. A record the mapping or the pipeline refuses
// (validation, a duplicate unique value, a ref to no record) is taken out
// and the page written again without it; it is logged in the run's failures
// and the checkpoint passes it, so it comes back when it changes upstream or
// after a reset. A refusal that is not about one record stops the run with
// nothing of the page written: the plan's record cap (plan_limit_exceeded),
// or the database. A failed run leaves the checkpoint where the run began;
// the next run reads from there, and finds what the failed one wrote
// unchanged.
//
// Preview runs the first page of the next run through the same code, the
// pipeline's batch as a dry run (validation, rules and plan limits run,
// nothing is kept, the checkpoint is not stored).
//
// Unchanged records: the connector keeps, per record it wrote, a hash of
// what it asked the pipeline to write and the version that write left. A
// record whose mapped fields hash the same, and whose stored version is
// still that one (nobody changed it since), is counted unchanged without a
// call to the pipeline, which would find nothing to change; any other goes
// through the pipeline, which itself writes nothing (no version, audit
// entry or event) for fields equal to what is stored. Reset forgets the
// hashes, so a run after it passes every record through the pipeline
// (after a change of rules, say).
//
// Full mode reads everything every run and marks each record seen in its
// page's transaction. After a complete run, with deletes "delete" or
// "flag", the connector's records not seen are deleted through the pipeline
// or get FlagField, unless they are more than MaxDeleteRatio of the
// connector's records: then nothing is deleted and the run's notes say why.
// A failed run deletes nothing.
package connector
