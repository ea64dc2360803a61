-- Where the dispute is (the dispatch's division, or the court referral's): the command centre's
-- figures are filtered by the reader's jurisdiction on it. Rows from before it have none: only
-- city-wide grants ("*") count them.
ALTER TABLE mediations ADD COLUMN IF NOT EXISTS division_code text;
