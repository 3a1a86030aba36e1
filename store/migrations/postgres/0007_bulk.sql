-- Bulk jobs: the job, its uploaded data kept as chunks of the raw bytes
-- (so a job survives a crash and any replica can run it), and one result
-- per processed row. A job's chunks and results go with it.

CREATE TABLE bulk_jobs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL,
    object        TEXT NOT NULL,
    operation     TEXT NOT NULL,
    mode          TEXT NOT NULL,
    validate_only BOOLEAN NOT NULL DEFAULT FALSE,
    format        TEXT NOT NULL,
    state         TEXT NOT NULL,
    actor         JSONB NOT NULL,
    undo_of       TEXT COLLATE "C" NOT NULL DEFAULT '',
    row_count     BIGINT NOT NULL DEFAULT 0,
    bytes         BIGINT NOT NULL DEFAULT 0,
    chunks        INTEGER NOT NULL DEFAULT 0,
    processed     BIGINT NOT NULL DEFAULT 0,
    succeeded     BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    heartbeat_at  TIMESTAMPTZ
);

CREATE INDEX bulk_jobs_workspace_idx ON bulk_jobs (workspace_id, id);
CREATE INDEX bulk_jobs_state_idx ON bulk_jobs (state, heartbeat_at);

CREATE TABLE bulk_chunks (
    job_id TEXT COLLATE "C" NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE bulk_results (
    job_id    TEXT COLLATE "C" NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    row_num   BIGINT NOT NULL,
    status    TEXT NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    action    TEXT NOT NULL DEFAULT '',
    version   BIGINT NOT NULL DEFAULT 0,
    error     JSONB,
    before_fields JSONB,
    PRIMARY KEY (job_id, row_num)
);

CREATE INDEX bulk_results_status_idx ON bulk_results (job_id, status, row_num);
