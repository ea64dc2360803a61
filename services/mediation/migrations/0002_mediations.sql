-- Mediations with their lifecycle (the 0001 table was the skeleton's sign-for record).
CREATE TABLE mediations (
    mediation_id text PRIMARY KEY,          -- the dispatch id, or the court's referral id
    case_id      uuid NOT NULL,
    case_number  text,
    origin       text NOT NULL,             -- dispatch | court_referral
    dispatch_id  uuid,
    unit_id      text,                      -- the committee as the router knows it (feedback)
    referral_id  text,
    committee_id text NOT NULL,
    mediator_id  text NOT NULL,
    specialty    text,
    status       text NOT NULL,
    started_at   timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    sessions     integer NOT NULL DEFAULT 0,
    extended     boolean NOT NULL DEFAULT false,
    agreement    jsonb,
    history      jsonb NOT NULL DEFAULT '[]',
    traceparent  text,
    finished_at  timestamptz
);
CREATE INDEX mediations_open_by_mediator ON mediations (mediator_id)
    WHERE status IN ('assigned', 'session_scheduled', 'session_held');
CREATE INDEX mediations_deadline ON mediations (deadline)
    WHERE status IN ('assigned', 'session_scheduled', 'session_held');
