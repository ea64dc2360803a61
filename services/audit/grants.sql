-- Audit's login (onewindow_audit) on its tables, after the plumbing's grants (shared/messaging/grants.sql);
-- see shared.db.migrate, which revokes everything first and runs this after every migration run.
--
-- Append-only by default: SELECT and INSERT on every table of the schema, so a table a later migration
-- adds (a checkpoint chain, verification jobs) starts append-only too. What must change is granted
-- UPDATE by name below; never DELETE or TRUNCATE. The trace (events, dead_letters, checkpoints) stays
-- SELECT, INSERT: its login cannot rewrite, delete, truncate it, nor disable its triggers (owner only).
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA :"schema" TO :"role";
REVOKE ALL ON :"schema".schema_migrations FROM :"role";  -- the migrations' own bookkeeping
-- A projection folded from the events in the same transaction (upsert): derived and rebuildable.
GRANT UPDATE ON :"schema".case_summaries TO :"role";
