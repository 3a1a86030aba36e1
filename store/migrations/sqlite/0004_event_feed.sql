-- The event feed reads events in commit order. SQLite runs one write
-- transaction at a time, so the order rows were inserted in (their rowid)
-- is the order they committed in; this index walks a workspace's events in
-- rowid order.

CREATE INDEX events_feed_idx ON events (workspace_id);
