-- The router's state of each case (its projection of the case's events).
CREATE TABLE cases (
    case_id           uuid PRIMARY KEY,
    case_number       text NOT NULL,
    status            text NOT NULL,
    category          text,
    unit_kind         text,
    unit_id           text,
    dispatch_id       uuid,
    rule_ids          text[] NOT NULL DEFAULT '{}',
    catalogue_version text NOT NULL,
    decided_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_status ON cases (status);
