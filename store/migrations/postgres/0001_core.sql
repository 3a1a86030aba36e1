-- Core tables: workspaces, records and what hangs off them.
-- Ids are compared byte by byte (COLLATE "C") so that time-sortable ids keep
-- their order whatever the database's locale; cursors depend on it.

CREATE TABLE workspaces (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL DEFAULT '',
    plan         TEXT NOT NULL DEFAULT '',
    record_count BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE records (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    object       TEXT NOT NULL,
    external_id  TEXT,
    version      BIGINT NOT NULL,
    fields       JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT records_external_id_key UNIQUE (workspace_id, object, external_id)
);

CREATE INDEX records_list_idx ON records (workspace_id, object, id);
CREATE INDEX records_updated_idx ON records (workspace_id, object, updated_at, id);

CREATE TABLE record_unique_values (
    workspace_id TEXT COLLATE "C" NOT NULL,
    object       TEXT NOT NULL,
    field        TEXT NOT NULL,
    value        TEXT NOT NULL,
    record_id    TEXT COLLATE "C" NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, object, field, value)
);

CREATE INDEX record_unique_values_record_idx ON record_unique_values (record_id);

CREATE TABLE audit_entries (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL,
    object       TEXT NOT NULL,
    record_id    TEXT COLLATE "C" NOT NULL,
    action       TEXT NOT NULL,
    source       TEXT NOT NULL,
    actor        JSONB NOT NULL,
    changes      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX audit_entries_workspace_idx ON audit_entries (workspace_id, id);
CREATE INDEX audit_entries_record_idx ON audit_entries (workspace_id, record_id, id);

CREATE TABLE events (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL,
    type         TEXT NOT NULL,
    object       TEXT NOT NULL,
    record_id    TEXT COLLATE "C" NOT NULL,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX events_workspace_idx ON events (workspace_id, id);
