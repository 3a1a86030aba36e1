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
// a river.PeriodicSchedule.
package connector
