-- The citizen's own acts through intake (评价, 申请重办): one row each, so a case is rated once and a
-- repeated request is recognised; the event itself goes through the outbox in the same transaction.
CREATE TABLE citizen_acts (
    event_id   text PRIMARY KEY,
    case_id    uuid NOT NULL REFERENCES cases (case_id),
    kind       text NOT NULL CHECK (kind IN ('rating', 'reopen')),
    acted_by   text NOT NULL,
    acted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX citizen_acts_one_rating ON citizen_acts (case_id) WHERE kind = 'rating';
