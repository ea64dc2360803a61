-- The shared status projection keeps the lead dispatch (a unit's feedback counts only for the lead the
-- case is with now) and the holder; the vocabulary says manual_triage where intake said
-- awaiting_manual_triage.
ALTER TABLE cases ADD COLUMN lead_dispatch_id text, ADD COLUMN holder_unit_id text, ADD COLUMN holder_since timestamptz;
UPDATE cases SET status = 'manual_triage' WHERE status = 'awaiting_manual_triage';
