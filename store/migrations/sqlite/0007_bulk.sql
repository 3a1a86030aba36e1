-- Bulk jobs: the job, its uploaded data kept as chunks of the raw bytes
-- (so a job survives a crash and any replica can run it), and one result
-- per processed row. A job's chunks and results go with it.

CREATE TABLE bulk_jobs (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    object        TEXT NOT NULL,
    operation     TEXT NOT NULL,
    mode          TEXT NOT NULL,
    validate_only INTEGER NOT NULL DEFAULT 0,
    format        TEXT NOT NULL,
    state         TEXT NOT NULL,
    actor         TEXT NOT NULL,
    undo_of       TEXT NOT NULL DEFAULT '',
    row_count     INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL DEFAULT 0,
    chunks        INTEGER NOT NULL DEFAULT 0,
    processed     INTEGER NOT NULL DEFAULT 0,
    succeeded     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    heartbeat_at  TEXT
);

CREATE INDEX bulk_jobs_workspace_idx ON bulk_jobs (workspace_id, id);
CREATE INDEX bulk_jobs_state_idx ON bulk_jobs (state, heartbeat_at);

CREATE TABLE bulk_chunks (
    job_id TEXT NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE bulk_results (
    job_id    TEXT NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    row_num   INTEGER NOT NULL,
    status    TEXT NOT NULL,
    record_id TEXT NOT NULL DEFAULT '',
    action    TEXT NOT NULL DEFAULT '',
    version   INTEGER NOT NULL DEFAULT 0,
    error     TEXT,
    before_fields TEXT,
    PRIMARY KEY (job_id, row_num)
);

CREATE INDEX bulk_results_status_idx ON bulk_results (job_id, status, row_num);
