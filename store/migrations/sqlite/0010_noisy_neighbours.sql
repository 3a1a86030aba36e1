-- SQLite has no index that serves a filter on any JSON field (an index on
-- an expression serves one named field, and objects' fields are the host's
-- to define), so filtered record lists scan the object's records. They are
-- bounded instead: they run on a pool of their own, a few at a time, under
-- a timeout (see ExpensiveReads in the store package). This migration
-- holds no statement; it keeps the dialects' migration lists alike.
SELECT 1;
