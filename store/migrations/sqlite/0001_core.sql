-- Core tables: workspaces, records and what hangs off them.
-- Times are TEXT in bun's UTC format ("2006-01-02 15:04:05.999999+00:00"),
-- which sorts in time order; JSON columns are TEXT read with json_extract.

CREATE TABLE workspaces (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL DEFAULT '',
    plan         TEXT NOT NULL DEFAULT '',
    record_count INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);

CREATE TABLE records (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    object       TEXT NOT NULL,
    external_id  TEXT,
    version      INTEGER NOT NULL,
    fields       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT records_external_id_key UNIQUE (workspace_id, object, external_id)
);

CREATE INDEX records_list_idx ON records (workspace_id, object, id);
CREATE INDEX records_updated_idx ON records (workspace_id, object, updated_at, id);

CREATE TABLE record_unique_values (
    workspace_id TEXT NOT NULL,
    object       TEXT NOT NULL,
    field        TEXT NOT NULL,
    value        TEXT NOT NULL,
    record_id    TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, object, field, value)
);

CREATE INDEX record_unique_values_record_idx ON record_unique_values (record_id);

CREATE TABLE audit_entries (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    object       TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    action       TEXT NOT NULL,
    source       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    changes      TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE INDEX audit_entries_workspace_idx ON audit_entries (workspace_id, id);
CREATE INDEX audit_entries_record_idx ON audit_entries (workspace_id, record_id, id);

CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    type         TEXT NOT NULL,
    object       TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE INDEX events_workspace_idx ON events (workspace_id, id);
