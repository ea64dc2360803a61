-- Every batch rewrites the summaries of its cases: most events change only what no index covers
-- (event count, last event, status). Such an update is a HOT update — the new row version goes on
-- the same page and no index is touched — when no indexed column changes and the page has room.
-- The attention index was keyed by last_event_at, which every event changes, so every update wrote
-- every index; keyed by case id it changes only when a case enters or leaves the (short) list, which
-- is sorted by last activity after the index finds it. Pages keep 30 % free for the new versions
-- (for pages written from now on; `VACUUM FULL case_summaries` rewrites the old ones).
DROP INDEX IF EXISTS case_summaries_attention;
CREATE INDEX case_summaries_attention ON case_summaries (case_id)
    WHERE overdue OR escalations > 0 OR supervision <> 'white';
ALTER TABLE case_summaries SET (fillfactor = 70);
