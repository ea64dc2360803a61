-- Checkpoints in a chain: each signs its sequence number and the previous checkpoint's signature with
-- its own fields, so a deleted, reordered or swapped checkpoint shows. Rows from before keep seq NULL
-- and stay verifiable over their digest; the first chained checkpoint links to the last of them (or
-- to none). One signer at a time: a second checkpoint with the same seq is refused.
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS prev_signature text;
CREATE UNIQUE INDEX IF NOT EXISTS checkpoints_seq ON checkpoints (seq);

-- TRUNCATE fires no row trigger: a statement trigger refuses it on the append-only tables, for everyone.
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER dead_letters_no_truncate BEFORE TRUNCATE ON dead_letters
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
