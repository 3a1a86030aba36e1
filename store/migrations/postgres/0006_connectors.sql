-- Pull connectors: their definitions with the sync state and the run lock
-- (which run holds the connector, the token of the worker running it and
-- until when), the run log, and per connector the records it wrote: the
-- hash of what it last wrote and the version that write left, which tell a
-- record unchanged upstream and untouched since, and the last run that saw
-- it, which tells a full run what disappeared upstream. A connector's
-- deletion deletes its runs and that knowledge; the records stay.

CREATE TABLE connectors (
    id               TEXT COLLATE "C" PRIMARY KEY,
    workspace_id     TEXT COLLATE "C" NOT NULL,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    settings         TEXT NOT NULL,
    -- A JSON object of header name to value, each value sealed when the
    -- store has a secret key.
    headers          TEXT NOT NULL DEFAULT '',
    schedule         TEXT NOT NULL DEFAULT '',
    mode             TEXT NOT NULL,
    deletes          TEXT NOT NULL,
    max_delete_ratio DOUBLE PRECISION NOT NULL,
    mapping          TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    state            TEXT NOT NULL DEFAULT '',
    active_run_id    TEXT COLLATE "C",
    lease_token      TEXT NOT NULL DEFAULT '',
    lease_until      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX connectors_workspace_idx ON connectors (workspace_id, id);
CREATE INDEX connectors_lease_idx ON connectors (lease_until) WHERE active_run_id IS NOT NULL;

CREATE TABLE connector_runs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL,
    connector_id  TEXT COLLATE "C" NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    trigger       TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    pages         BIGINT NOT NULL DEFAULT 0,
    created       BIGINT NOT NULL DEFAULT 0,
    updated       BIGINT NOT NULL DEFAULT 0,
    unchanged     BIGINT NOT NULL DEFAULT 0,
    deleted       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    cursor_before TEXT NOT NULL DEFAULT '',
    cursor_after  TEXT NOT NULL DEFAULT '',
    error         TEXT NOT NULL DEFAULT '',
    failures      TEXT NOT NULL DEFAULT '',
    notes         TEXT NOT NULL DEFAULT ''
);

CREATE INDEX connector_runs_workspace_idx ON connector_runs (workspace_id, id);
CREATE INDEX connector_runs_connector_idx ON connector_runs (connector_id, id);

CREATE TABLE connector_records (
    connector_id TEXT COLLATE "C" NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    object       TEXT COLLATE "C" NOT NULL,
    external_id  TEXT COLLATE "C" NOT NULL,
    hash         TEXT NOT NULL DEFAULT '',
    version      BIGINT NOT NULL DEFAULT 0,
    seen_run     TEXT COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (connector_id, object, external_id)
);
