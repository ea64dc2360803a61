CREATE TABLE mediation_cases (
    case_id      uuid NOT NULL,
    dispatch_id  uuid PRIMARY KEY,
    case_number  text NOT NULL,
    committee_id text NOT NULL,
    category     text NOT NULL,
    status       text NOT NULL,
    accepted_at  timestamptz NOT NULL
);
CREATE INDEX mediation_cases_case ON mediation_cases (case_id);
