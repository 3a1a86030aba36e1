// Package outbound delivers record events to the webhook endpoints of each
// workspace: durably, at least once, signed, with a log of every attempt.
//
// # Endpoints
//
// An Endpoint names a URL, the event types it wants ("record.created",
// "record.updated", "record.deleted", "record.*" or "*"), optionally the
// objects it wants and a Condition such as "stage changed to Closed Won",
// which matches the update that made the change and not the ones after it.
// Service.Create answers the endpoint's secret ("whsec_" and base64 of 32
// random bytes) once; it is stored so deliveries can be signed, and never
// shown again. RotateSecret issues a new one; for the grace period the
// caller chooses both secrets sign every delivery, so a receiver can switch
// without dropping any. With Config.KnownObject, the object names an
// endpoint lists must be objects of the schema; with Config.KnownField, a
// condition's field must be a field of each of them (without objects, any
// field is taken).
//
// What an endpoint stores is bounded, since it is read on every event of
// its workspace: the URL (MaxURLLength bytes), events (MaxEvents),
// objects (MaxObjects, each name at most MaxNameLength characters), the
// description (MaxDescriptionLength), condition.field (MaxNameLength) and
// condition.changed_to, which is a scalar as record fields are: a string of
// at most MaxConditionValueLength characters, a number, a bool or nil. A
// value over its bound is a *records.ValidationError naming the field with
// code "max" ("type" for a changed_to that is a list or an object), and a
// list over its bound is one error, not one per entry.
//
// # Delivery
//
// The store enqueues a records.FanoutArgs job in the transaction of every
// record write. Its worker reads the event with the enabled endpoints of the
// workspace and makes one Delivery for each that matches; a delivery is
// unique per (event, endpoint), so a fan-out that runs again makes none
// twice. To a healthy endpoint whose last attempt was quick, fan-out makes
// the first attempt itself and then stores the delivery with that attempt
// (and, if it failed, the DeliverArgs job of its retry) in one write: the
// happy path costs no second trip through the queue. Other endpoints get
// their delivery and its DeliverArgs job stored in one transaction, for the
// delivery queue to work. Every attempt POSTs the event's JSON
// (records.Event's MarshalJSON) with the signature headers of package
// webhook (X-SmartLite-Signature; webhook-id, which is the event id,
// webhook-timestamp and webhook-signature of Standard Webhooks) and
// X-SmartLite-Event, X-SmartLite-Delivery, User-Agent and Content-Type.
// Each attempt is signed at the time it is made, so a retry hours later is
// still within a receiver's tolerance.
//
// A 2xx answer within the timeout (10 s by default) is success. Anything else
// is a failed attempt: other statuses, redirects (never followed: a public
// URL could otherwise bounce a delivery to a private address), timeouts and
// network errors, which the log classifies (dns, refused, timeout, tls,
// connection, blocked_address, network). Failed attempts are retried after
// the waits of Config.Schedule (DefaultSchedule: 5 s, 5 min, 30 min, 2 h,
// 5 h, 10 h, 10 h), each lengthened by up to Config.Jitter of itself; a 429
// or 503 with Retry-After waits what the receiver asked instead (up to a
// day). When retries run out the delivery is failed. A 410 Gone disables the
// endpoint at once; so does failing without a single success for
// Config.DisableAfter (5 days by default). Either way the endpoint records
// when and why, and a log line with event=webhook.endpoint_disabled is
// written at warning level.
//
// Delivery is at least once; receivers deduplicate by webhook-id. A process
// killed mid-attempt leaves its fan-out and delivery jobs marked running in
// River's table (until its inline attempt is stored, the running fan-out job
// is all there is of a delivery). River's rescuer would retry them after
// RescueStuckJobsAfter, which hosts keep long (an hour by default) so that
// their own long jobs are not run twice; outbound does not wait for it. Its
// jobs have timeouts of their own (fan-out the attempt timeout plus 10 s,
// delivery plus 5 s), so one still running 10 s past those belongs to a dead
// process: a periodic orphan sweep (every OrphanSweepInterval, on River's
// leader) queues a fresh job for the same work and cancels the orphan. After a
// crash, deliveries resume within about half a minute of the restart (or on
// a surviving replica, once River's leadership, which lasts up to 15 s, has
// passed to it).
//
// # The delivery log
//
// Every attempt is kept with its number, time, duration, status code,
// response headers, the first 4 KiB of the response body (as valid UTF-8) or
// the classified error, and its trigger: scheduled (fan-out and retries),
// manual (Redeliver, and SendTest, which is answered directly and not kept),
// or replay (Replay, which sends again every failed delivery since a time).
// Finished deliveries older than Config.Retention (30 days by default) are
// removed by a periodic job; pending ones are kept until they finish.
//
// # Addresses
//
// Endpoint URLs must be http or https. An AddressPolicy refuses loopback,
// private, link-local, shared, multicast, unspecified, reserved and cloud
// metadata addresses twice: when an endpoint is registered (every address its
// host resolves to), and when a delivery connects (net.Dialer's Control sees
// the address actually dialled, which defeats DNS rebinding). Proxies from the
// environment are not used, since a proxy would connect unchecked.
// Config.AllowPrivate opts into loopback, private, link-local and shared
// addresses for local testing (the reference server's -allow-private-webhooks
// flag); metadata, multicast, unspecified and reserved addresses stay refused
// even then. Registration refusals are *records.ValidationError on the url
// field, which the API answers 422, naming the flag.
//
// # Running it
//
// The host owns the River client. Register the workers, add PeriodicJobs,
// let RiverConfig fill in the settings prompt delivery needs, create the
// client on the store, then hand it to SetClient:
//
//	workers := river.NewWorkers()
//	if err := svc.Register(workers); err != nil { ... }
//	cfg := &river.Config{Workers: workers, PeriodicJobs: svc.PeriodicJobs()}
//	svc.RiverConfig(cfg)
//	client, err := st.NewJobClient(cfg)
//	svc.SetClient(client)
//	err = client.Start(ctx)
//
// RiverConfig leaves JobTimeout and RescueStuckJobsAfter to the host.
// Delivery jobs run on queues of their own: Config.DeliveryShards of them
// (DefaultQueue, then DefaultQueue_1 to _7 by default; one on SQLite, see
// the field), a workspace's on the one a hash of its id picks, RiverMaxWorkers workers per process shared evenly among
// them, so one workspace's backlog waits in its own queue while the others'
// deliveries go on. Fan-out makes inline attempts only to endpoints
// answering within a second, so slow receivers do not hold up fan-out, and
// at most 16 per event, so an event to a workspace's 2,000 endpoints is one
// write of 2,000 deliveries and their jobs, not 2,000 attempts at once.
// Several processes on one Postgres share the work: each job is locked by
// one of them, so each delivery is made once, not once per process.
//
// # Wake-ups
//
// A committed write does not wait for a poll. The store's job clients have
// a listener (River's notifier runs on it): a transaction the store runs
// notes the queues it made jobs available on, and once it has committed,
// every job client of the store in the process fetches at once. On
// Postgres the store then sends River's insert notification (pg_notify,
// once per queue, committed without waiting for disk), and each job client
// holds a pgx connection of its own that LISTENs for it, so the other
// replicas wake too; a process skips the notifications it sent itself,
// having woken in process already. The notification follows the commit
// rather than riding in the transaction: Postgres holds a database-wide
// lock from a notifying transaction's commit until it is on disk, so
// notifying writers commit one at a time (with 16 writers the write time
// went from about 11 ms to 33 ms). River's own notification, sent in the
// transaction at most once per fetch cooldown from each client, would also
// leave writes in that gap to the workers' poll whenever the writer works
// no jobs itself.
//
// River's own pgx driver (riverpgxv5) cannot serve: its client takes
// pgx.Tx, and the record's transaction is bun's *sql.Tx, so the fan-out job
// and its notification could not share it. riverdatabasesql with River's
// pgx listener (NewWithPgxListener) shares the transaction but hears the
// writer's own commit only back through Postgres, with River's rate limit
// on the notifications, and does nothing for SQLite. The store's listener
// covers both dialects alike: in process on SQLite, in process and through
// Postgres on Postgres. Measured on a durable Postgres (fsync on) at 200
// writes/s on a shared, busy 2-core machine, commit-to-receipt went from a
// median of 12-17 ms to 3-6 ms (see the load tool's webhooks scenario);
// from the write's acknowledgement to receipt, from 10 ms to about 2 ms.
//
// Polling stays as the fallback: the default queue, where fan-out runs,
// is polled every second (Config.PollInterval), so a lost notification (a
// listener reconnecting, a host committing PublishTx's transaction itself,
// which the store does not see) delays fan-out by up to that, and loses
// nothing. The delivery queues are polled ten times a second together
// (each of eight every 800 ms): a retry due in a few seconds is a job made available
// for a later time, which only a poll finds. Idle, that is about eleven
// fetches a second, against a hundred and ten when the default queue was
// polled every 10 ms.
package outbound
