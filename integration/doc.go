// Package integration is crmkit's facade: it wires the record pipeline, API
// keys, rate limits, outbound webhooks and background jobs into one Service
// whose Handler a host application mounts.
//
//	st, _ := store.Open(ctx, "crmkit.db")
//	svc, _ := integration.New(integration.Config{Store: st})
//	_ = svc.Start(ctx)                      // background jobs
//	mux.Handle("/", svc.Handler())          // /api/v1/... and /healthz
//	...
//	_ = httpServer.Shutdown(ctx)
//	_ = svc.Stop(ctx)
//
// # Public interfaces
//
// Four small interfaces are the seams a host can replace: RecordPipeline
// (the one path every record write takes, batches included;
// *records.Pipeline by default), Store (persistence; *store.Store on
// Postgres or SQLite), Signer (webhook signatures; webhook.HMACSigner) and
// Poller (one page of an external API, for pull connectors). Signer and
// Poller are aliases of the interfaces outbound and connector define, the
// packages that consume them. JobQueue, which makes the job client on the
// store's database, is a seam of its own; *store.Store is one. A host with
// its own record service passes it as Config.Pipeline and reports the
// changes it makes outside crmkit with Service.Publish, inside its own
// transaction. integration links no database driver: a host with its own
// Store pulls in no bun, pgx or SQLite.
//
// # Features
//
// A Service is built from features (records, keys, audit, webhooks), each
// contributing its routes, their OpenAPI schemas, its workers and its
// periodic jobs. New lists them explicitly; nothing is registered in package
// state, so two Services in one process share nothing.
//
// # REST API v1
//
// Every route is one entry of a single route table: method, path pattern,
// the API key scope it needs, its handler, and what the OpenAPI document
// says about it. The mux is built from the table and so is the document
// served at GET /api/v1/openapi.json, so the two cannot drift apart.
//
//	GET    /api/v1/records/{object}                       READ    ?limit= ?cursor= ?filter[field]= ?updated_since=
//	GET    /api/v1/records/{object}/{id}                  READ
//	POST   /api/v1/records/{object}                       WRITE   201
//	PATCH  /api/v1/records/{object}/{id}                  WRITE   If-Match: "<version>" optional
//	PUT    /api/v1/records/{object}/external/{external_id} WRITE  201 created, 200 updated
//	DELETE /api/v1/records/{object}/{id}                  DELETE  204
//	POST   /api/v1/keys, GET /api/v1/keys[/{id}],
//	DELETE /api/v1/keys/{id}, POST /api/v1/keys/{id}/rotate ADMIN
//	GET    /api/v1/audit                                  ADMIN   ?record_id= ?limit= ?cursor=
//	GET    /api/v1/openapi.json, GET /healthz             no key
//
// Record writes go through the pipeline with source "api" and the calling
// key as actor ({"kind":"api_key","id":"key_…"}), so they are validated,
// run the workflow rules, count against the plan, are audited and publish
// their webhook events like any other write.
//
// Choices the design left open:
//
//   - Lists answer {"data":[...],"next_cursor":"…"} oldest first; next_cursor
//     is null on the last page. A limit above 200 is lowered to 200 rather
//     than refused; an unknown query parameter is refused (400), so a
//     misspelt filter does not silently match everything.
//   - Request bodies must be one JSON value; unknown members are refused
//     (400 invalid_json), whatever the Content-Type says.
//   - Record responses carry the version as ETag ("3"), ready for If-Match.
//     If-Match accepts 3, "3" and W/"3"; * or no header means any version.
//   - DELETE /api/v1/keys/{id} answers 200 with the revoked key's metadata;
//     rotation answers 201 with the new key, whose plaintext is shown once.
//     A grace period is at most 7 days.
//   - Creating a key needs ADMIN, and a key can never grant a scope it does
//     not hold itself.
//
// # Errors
//
// Every error is an RFC 9457 problem document (application/problem+json)
// with a stable code, written in one place (Service.writeError):
//
//	400 invalid_json, invalid_parameter, invalid_if_match
//	401 unauthorized               (the same body whatever was wrong with the key)
//	403 missing_scope              (the body names the scope), plan_limit_exceeded
//	                               (for keys and webhook endpoints the body's "limit" names
//	                               what: api_keys, webhook_endpoints)
//	404 not_found                  (unknown route, object or id, and another workspace's id)
//	405 method_not_allowed         (with Allow)
//	409 version_conflict, duplicate, key_inactive
//	413 body_too_large             (Config.MaxBodyBytes, default 1 MiB)
//	422 validation_failed          (errors: [{field, code, message}], at most 100; errors_omitted counts the rest)
//	429 rate_limited               (Retry-After; "limit": key or workspace)
//	500 internal                   (logged; the body says nothing of the cause)
//	503 busy, query_timeout        (Retry-After; a filtered record list found as many running
//	                               as the store allows, or ran past its statement timeout)
//
// # Middleware
//
// A route with a scope runs behind apikey.Authenticate, then the rate
// limiter (ratelimit, keyed by key id, the limit picked by the plan of the
// key's workspace), then the workspace's (keyed by workspace id, at the
// plan's WorkspaceRequestsPerMinute, so that more keys do not mean more
// requests), then apikey.RequireScope. The plan is read through the
// records.Plans the default pipeline's record cap reads too, cached for
// Config.PlanCacheTTL (2 s), so a plan change applies without a restart;
// Service.SetPlan applies it to both at once on this replica. Every
// request, authenticated or not, gets one structured access log line with
// the method, route pattern, status, size, duration and key id, and never
// the key, a header or the query string.
//
// # Background jobs
//
// Start creates the River client on the store's database (Config.Jobs)
// with the workers and periodic jobs of the features, and starts it; Stop stops it after
// the HTTP server has drained, and waits for pending key bookkeeping.
package integration
