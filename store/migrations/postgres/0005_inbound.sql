-- Inbound webhooks: the sources that may post, the log of every accepted
-- delivery (its raw body, its headers with secrets redacted, and what
-- processing it wrote), and per record the time of the newest document
-- applied to it, so that an older one arriving late does not overwrite it.
-- A source's deletion deletes its log.

CREATE TABLE inbound_sources (
    id                         TEXT COLLATE "C" PRIMARY KEY,
    workspace_id               TEXT COLLATE "C" NOT NULL,
    name                       TEXT NOT NULL,
    kind                       TEXT NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT NOT NULL DEFAULT '',
    previous_secret_expires_at TIMESTAMPTZ,
    mapping                    JSONB NOT NULL,
    enabled                    BOOLEAN NOT NULL,
    max_body_bytes             BIGINT NOT NULL,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);

CREATE INDEX inbound_sources_workspace_idx ON inbound_sources (workspace_id, id);

CREATE TABLE inbound_events (
    id              TEXT COLLATE "C" PRIMARY KEY,
    workspace_id    TEXT COLLATE "C" NOT NULL,
    source_id       TEXT COLLATE "C" NOT NULL REFERENCES inbound_sources (id) ON DELETE CASCADE,
    -- The sender's delivery id (X-Shopify-Webhook-Id, webhook-id): a second
    -- delivery with the same one is a duplicate. NULL when there is none.
    dedup_key       TEXT COLLATE "C",
    status          TEXT NOT NULL,
    headers         JSONB NOT NULL,
    body            BYTEA NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    processed_at    TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    duplicates      INTEGER NOT NULL DEFAULT 0,
    written         JSONB,
    error           JSONB,
    CONSTRAINT inbound_events_dedup_key UNIQUE (source_id, dedup_key)
);

CREATE INDEX inbound_events_workspace_idx ON inbound_events (workspace_id, id);
CREATE INDEX inbound_events_source_idx ON inbound_events (source_id, id);
CREATE INDEX inbound_events_received_idx ON inbound_events (received_at);

CREATE TABLE inbound_applied (
    workspace_id TEXT COLLATE "C" NOT NULL,
    object       TEXT COLLATE "C" NOT NULL,
    external_id  TEXT COLLATE "C" NOT NULL,
    -- The document's time in microseconds since 1970, compared as a number.
    doc_time     BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, object, external_id)
);
