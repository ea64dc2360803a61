-- 日研判 reads a county's day of a few event types by broker time, every day for every county: a
-- partial index on just those types (a small share of the trace; the rest pay no write cost for it).
-- The expression is the one the metrics and the digest queries count by.
CREATE INDEX IF NOT EXISTS events_digest_time ON events ((coalesce(broker_time, time)))
    WHERE type IN ('org.onewindow.risk.identified.v1', 'org.onewindow.risk.changed.v1',
                   'org.onewindow.case.received.v1', 'org.onewindow.supervision.notice.v1',
                   'org.onewindow.case.escalated.v1', 'org.onewindow.case.duplicate_reported.v1');
