-- Outbound webhooks: endpoints, one delivery per (event, endpoint), and the
-- log of every attempt. Deleting an endpoint deletes its log.

CREATE TABLE webhook_endpoints (
    id                         TEXT COLLATE "C" PRIMARY KEY,
    workspace_id               TEXT COLLATE "C" NOT NULL,
    url                        TEXT NOT NULL,
    events                     JSONB NOT NULL,
    objects                    JSONB NOT NULL,
    condition                  JSONB,
    description                TEXT NOT NULL DEFAULT '',
    enabled                    BOOLEAN NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT NOT NULL DEFAULT '',
    previous_secret_expires_at TIMESTAMPTZ,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL,
    disabled_at                TIMESTAMPTZ,
    disabled_reason            TEXT NOT NULL DEFAULT '',
    failing_since              TIMESTAMPTZ
);

CREATE INDEX webhook_endpoints_workspace_idx ON webhook_endpoints (workspace_id, id);

CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    workspace_id    TEXT COLLATE "C" NOT NULL,
    endpoint_id     TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT COLLATE "C" NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    CONSTRAINT webhook_deliveries_event_endpoint_key UNIQUE (event_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_workspace_idx ON webhook_deliveries (workspace_id, id);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (workspace_id, status, created_at);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    delivery_id      TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    at               TIMESTAMPTZ NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      INTEGER NOT NULL DEFAULT 0,
    response_headers JSONB,
    response_body    TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    error_kind       TEXT NOT NULL DEFAULT '',
    triggered_by     TEXT NOT NULL,
    PRIMARY KEY (delivery_id, number)
);
