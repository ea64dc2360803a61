-- The exact JSON text each record's hash covers. jsonb keeps the value, not the text (1e16 comes back
-- as 10000000000000000), so verification hashes these bytes and checks that the jsonb holds the same
-- value. Records from before this column are verified over jsonb's text as before.
ALTER TABLE events ADD COLUMN IF NOT EXISTS data_text text;
