// Package console is crmkit's admin web console: the product guide's
// Integrations screens (API Keys, Webhooks with their delivery log, Inbound
// sources and their log, Connectors and their run log, Imports, the audit
// log) as server-rendered pages, in one http.Handler a host mounts.
//
//	h, err := console.New(console.Config{Keys: svc.Keys(), Webhooks: svc.Webhooks(), Audit: st,
//		Inbound: svc.Inbound(), Connectors: svc.Connectors(), Imports: svc.Importer()})
//	mux.Handle("/", h)
//
// # Features
//
// The console consumes small interfaces it defines (Keys, Webhooks,
// Inbound, Connectors, Imports, AuditLog), which crmkit's own services
// satisfy (*apikey.Service, *outbound.Service, *ingest.Inbound,
// *connector.Service, *ingest.Importer, *store.Store). Keys is required;
// any other that is nil leaves its pages and navigation entry out.
//
// # Signing in
//
// By default a person signs in by pasting an API key with the ADMIN scope.
// The key is verified once and exchanged for a server-side session: the
// browser keeps only a random 32-byte session token in a cookie (HttpOnly,
// SameSite=Strict, Secure over TLS or with Config.SecureCookie), and the
// SessionStore keeps only the token's SHA-256. The key is sent in the body
// of one POST, never in a URL; it is never rendered back, not even into
// the form when it is refused, and never logged. A session ends after
// Config.IdleTimeout without use (default 30 minutes), Config.MaxAge after
// sign-in (default 12 hours), on sign-out, or as soon as its key is revoked
// or expires. Sessions live in this process's memory unless
// Config.Sessions holds a shared SessionStore.
//
// A host with its own sign-in sets Config.Authenticator, which answers the
// workspace and actor of each request; the console then has no sign-in or
// sign-out page and sends strangers to Config.SignInURL.
//
// Every page shows the signed-in workspace's data only: each service call
// names that workspace, and another workspace's key, endpoint or delivery
// id answers 404 as if it did not exist.
//
// # Forms and CSRF
//
// Every form works without JavaScript and carries a CSRF token, checked on
// every POST: the session's random token, or for an Authenticator's
// identities a MAC of the identity (see Identity.Session). Cross-site
// POSTs that browsers label as such are refused even before that, by
// net/http's CrossOriginProtection. Errors a service answers about a field
// (*records.ValidationError) are shown beside that field, with the
// entered values kept; conflicts are shown at the top of the form.
//
// Pages are sent with Cache-Control: no-store and a Content-Security-Policy
// that allows only the console's own scripts and styles. The embedded htmx
// (static/htmx.min.js, htmx.org 2.x) updates the delivery log in place when
// it is filtered; without it the same form reloads the page.
//
// # One-time secrets
//
// A new key's plaintext and a new webhook secret appear once, in the
// answer to the POST that made them, with a copy button (shown only when
// JavaScript runs; the text can be selected either way). Nothing keeps
// them afterwards.
//
// # Webhooks
//
// The list shows each endpoint's health: its last successful delivery and
// the share of failures among its last 50 finished deliveries. An
// endpoint's page has the test send, enable or disable, secret rotation
// (the old secret keeps signing for a grace period), replay of the failed
// deliveries since a time, a chart of the last 24 hours' deliveries by
// hour and status (server-rendered SVG), and the delivery log, filtered
// by status and creation time, with each attempt's status code, duration,
// trigger, response headers and body or network error, and a Redeliver
// button. A condition's value is compared as text. Times are shown and
// entered in UTC.
//
// The page reads the endpoint's newest deliveries once, for its health,
// the log's first page and the chart. The chart counts with the Webhooks'
// DeliveryCounter when it has one (all of the 24 hours' deliveries, in one
// call); otherwise it reads on down the log and counts at most the latest
// 2,000 deliveries, and says so when there were more. Reading them, with
// their attempts, is most of the page's cost for a busy endpoint;
// BenchmarkDeliveryLogPage measures the page both ways for an endpoint with
// 100,000 deliveries.
//
// # Inbound
//
// The sources list shows each source's kind, the URL its sender posts to
// and its last event. New Source takes the kind (Shopify, Standard
// Webhooks, SmartLite), the secret where the kind takes one and the
// mapping; a secret the service generates is shown once. A source's page
// has the mapping editor beside a preview: the sample pasted is mapped
// with the mapping as it stands in the editor, saved or not, and dry-run
// through the pipeline, showing the records it would write or why a
// delivery would fail, and nothing is written. A mapping the service
// refuses lists its problems beside the editor, each naming its target and
// field. The page also enables and disables the source, rotates its
// secret and deletes it. The inbound log lists accepted deliveries newest
// first, filtered by source and status; an event's page shows its error,
// the records it wrote, its headers (signatures redacted) and body, and
// processes it again; failed events since a time are retried together.
//
// # Connectors
//
// A connector's form has fields for the common settings (URL, records
// path, an authentication header, pagination, incremental sync, the
// mapping as one "field = expression" a line, schedule and mode) and an
// Advanced JSON box for the rest. Header values are stored as secrets and
// never shown again: an edit that leaves the value empty keeps it. A
// connector's page previews the first page (what each record would
// become, nothing written), runs it now, resets its checkpoint, deletes it,
// and lists its runs with their counts; a run's page adds its checkpoints
// and the records that failed. Run now while a run is going answers the
// service's conflict beside the button; htmx refreshes the run log while a
// run is going.
//
// # Imports
//
// An import is three pages: the upload (an .xlsx or .csv file, the object,
// the operation, the sheet and header row); the column mapping, each
// column's select auto-mapped to the field of its name, with a preview of
// the first rows as they would be written and each cell that does not
// convert (nothing is written), and the validate-only and all-or-none
// options; then the job's page. A file the importer refuses (not a
// workbook, encrypted, over a limit) is named beside the file input and
// kept nowhere. The job's page shows a progress bar, which htmx refreshes
// every second from a fragment of the page while the job runs (without
// JavaScript, a Refresh link) beside a Stop button, then the results: the failed rows with
// their sheet row and error, a download of them as CSV (the file's own
// columns and the error), and undo.
//
// Between the pages the uploaded file stays spooled on this server's disk
// under a random token bound to the session that uploaded it: at most 3
// per session (a fourth replaces the oldest) and 16 in all, each within
// the importer's file size limit, removed when its import starts, when it
// is discarded, or 30 minutes after it was last used. Like the default
// sessions, they are this process's own. The upload is the one request
// whose body may be larger than 64 KiB: up to the file size limit.
//
// # Audit log
//
// The audit log lists every record write oldest first, with its source
// (api, bulk, import, inbound, connector, ui), its actor (an API key is
// shown by name) and its changes, filtered by record id, source and actor
// id. The filter by record is the AuditLog's, on its index; source and
// actor are matched on the entries read, and a page reads at most 5,000 of
// them: when a rare match leaves a page short, it says how far it read and
// links to the rest of the search.
package console
