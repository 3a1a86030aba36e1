-- The event feed reads events in commit order. An event's txid is the id of
-- the transaction that wrote it; the feed answers only events of
-- transactions older than every transaction still running (the snapshot's
-- xmin), ordered by (txid, id), so a page once read never gains an event
-- before its end.

ALTER TABLE events ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);

CREATE INDEX events_feed_idx ON events (workspace_id, txid, id);
