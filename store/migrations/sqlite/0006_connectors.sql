-- Pull connectors: their definitions with the sync state and the run lock
-- (which run holds the connector, the token of the worker running it and
-- until when), the run log, and per connector the records it wrote: the
-- hash of what it last wrote and the version that write left, which tell a
-- record unchanged upstream and untouched since, and the last run that saw
-- it, which tells a full run what disappeared upstream. A connector's
-- deletion deletes its runs and that knowledge; the records stay.

CREATE TABLE connectors (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    settings         TEXT NOT NULL,
    -- A JSON object of header name to value, each value sealed when the
    -- store has a secret key.
    headers          TEXT NOT NULL DEFAULT '',
    schedule         TEXT NOT NULL DEFAULT '',
    mode             TEXT NOT NULL,
    deletes          TEXT NOT NULL,
    max_delete_ratio REAL NOT NULL,
    mapping          TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    state            TEXT NOT NULL DEFAULT '',
    active_run_id    TEXT,
    lease_token      TEXT NOT NULL DEFAULT '',
    lease_until      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE INDEX connectors_workspace_idx ON connectors (workspace_id, id);
CREATE INDEX connectors_lease_idx ON connectors (lease_until) WHERE active_run_id IS NOT NULL;

CREATE TABLE connector_runs (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    connector_id  TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    trigger       TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    pages         INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    cursor_before TEXT NOT NULL DEFAULT '',
    cursor_after  TEXT NOT NULL DEFAULT '',
    error         TEXT NOT NULL DEFAULT '',
    failures      TEXT NOT NULL DEFAULT '',
    notes         TEXT NOT NULL DEFAULT ''
);

CREATE INDEX connector_runs_workspace_idx ON connector_runs (workspace_id, id);
CREATE INDEX connector_runs_connector_idx ON connector_runs (connector_id, id);

CREATE TABLE connector_records (
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    object       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    hash         TEXT NOT NULL DEFAULT '',
    version      INTEGER NOT NULL DEFAULT 0,
    seen_run     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connector_id, object, external_id)
);
