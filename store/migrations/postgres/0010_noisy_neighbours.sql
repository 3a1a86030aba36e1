-- Record lists filtered on fields match by JSON containment
-- (fields @> '{"stage":"Closed Won"}'), which this index serves:
-- jsonb_path_ops indexes each value with its path, smaller and quicker for
-- @> than the default operator class, which also serves key-exists
-- operators no query here uses.

CREATE INDEX records_fields_idx ON records USING GIN (fields jsonb_path_ops);
