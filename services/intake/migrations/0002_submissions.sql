-- Every submission is a row; a duplicate report (重复件) points at the case it repeats.
ALTER TABLE cases
    ADD COLUMN duplicate_of      uuid REFERENCES cases (case_id),
    ADD COLUMN similarity        real,
    ADD COLUMN status            text NOT NULL DEFAULT 'received',
    ADD COLUMN status_updated_at timestamptz,
    ADD COLUMN submission        jsonb,          -- the full submission, personal data included
    ADD COLUMN submission_ref    text;
ALTER TABLE cases DROP CONSTRAINT cases_case_number_key;
CREATE UNIQUE INDEX cases_case_number ON cases (case_number) WHERE duplicate_of IS NULL;
CREATE INDEX cases_open_by_division ON cases (division_code, received_at) WHERE duplicate_of IS NULL;
