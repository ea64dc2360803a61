-- Who did what each event records (全程留痕): the CloudEvents actor extension as canonical JSON
-- text ({"id", "role", "unit"}), covered by the event's hash when present. Events recorded before
-- carry none, and their hashes stay as they were.
ALTER TABLE events ADD COLUMN actor text;
