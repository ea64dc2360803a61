-- 日研判: one digest per county per Beijing day. The primary key makes the daily job idempotent across
-- restarts and several audit processes (the first INSERT wins; the others do nothing). Written once,
-- never changed: the audit login has SELECT and INSERT only (grants.sql), like the trace.
CREATE TABLE IF NOT EXISTS digests (
    county      text        NOT NULL,
    day         date        NOT NULL,
    produced_at timestamptz NOT NULL DEFAULT now(),
    indicators  text        NOT NULL,  -- the version of the rules it was made with
    content     jsonb       NOT NULL,
    PRIMARY KEY (county, day)
);
